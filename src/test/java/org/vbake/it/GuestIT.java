package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.vbake.it.InProcessCli.Result;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.api.Arch;
import org.vbake.api.EventListener;
import org.vbake.api.RuntimeKind;
import org.vbake.process.CommonsExecRunner;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;

/**
 * Boots real guests (QEMU under TCG) for both arches and both runtimes and drives them through
 * the vdkr/vpdmn CLI in-process. Guest images come from the shared cache (built once per run).
 */
class GuestIT {

    private static Path stateBase;


    static Stream<Arguments> targets() {
        List<Arguments> all = new ArrayList<>();
        for (Arch a : Arch.values()) {
            for (RuntimeKind r : RuntimeKind.values()) {
                all.add(Arguments.of(a, r));
            }
        }
        return all.stream();
    }

    @BeforeAll
    static void makeStateBase() throws Exception {
        stateBase = Files.createTempDirectory(Path.of("/tmp"), "vbake-it-");
    }

    @AfterAll
    static void removeStateBase() throws Exception {
        try (Stream<Path> walk = Files.walk(stateBase)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }

    @AfterEach
    void noQemuLeft() {
        List<String> left = ProcessHandle.allProcesses()
                .map(p -> p.info().commandLine().orElse(""))
                .filter(c -> c.contains("qemu-system") && c.contains(stateBase.toString()))
                .toList();
        assertThat(left).as("QEMU processes left behind").isEmpty();
    }

    private static Path stateDir(Arch arch, RuntimeKind runtime) {
        return stateBase.resolve(runtime.id() + "-" + arch.id());
    }

    private static Result cli(Arch arch, RuntimeKind runtime, String... args) {
        List<String> argv = new ArrayList<>(List.of("-a", arch.id(), "--state-dir", stateDir(arch, runtime).toString()));
        argv.addAll(List.of(args));
        return InProcessCli.run(runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn", argv);
    }

    @ParameterizedTest(name = "{1} on {0}: info reports the target architecture")
    @MethodSource("targets")
    void infoReportsTargetArch(Arch arch, RuntimeKind runtime) {
        String format = runtime == RuntimeKind.DOCKER ? "{{.Architecture}} {{.Driver}}" : "{{.Host.Arch}} {{.Store.GraphDriverName}}";
        Result r = cli(arch, runtime, "info", "--format", format);
        assertThat(r.code()).as(r.err()).isZero();
        String expectedArch = runtime == RuntimeKind.DOCKER ? arch.id() : arch.ociArch();
        assertThat(r.out().trim()).isEqualTo(expectedArch + " overlay" + (runtime == RuntimeKind.DOCKER ? "2" : ""));
    }

    @ParameterizedTest(name = "{1} on {0}: engine exit code and stderr come back unchanged")
    @MethodSource("targets")
    void engineErrorPassesThrough(Arch arch, RuntimeKind runtime) {
        Result r = cli(arch, runtime, "image", "inspect", "--format", "{{.Id}}", "no-such-image");
        // docker exits 1, podman 125 for an unknown image: whatever the engine says, unchanged.
        assertThat(r.code()).isEqualTo(runtime == RuntimeKind.DOCKER ? 1 : 125);
        assertThat(r.err()).containsIgnoringCase("no-such-image");
        assertThat(r.out().trim()).isIn("", "[]");
    }

    @ParameterizedTest(name = "{1} on {0}: a second boot sees state written by the first")
    @MethodSource("targets")
    void statePersistsAcrossCommands(Arch arch, RuntimeKind runtime) {
        String volume = "vbake-it-" + arch.id().replace('_', '-');
        Result create = cli(arch, runtime, "volume", "create", volume);
        assertThat(create.code()).as(create.err()).isZero();
        assertThat(create.out().trim()).isEqualTo(volume);
        Result list = cli(arch, runtime, "volume", "ls", "--format", "{{.Name}}");
        assertThat(list.code()).as(list.err()).isZero();
        assertThat(list.out().lines()).contains(volume);
    }

    @ParameterizedTest(name = "{1} on {0}: stdout and stderr stay separate, exit codes are exact")
    @MethodSource("targets")
    void stdoutStderrSeparateAndExitCode(Arch arch, RuntimeKind runtime) throws Exception {
        GuestOptions options = GuestOptions.defaults(arch, runtime).withStateRoot(stateDir(arch, runtime));
        try (GuestSession session = GuestSession.boot(options, new CommonsExecRunner(), EventListener.NONE)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            ExitStatus status = session.exec(
                    ExecRequest.of("sh", "-c", "uname -m; echo to-stderr >&2; echo 'with spaces  \"quoted\"'; exit 7"),
                    null, out, err);
            assertThat(status.code()).isEqualTo(7);
            assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo(arch.id() + "\nwith spaces  \"quoted\"\n");
            assertThat(err.toString(StandardCharsets.UTF_8)).isEqualTo("to-stderr\n");
            assertThat(session.hello().arch()).isEqualTo(arch.id());
        }
    }
    @Test
    void aGuestThatDiesWhileBootingIsBootedOnceMore() throws Exception {
        Path state = stateDir(Arch.AARCH64, RuntimeKind.DOCKER).resolve("trixie");
        Files.createDirectories(state);
        Files.deleteIfExists(state.resolve("console.log"));
        // A boot, not the resume of what an earlier test saved (ResumeIT covers a failing resume).
        CompletableFuture<Result> info = CompletableFuture.supplyAsync(
                () -> cli(Arch.AARCH64, RuntimeKind.DOCKER, "--no-resume", "info", "--format", "{{.Architecture}}"));
        // Killed once the agent has answered: the boot is past the point the first retry covered.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!consoleSays(state, "handshake done") && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        List<ProcessHandle> qemu = ProcessHandle.allProcesses()
                .filter(p -> p.info().commandLine().orElse("").contains("qemu-system")
                        && p.info().commandLine().orElse("").contains(state.toString()))
                .toList();
        assertThat(qemu).as("the booting guest's QEMU").hasSize(1);
        qemu.get(0).destroyForcibly();

        Result r = info.get(5, TimeUnit.MINUTES);
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out().strip()).isEqualTo("aarch64");
        assertThat(r.err()).contains("warning: lost the guest", "QEMU was killed by signal 9",
                "console.log.failed-boot", "booting once more");
        assertThat(Files.readString(state.resolve("console.log.failed-boot"))).contains("handshake done")
                .doesNotContain("engine ready");
        assertThat(Files.readString(state.resolve("console.log"))).contains("engine ready", "power-off");
    }

    private static boolean consoleSays(Path state, String text) {
        try {
            return Files.readString(state.resolve("console.log")).contains(text);
        } catch (java.io.IOException e) {
            return false;
        }
    }
}
