package org.vbake.instance;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class StateDirTest {

    @TempDir
    Path tmp;

    @Test
    void defaultLayoutIsPerRuntimeArchAndSuite() {
        Path home = Path.of(System.getProperty("user.home"));

        StateDir docker = StateDir.of(null, Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        StateDir podman = StateDir.of(null, Arch.X86_64, RuntimeKind.PODMAN, "bookworm");

        assertThat(docker.root()).isEqualTo(home.resolve(".vdkr/aarch64"));
        assertThat(docker.stateDisk()).isEqualTo(home.resolve(".vdkr/aarch64/trixie/state.ext4"));
        assertThat(podman.root()).isEqualTo(home.resolve(".vpdmn/x86_64"));
        assertThat(podman.stateDisk()).isEqualTo(home.resolve(".vpdmn/x86_64/bookworm/state.ext4"));
        assertThat(StateDir.defaultRoot(RuntimeKind.PODMAN, Arch.AARCH64)).isEqualTo(home.resolve(".vpdmn/aarch64"));
    }

    @Test
    void everyFileLivesInTheSuiteDirOrItsRunDir() {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.X86_64, RuntimeKind.DOCKER, "trixie");
        Path dir = tmp.resolve("root/trixie");

        assertThat(s.dir()).isEqualTo(dir);
        assertThat(s.consoleLog()).isEqualTo(dir.resolve("console.log"));
        assertThat(s.qemuLog()).isEqualTo(dir.resolve("qemu.log"));
        assertThat(s.lockFile()).isEqualTo(dir.resolve("lock"));
        assertThat(s.runDir()).isEqualTo(dir.resolve("run"));
        assertThat(s.agentSocket()).isEqualTo(dir.resolve("run/agent.sock"));
        assertThat(s.qmpSocket()).isEqualTo(dir.resolve("run/qmp.sock"));
        assertThat(s.pidFile()).isEqualTo(dir.resolve("run/qemu.pid"));
    }

    @Test
    void relativeRootIsMadeAbsolute() {
        StateDir s = StateDir.of(Path.of("a/../b"), Arch.X86_64, RuntimeKind.DOCKER, "trixie");

        assertThat(s.root()).isAbsolute().isEqualTo(Path.of("b").toAbsolutePath());
    }

    @Test
    void runDirFallsBackToAShortTmpPathWhenSocketsWouldNotFit() {
        Path longRoot = tmp.resolve("x".repeat(120));
        StateDir s = StateDir.of(longRoot, Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        assertThat(bytes(s.dir().resolve("run/daemon.sock"))).isGreaterThan(StateDir.MAX_SOCKET_PATH);

        assertThat(s.runDir()).startsWithRaw(Path.of(System.getProperty("java.io.tmpdir")));
        assertThat(s.runDir()).isNotEqualTo(s.dir().resolve("run"));
        assertThat(bytes(s.agentSocket())).isLessThanOrEqualTo(StateDir.MAX_SOCKET_PATH);
        assertThat(bytes(s.qmpSocket())).isLessThanOrEqualTo(StateDir.MAX_SOCKET_PATH);
        assertThat(s.agentSocket().getParent()).isEqualTo(s.runDir());
        // Files that are no sockets stay with the state.
        assertThat(s.consoleLog()).startsWithRaw(s.dir());
        assertThat(s.lockFile()).startsWithRaw(s.dir());
    }

    @Test
    void fallbackRunDirIsStablePerStateDirAndDistinctBetweenThem() {
        Path longRoot = tmp.resolve("x".repeat(120));

        StateDir a = StateDir.of(longRoot, Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        StateDir again = StateDir.of(longRoot, Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        StateDir otherSuite = StateDir.of(longRoot, Arch.AARCH64, RuntimeKind.DOCKER, "bookworm");
        StateDir otherRoot = StateDir.of(tmp.resolve("y".repeat(120)), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");

        assertThat(again.runDir()).isEqualTo(a.runDir());
        assertThat(otherSuite.runDir()).isNotEqualTo(a.runDir());
        assertThat(otherRoot.runDir()).isNotEqualTo(a.runDir());
    }

    @Test
    void socketPathOfExactly107BytesStaysInsideAnd108FallsBack() {
        int fixed = bytes(tmp) + "/".length() + "/trixie/run/daemon.sock".length();
        StateDir fits = StateDir.of(tmp.resolve("f".repeat(107 - fixed)), Arch.X86_64, RuntimeKind.PODMAN, "trixie");
        StateDir tooLong = StateDir.of(tmp.resolve("f".repeat(108 - fixed)), Arch.X86_64, RuntimeKind.PODMAN, "trixie");

        assertThat(bytes(fits.dir().resolve("run/daemon.sock"))).isEqualTo(107);
        assertThat(fits.runDir()).isEqualTo(fits.dir().resolve("run"));
        assertThat(bytes(tooLong.dir().resolve("run/daemon.sock"))).isEqualTo(108);
        assertThat(tooLong.runDir()).isNotEqualTo(tooLong.dir().resolve("run"));
    }

    @Test
    void socketPathLengthCountsBytesNotCharacters() {
        int fixed = bytes(tmp) + "/".length() + "/trixie/run/daemon.sock".length();
        // 'é' is two bytes in UTF-8: the socket path is 107 characters but 117 bytes.
        String name = "f".repeat(97 - fixed) + "é".repeat(10);
        StateDir s = StateDir.of(tmp.resolve(name), Arch.X86_64, RuntimeKind.PODMAN, "trixie");

        assertThat(s.dir().resolve("run/daemon.sock").toString()).hasSize(107);
        assertThat(bytes(s.dir().resolve("run/daemon.sock"))).isEqualTo(117);
        assertThat(s.runDir()).isNotEqualTo(s.dir().resolve("run"));
    }

    @Test
    void createMakesPrivateDirectories() throws IOException {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");

        s.create();

        for (Path p : new Path[] {s.root(), s.dir(), s.runDir()}) {
            assertThat(p).isDirectory();
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(p))).as("%s", p)
                    .isEqualTo("rwx------");
        }
    }

    @Test
    void createTightensDirectoriesThatAlreadyExist() throws IOException {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        Files.createDirectories(s.dir(),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwxr-xr-x")));
        Files.setPosixFilePermissions(s.dir(), PosixFilePermissions.fromString("rwxrwxr-x"));

        s.create();
        s.create();

        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(s.dir()))).isEqualTo("rwx------");
    }

    @Test
    void secondLockFromTheSameJvmFailsNamingTheLockFile() throws Exception {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        s.create();

        try (StateDir.Lock first = s.lock(Duration.ZERO, () -> { })) {
            assertThatThrownBy(() -> s.lock(Duration.ZERO, () -> { }))
                    .isInstanceOf(IOException.class)
                    .hasMessageContaining(s.lockFile().toString());
        }
        try (StateDir.Lock again = s.lock(Duration.ZERO, () -> { })) {
            assertThat(again).isNotNull();
        }
    }

    @Test
    void waitingForTheLockTellsTheCallerOnceThenGivesUp() throws Exception {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        s.create();
        AtomicInteger told = new AtomicInteger();

        try (StateDir.Lock first = s.lock(Duration.ZERO, () -> { })) {
            long started = System.nanoTime();
            assertThatThrownBy(() -> s.lock(Duration.ofMillis(350), told::incrementAndGet))
                    .isInstanceOf(IOException.class);
            assertThat(Duration.ofNanos(System.nanoTime() - started)).isGreaterThanOrEqualTo(Duration.ofMillis(350));
        }
        assertThat(told).hasValue(1);
    }

    @Test
    void waiterGetsTheLockOnceItIsReleased() throws Exception {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        s.create();
        StateDir.Lock first = s.lock(Duration.ZERO, () -> { });

        Thread releaser = new Thread(() -> {
            try {
                Thread.sleep(200);
                first.close();
            } catch (IOException | InterruptedException e) {
                throw new IllegalStateException(e);
            }
        });
        releaser.start();
        try (StateDir.Lock second = s.lock(Duration.ofSeconds(10), () -> { })) {
            assertThat(second).isNotNull();
        }
        releaser.join();
    }

    /**
     * Closing any channel on a file drops every POSIX record lock this process holds on it, so a
     * failed second attempt in this JVM must not cost the first holder its lock against other
     * processes (another vdkr) that would then boot a guest on the same state disk.
     */
    @Test
    void failedSecondAttemptKeepsTheFirstLockAgainstOtherProcesses() throws Exception {
        StateDir s = StateDir.of(tmp.resolve("root"), Arch.AARCH64, RuntimeKind.DOCKER, "trixie");
        s.create();

        try (StateDir.Lock first = s.lock(Duration.ZERO, () -> { })) {
            assertThat(otherProcessCanLock(s.lockFile())).as("before the second attempt").isFalse();
            assertThatThrownBy(() -> s.lock(Duration.ZERO, () -> { })).isInstanceOf(IOException.class);
            assertThat(otherProcessCanLock(s.lockFile())).as("after the second attempt").isFalse();
        }
        assertThat(otherProcessCanLock(s.lockFile())).as("after release").isTrue();
    }

    private static boolean otherProcessCanLock(Path file) throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        String classpath;
        try {
            classpath = Path.of(LockProbe.class.getProtectionDomain().getCodeSource().getLocation().toURI())
                    .toString();
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        Process p = new ProcessBuilder(java.toString(), "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classpath,
                LockProbe.class.getName(), file.toString())
                .redirectErrorStream(true)
                .start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        assertThat(p.waitFor(20, TimeUnit.SECONDS)).isTrue();
        assertThat(output).isIn("locked", "busy");
        return output.equals("locked");
    }

    /** Run in a child JVM: prints whether it could take the lock on the file in args[0]. */
    static final class LockProbe {
        public static void main(String[] args) throws IOException {
            try (FileChannel ch = FileChannel.open(Path.of(args[0]), StandardOpenOption.WRITE);
                    FileLock lock = ch.tryLock()) {
                System.out.println(lock != null ? "locked" : "busy");
            }
        }
    }

    private static int bytes(Path p) {
        return p.toString().getBytes(StandardCharsets.UTF_8).length;
    }
}
