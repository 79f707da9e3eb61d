package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.it.CliProcess.ok;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.CliProcess.Result;
import org.vbake.it.fixtures.TestImages;

/**
 * Containers of a resident guest on the engine's own bridge, as on a real host: two web servers
 * on the same container port, published on two host ports, each answering with its own content,
 * and {@code ps} showing the ports as the engine publishes them.
 */
class NetworkIT {

    private static Path work;
    private static CliProcess cli;

    @BeforeAll
    static void setUp() throws IOException {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-network-");
        cli = new CliProcess(work);
    }

    @AfterAll
    static void cleanUp() throws Exception {
        try (Stream<Path> s = Files.list(work)) {
            for (Path state : s.filter(p -> p.getFileName().toString().startsWith("state-")).toList()) {
                String tool = state.getFileName().toString().contains("podman") ? "vpdmn" : "vdkr";
                String arch = state.getFileName().toString().contains("x86_64") ? "x86_64" : "aarch64";
                cli.cli(tool, arch, state, Map.of(), null, "vmemres", "stop");
            }
        }
        Trees.deleteTree(work);
    }

    static Stream<Arguments> guests() {
        return Stream.of(Arguments.of(Arch.AARCH64, RuntimeKind.DOCKER), Arguments.of(Arch.AARCH64, RuntimeKind.PODMAN),
                Arguments.of(Arch.X86_64, RuntimeKind.DOCKER));
    }

    @ParameterizedTest(name = "{1} on {0}: two web servers on container port 80, each on its own host port")
    @MethodSource("guests")
    void twoContainersPublishTheSamePortOnTwoHostPorts(Arch arch, RuntimeKind runtime) throws Exception {
        String tool = runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn";
        Path state = work.resolve("state-" + runtime.id() + "-" + arch.id());
        Path busybox = TestImages.guestBusybox(arch, RuntimeKind.DOCKER, work.resolve("busybox-" + arch.id()));
        Path archive = work.resolve("web-" + arch.id() + ".tar");
        TestImages.single(arch == Arch.AARCH64 ? TestImages.Platform.ARM64 : TestImages.Platform.AMD64, busybox)
                .writeOciArchive(archive);
        ok(cli.cli(tool, arch.id(), state, Map.of(), null, "vmemres", "start"));
        ok(cli.cli(tool, arch.id(), state, Map.of(), null, "vimport", archive.toString(), "local/web:1"));
        int one = freePort();
        int two = freePort();
        for (Object[] c : new Object[][] {{"one", one}, {"two", two}}) {
            ok(cli.cli(tool, arch.id(), state, Map.of(), null, "run", "-d", "--name", (String) c[0], "-p",
                    c[1] + ":80", "local/web:1", "/bin/sh", "-c", "mkdir -p /www && echo " + c[0]
                            + " > /www/index.html && exec /bin/busybox httpd -f -p 80 -h /www"));
        }
        assertThat(get(one)).isEqualTo("one\n");
        assertThat(get(two)).isEqualTo("two\n");
        Result ps = ok(cli.cli(tool, arch.id(), state, Map.of(), null, "ps", "--format", "{{.Names}} {{.Ports}}"));
        // docker also lists the IPv6 binding (":::P->80/tcp"); the IPv4 one comes first.
        assertThat(ps.out().lines().map(String::strip)).anyMatch(l -> l.startsWith("one 0.0.0.0:" + one + "->80/tcp"))
                .anyMatch(l -> l.startsWith("two 0.0.0.0:" + two + "->80/tcp"));
        ok(cli.cli(tool, arch.id(), state, Map.of(), null, "rm", "-f", "one", "two"));
        ok(cli.cli(tool, arch.id(), state, Map.of(), null, "vmemres", "stop"));
    }

    /** The page on 127.0.0.1:{@code port}, waiting up to 60 s for the server to come up. */
    private static String get(int port) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        Exception last = null;
        while (System.nanoTime() < deadline) {
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/"))
                        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    return r.body();
                }
                last = new IOException("HTTP " + r.statusCode());
            } catch (IOException e) {
                last = e;
            }
            Thread.sleep(500);
        }
        throw new AssertionError("nothing answered on 127.0.0.1:" + port, last);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
