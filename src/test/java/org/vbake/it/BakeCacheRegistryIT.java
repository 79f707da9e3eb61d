package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.vbake.instance.Trees;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.TestImages;

/**
 * Two build hosts (two cache directories) sharing one bake cache in Debian's docker-registry: the
 * second bake of the same manifest downloads instead of baking and gives the same files; a
 * tampered copy in the registry is noticed and baked again; a registry that cannot be reached
 * only warns. Bakes here are host-written, so no guest is started.
 */
class BakeCacheRegistryIT {

    private static Path work;
    private static LocalRegistry registry;
    private static Path manifest;

    @BeforeAll
    static void setUp() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-cache-registry-");
        registry = LocalRegistry.start(Files.createDirectories(work.resolve("registry")));
        Path fake = Files.writeString(work.resolve("busybox"), "stand-in\n");
        TestImages.single(TestImages.Platform.ARM64, fake).withRandomLayerMb(2).writeLayout(work.resolve("app"));
        manifest = Files.writeString(work.resolve("bake.yaml"), """
                arch: aarch64
                runtime: docker
                images:
                  - oci: app
                    name: team/app:1
                """);
    }

    @AfterAll
    static void cleanUp() throws Exception {
        if (registry != null) {
            registry.close();
        }
        Trees.deleteTree(work);
    }

    private record Run(int code, String out, String err, long millis) {
    }

    /** A bake as build host {@code host} runs it: a launcher process with its own cache directory. */
    private static Run bake(String host, Path out, String cacheRegistry) throws Exception {
        java.util.List<String> argv = new java.util.ArrayList<>(CliProcess.launcher("vbake"));
        argv.addAll(java.util.List.of("bake", manifest.toString(), "-o", out.toString(), "--progress=plain",
                "--cache-registry", cacheRegistry));
        CliProcess.Result r = new CliProcess(work).run(argv,
                Map.of("VBAKE_CACHE_DIR", work.resolve("cache-" + host).toString()), null);
        return new Run(r.code(), r.out(), r.err(), r.millis());
    }

    @Test
    void aSecondBuildHostDownloadsTheBakeAndATamperedCopyIsBakedAgain() throws Exception {
        String cache = registry.host() + "/vbake/cache";
        Run first = bake("a", work.resolve("out-a"), cache);
        assertThat(first.code()).as(first.err()).isZero();
        assertThat(first.err()).contains("pushed this bake to the bake cache " + cache);

        Run second = bake("b", work.resolve("out-b"), cache);
        assertThat(second.code()).as(second.err()).isZero();
        assertThat(second.out()).contains("(downloaded from the bake cache " + cache);
        assertThat(second.err()).containsPattern("downloaded this bake from the bake cache .* in [0-9.]+ s");
        assertThat(sha256s(work.resolve("out-b"))).isEqualTo(sha256s(work.resolve("out-a")));
        System.out.printf("bake on host a: %d ms, download on host b: %d ms%n", first.millis(), second.millis());

        // Someone changes the stored tree in the registry: the next host notices and bakes.
        String tree = sha256s(work.resolve("out-a")).get("storage.tar.zst");
        Path blob;
        try (Stream<Path> s = Files.walk(registry.storageDir())) {
            blob = s.filter(p -> p.toString().endsWith("/" + tree.substring(0, 2) + "/" + tree + "/data")).findFirst()
                    .orElseThrow();
        }
        byte[] bytes = Files.readAllBytes(blob);
        bytes[bytes.length / 2] ^= 1;
        Files.write(blob, bytes);
        Run third = bake("c", work.resolve("out-c"), cache);
        assertThat(third.code()).as(third.err()).isZero();
        assertThat(third.err()).contains("warning: the bake cache " + cache + " holds a copy of this bake that does not "
                + "check out");
        assertThat(third.out()).contains("the tree written on the host");
        assertThat(sha256s(work.resolve("out-c"))).isEqualTo(sha256s(work.resolve("out-a")));

        // No registry at all: a warning, and the bake.
        Run away = bake("d", work.resolve("out-d"), "127.0.0.1:9/vbake/cache");
        assertThat(away.code()).as(away.err()).isZero();
        assertThat(away.err()).contains("warning: the bake cache 127.0.0.1:9/vbake/cache cannot be read");
        assertThat(sha256s(work.resolve("out-d"))).isEqualTo(sha256s(work.resolve("out-a")));
    }

    private static Map<String, String> sha256s(Path dir) throws IOException {
        Map<String, String> out = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                try (InputStream in = Files.newInputStream(p)) {
                    MessageDigest md = MessageDigest.getInstance("SHA-256");
                    byte[] b = new byte[1 << 16];
                    for (int n; (n = in.read(b)) > 0; ) {
                        md.update(b, 0, n);
                    }
                    out.put(dir.relativize(p).toString(), HexFormat.of().formatHex(md.digest()));
                } catch (java.security.NoSuchAlgorithmException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return out;
    }
}
