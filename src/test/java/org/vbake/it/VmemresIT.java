package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.vbake.it.CliProcess.Result;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.fixtures.TestImages;
import org.vbake.storage.StoreKind;
import org.vbake.storage.TreeNormalizer;

/**
 * Memory-resident mode (vmemres) on aarch64, driven through the real launcher as separate
 * processes, as users and scripts run it: lifecycle, persistence across restarts, recovery after
 * QEMU is killed, parallel clients, a real tty, -v copies and --storage equal to cold mode.
 */
class VmemresIT {

    private static final String EPOCH = CliProcess.EPOCH;

    private static Path work;
    private static Path small;
    private static TestImages.Expected smallImage;
    private static Path big;
    private static final List<Path> stateDirs = new ArrayList<>();


    @BeforeAll
    static void images() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-vmemres-");
        Path busybox = TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox"));
        small = work.resolve("small.tar");
        smallImage = TestImages.single(TestImages.Platform.ARM64, busybox).writeOciArchive(small);
        big = work.resolve("big.tar");
        TestImages.single(TestImages.Platform.ARM64, busybox).withRandomLayerMb(96).writeOciArchive(big);
    }

    @AfterAll
    static void cleanUp() throws Exception {
        for (Path s : stateDirs) {
            vdkr(s, Map.of(), "vmemres", "stop");
        }
        if (work != null) {
            Trees.deleteTree(work);
        }
    }

    @AfterEach
    void nothingLeftRunning() throws Exception {
        for (Path s : stateDirs) {
            vdkr(s, Map.of(), "vmemres", "stop");
        }
        List<String> left = ProcessHandle.allProcesses()
                .map(p -> p.info().commandLine().orElse(""))
                .filter(c -> (c.contains("qemu-system") || c.contains("vbake-daemon")) && c.contains(work.toString()))
                .toList();
        assertThat(left).as("QEMU or daemon processes left behind").isEmpty();
    }

    private static Path newState(String name) {
        Path p = work.resolve(name);
        stateDirs.add(p);
        return p;
    }

    static Result vdkr(Path stateDir, Map<String, String> env, String... args) throws IOException, InterruptedException {
        return vdkrIn(stateDir, env, null, args);
    }

    static Result vdkrIn(Path stateDir, Map<String, String> env, byte[] stdin, String... args)
            throws IOException, InterruptedException {
        return cli("vdkr", "aarch64", stateDir, env, stdin, args);
    }

    static Result cli(String prog, String arch, Path stateDir, Map<String, String> env, byte[] stdin, String... args)
            throws IOException, InterruptedException {
        return new CliProcess(work).cli(prog, arch, stateDir, env, stdin, args);
    }

    static List<String> launcher() {
        return CliProcess.launcher("vdkr");
    }

    static List<String> launcher(String prog) {
        return CliProcess.launcher(prog);
    }

    static Result run(List<String> argv, Map<String, String> env, byte[] stdin) throws IOException, InterruptedException {
        return new CliProcess(work).run(argv, env, stdin);
    }

    static final int STATUS_RUNNING = 0;
    static final int STATUS_STOPPED = 1;
    static final int STATUS_STARTING = 4;
    static final int STATUS_STOPPING = 5;

    /**
     * Polls {@code vmemres status} until it reports {@code wanted}. The states on the way
     * (running, starting, stopping) are passed through; any other answer, or none in time, fails.
     * Each answer's exit code must agree with its first line.
     */
    static Result awaitStatus(Path state, int wanted, int seconds) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        Map<Integer, String> labels = Map.of(STATUS_RUNNING, ": running", STATUS_STOPPED, ": stopped",
                STATUS_STARTING, ": starting", STATUS_STOPPING, ": stopping");
        while (true) {
            Result r = vdkr(state, Map.of(), "vmemres", "status");
            String first = r.out().lines().findFirst().orElse("");
            assertThat(labels).as("status exit code %d: %s", r.code(), r.out()).containsKey(r.code());
            assertThat(first).as("exit code %d", r.code()).contains(labels.get(r.code()));
            if (r.code() == wanted) {
                return r;
            }
            assertThat(System.nanoTime()).as("still '%s' after %d s", first, seconds).isLessThan(deadline);
            Thread.sleep(200);
        }
    }

    private static Result ok(Result r) {
        assertThat(r.code()).as("stdout: %s%nstderr: %s", r.out(), r.err()).isZero();
        return r;
    }

    private static void signal(String name, long pid) throws IOException, InterruptedException {
        assertThat(new ProcessBuilder("kill", "-" + name, Long.toString(pid)).start().waitFor()).isZero();
    }

    /** vdkr's config file for the launched clients (removed by the test when done). */
    private static void config(String content) throws IOException {
        Files.createDirectories(work.resolve("config/vdkr"));
        Files.writeString(work.resolve("config/vdkr/config"), content);
    }

    /** The QEMU pid the running daemon recorded. */
    private static long qemuPid(Path state) throws IOException {
        String record = Files.readString(state.resolve("trixie/run/daemon.json"));
        return Long.parseLong(record.replaceAll("(?s).*\"qemuPid\":(\\d+).*", "$1"));
    }

    private static String smallId() {
        return smallImage.image(TestImages.Platform.ARM64).configDigest();
    }

    /** Each entry of a tar as "path sha256" (directories as "path/"), in the tar's order. */
    private static String tarContent(Path tar) throws Exception {
        StringBuilder out = new StringBuilder();
        try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(Files.newInputStream(tar))) {
            org.apache.commons.compress.archivers.tar.TarArchiveEntry e;
            while ((e = in.getNextTarEntry()) != null) {
                out.append(e.getName());
                if (e.isFile()) {
                    out.append(' ').append(HexFormat.of().formatHex(
                            MessageDigest.getInstance("SHA-256").digest(in.readAllBytes())));
                }
                out.append('\n');
            }
        }
        return out.toString();
    }

    private static String sha256(Path file) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (InputStream in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** The table's header line, then its rows sorted: same columns and widths, any row order. */
    private static List<String> headerAndSortedRows(String table) {
        List<String> lines = new ArrayList<>(table.lines().toList());
        assertThat(lines).isNotEmpty();
        List<String> rows = lines.subList(1, lines.size());
        rows.sort(null);
        return lines;
    }

    @Test
    void lifecycleRestartsKeepImagesAndCleanDropsThem() throws Exception {
        Path state = newState("lifecycle");
        Result start = ok(vdkr(state, Map.of(), "vmemres", "start"));
        assertThat(start.out()).contains("running (pid");

        Result status = ok(vdkr(state, Map.of(), "vmemres", "status"));
        long daemonPid = Long.parseLong(status.out().replaceAll("(?s).*pid: *(\\d+) \\(daemon\\).*", "$1"));
        assertThat(ProcessHandle.of(daemonPid)).isPresent();
        assertThat(status.out()).contains(": running", "aarch64, docker, trixie", "QEMU resident", "uptime:", "idle:");
        assertThat(Files.getPosixFilePermissions(state.resolve("trixie/run/daemon.sock")))
                .extracting(Object::toString).asString().doesNotContain("GROUP", "OTHERS");
        assertThat(Files.getPosixFilePermissions(state.resolve("trixie/run")).toString())
                .doesNotContain("GROUP", "OTHERS");

        ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
        assertThat(ok(vdkr(state, Map.of(), "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"))
                .out().strip()).isEqualTo(smallId() + " local/small:1");

        // images is rendered on the host from the engine API: it must read exactly as docker's CLI.
        ok(vdkr(state, Map.of(), "tag", "local/small:1", "registry.example:5000/team/small:two"));
        // Row order aside: docker's CLI orders the repositories of one image at random (Go map walk).
        String fast = ok(vdkr(state, Map.of(), "images")).out();
        assertThat(fast).contains("local/small", "registry.example:5000/team/small", smallId().substring(7, 19));
        assertThat(headerAndSortedRows(fast)).isEqualTo(headerAndSortedRows(ok(vdkr(state, Map.of(), "image", "ls")).out()));
        assertThat(ok(vdkr(state, Map.of(), "images", "-q")).out())
                .isEqualTo(ok(vdkr(state, Map.of(), "image", "ls", "-q")).out());
        ok(vdkr(state, Map.of(), "rmi", "registry.example:5000/team/small:two"));

        // Three import/restart cycles: the same save output every time. docker save stamps some
        // tar headers with the time of the save, so the entries and their bytes are compared.
        List<String> saves = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
            Result restart = ok(vdkr(state, Map.of(), "vmemres", "restart"));
            assertThat(restart.out()).contains("stopped", "running (pid");
            Path saved = work.resolve("save-" + i + ".tar");
            ok(vdkr(state, Map.of(), "save", "-o", saved.toString(), "local/small:1"));
            saves.add(tarContent(saved));
        }
        assertThat(saves.get(0)).contains("blobs/sha256/" + smallId().substring(7) + " " + smallId().substring(7),
                "index.json", "manifest.json");
        assertThat(saves).hasSize(3).containsOnly(saves.get(0));
        assertThat(ProcessHandle.of(daemonPid).map(ProcessHandle::isAlive).orElse(false)).isFalse();

        Result clean = ok(vdkr(state, Map.of(), "vmemres", "restart", "--clean"));
        assertThat(clean.out()).contains("state disk removed", "running (pid");
        assertThat(ok(vdkr(state, Map.of(), "images", "-q")).out()).isBlank();

        Result stop = ok(vdkr(state, Map.of(), "vmemres", "stop"));
        assertThat(stop.out()).contains("stopped (");
        Result after = vdkr(state, Map.of(), "vmemres", "status");
        assertThat(after.code()).isEqualTo(1);
        assertThat(after.out()).contains(": stopped", "stopped by vmemres stop");
        assertThat(state.resolve("trixie/run/daemon.sock")).doesNotExist();
    }

    @Test
    void podmanOnX86AnswersFromItsResidentGuestAsACold() throws Exception {
        Path state = work.resolve("vpdmn-x86_64");
        Path busybox = TestImages.guestBusybox(Arch.X86_64, RuntimeKind.PODMAN, work.resolve("busybox-x86_64"));
        Path archive = work.resolve("small-amd64.tar");
        String id = TestImages.single(TestImages.Platform.AMD64, busybox).writeOciArchive(archive)
                .image(TestImages.Platform.AMD64).configDigest().substring("sha256:".length());
        try {
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), null, "vmemres", "start")).out())
                    .contains("running (pid");
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), null, "vmemres", "status")).out())
                    .contains(": running", "x86_64, podman, trixie");
            ok(cli("vpdmn", "x86_64", state, Map.of(), null, "vimport", archive.toString(), "local/small:1"));
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), null, "image", "inspect", "--format", "{{.Id}}",
                    "local/small:1")).out().strip()).isEqualTo(id);
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), "piped in\n".getBytes(StandardCharsets.UTF_8),
                    "run", "--rm", "-i", "local/small:1", "sh", "-c", "cat; uname -m; cat /data/keep")).out())
                    .isEqualTo("piped in\nx86_64\nkeep\n");
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), null, "vmemres", "stop")).out()).contains("stopped (");
            // The cold guest finds what the resident one stored.
            assertThat(ok(cli("vpdmn", "x86_64", state, Map.of(), null, "image", "inspect", "--format", "{{.Id}}",
                    "local/small:1")).out().strip()).isEqualTo(id);
        } finally {
            cli("vpdmn", "x86_64", state, Map.of(), null, "vmemres", "stop");
        }
    }

    @Test
    void idleTimeoutPowersTheGuestOffCleanly() throws Exception {
        Path state = newState("idle");
        config("idle-timeout=12\n");
        try {
            ok(vdkr(state, Map.of(), "vmemres", "start"));
            long qemuPid = qemuPid(state);
            ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));

            // Asking for the status is not activity: the idle time it shows keeps growing.
            Thread.sleep(4000);
            String idle = ok(vdkr(state, Map.of(), "vmemres", "status")).out();
            assertThat(idle).contains("(powers off after 12 s)");
            long idleSeconds = Long.parseLong(idle.replaceAll("(?s).*idle: *(\\d+) s.*", "$1"));
            assertThat(idleSeconds).isBetween(3L, 12L);

            // Running, then stopping while it powers off, then stopped: only the last one is final.
            Result after = awaitStatus(state, STATUS_STOPPED, 90);
            assertThat(after.out()).contains(": stopped", "idle for 12 s");
            assertThat(ProcessHandle.of(qemuPid).map(ProcessHandle::isAlive).orElse(false)).isFalse();
            assertThat(state.resolve("trixie/run/daemon.sock")).doesNotExist();
            // Saved for the next start, its state disk frozen clean.
            assertThat(state.resolve("trixie/snapshot/snapshot.json")).exists();
            Process fsck = new ProcessBuilder("/sbin/e2fsck", "-fn", state.resolve("trixie/state.ext4").toString())
                    .redirectErrorStream(true).start();
            String fsckOut = new String(fsck.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(fsck.waitFor()).as(fsckOut).isZero();

            // The image is on the state disk for the next (cold) command.
            assertThat(ok(vdkr(state, Map.of(), "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"))
                    .out().strip()).isEqualTo(smallId() + " local/small:1");
        } finally {
            Files.delete(work.resolve("config/vdkr/config"));
        }
    }

    @Test
    void killedQemuMidImportIsReportedAndTheNextCommandRecovers() throws Exception {
        Path state = newState("crash");
        config("auto-daemon=true\n");
        try {
            ok(vdkr(state, Map.of(), "vmemres", "start"));
            ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
            long qemuPid = qemuPid(state);

            CompletableFuture<Result> importing = CompletableFuture.supplyAsync(() -> {
                try {
                    return vdkr(state, Map.of(), "vimport", big.toString(), "local/big:1");
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            // By then the 96 MiB input is being copied into the guest or loaded (~20 s in all).
            Thread.sleep(6000);
            assertThat(importing).as("the import must still be running when QEMU is killed").isNotDone();
            ProcessHandle.of(qemuPid).orElseThrow().destroyForcibly();

            Result failed = importing.get(5, TimeUnit.MINUTES);
            assertThat(failed.code()).as(failed.err()).isEqualTo(3);
            // The client learns why from the daemon, not just that its link dropped.
            assertThat(failed.err()).contains("QEMU was killed by signal 9", "console.log");

            Result status = awaitStatus(state, STATUS_STOPPED, 30);
            assertThat(status.out()).contains(": stopped (the last resident guest died)", "QEMU was killed by signal 9");

            // The next command boots a new resident guest (auto-daemon) on the same state disk.
            Result images = ok(vdkr(state, Map.of(), "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"));
            assertThat(images.out()).contains(smallId() + " local/small:1");
            assertThat(ok(vdkr(state, Map.of(), "vmemres", "status")).out()).contains(": running");
            assertThat(ok(vdkr(state, Map.of(), "run", "--rm", "local/small:1", "cat", "/data/keep")).out())
                    .isEqualTo("keep\n");
        } finally {
            Files.delete(work.resolve("config/vdkr/config"));
        }
    }

    @Test
    void parallelClientsEachGetTheirOwnOutput() throws Exception {
        Path state = newState("parallel");
        ok(vdkr(state, Map.of(), "vmemres", "start"));
        ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
        List<CompletableFuture<Result>> clients = new ArrayList<>();
        for (String tag : List.of("A", "B", "C")) {
            clients.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return vdkr(state, Map.of(), "run", "--rm", "local/small:1", "sh", "-c",
                            "i=0; while [ $i -lt 2000 ]; do echo " + tag + "$i; i=$((i+1)); done; echo " + tag
                                    + "-err >&2; exit " + (tag.charAt(0) - 'A' + 3));
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            }));
        }
        for (int c = 0; c < 3; c++) {
            String tag = String.valueOf((char) ('A' + c));
            Result r = clients.get(c).get(10, TimeUnit.MINUTES);
            assertThat(r.code()).as(r.err()).isEqualTo(c + 3);
            StringBuilder expected = new StringBuilder();
            for (int i = 0; i < 2000; i++) {
                expected.append(tag).append(i).append('\n');
            }
            assertThat(r.out()).isEqualTo(expected.toString());
            assertThat(r.err()).isEqualTo(tag + "-err\n");
        }

        // A client that stops reading its output (here: nobody reads its stdout pipe) holds up
        // its own command and nobody else's; once read, all of its output arrives.
        List<String> argv = new ArrayList<>(launcher());
        argv.addAll(List.of("-a", "aarch64", "--state-dir", state.toString(), "run", "--rm", "local/small:1",
                "busybox", "head", "-c", "20000000", "/dev/zero"));
        ProcessBuilder pb = new ProcessBuilder(argv);
        pb.environment().put("XDG_CONFIG_HOME", work.resolve("config").toString());
        Path stalledErr = work.resolve("stalled.err");
        pb.redirectError(stalledErr.toFile()).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        Process stalled = pb.start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (ok(vdkr(state, Map.of(), "ps", "-q")).out().isBlank() && System.nanoTime() < deadline) {
                Thread.sleep(500);
            }
            CompletableFuture<Result> other = CompletableFuture.supplyAsync(() -> {
                try {
                    return vdkr(state, Map.of(), "run", "--rm", "local/small:1", "cat", "/data/keep");
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            assertThat(ok(other.get(3, TimeUnit.MINUTES)).out()).isEqualTo("keep\n");
            assertThat(stalled.isAlive()).as("the stalled client's command waits for it").isTrue();

            long zeros = 0;
            long others = 0;
            try (InputStream in = stalled.getInputStream()) {
                byte[] buf = new byte[1 << 16];
                for (int n; (n = in.read(buf)) > 0; ) {
                    for (int i = 0; i < n; i++) {
                        if (buf[i] == 0) {
                            zeros++;
                        } else {
                            others++;
                        }
                    }
                }
            }
            assertThat(stalled.waitFor(2, TimeUnit.MINUTES)).isTrue();
            assertThat(stalled.exitValue()).as(Files.readString(stalledErr)).isZero();
            assertThat(zeros).isEqualTo(20_000_000L);
            assertThat(others).isZero();
        } finally {
            stalled.destroyForcibly();
        }
    }

    @Test
    void ttyUnderAPseudoTerminalWithSizeAndCtrlC() throws Exception {
        Path state = newState("tty");
        ok(vdkr(state, Map.of(), "vmemres", "start"));
        ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
        String cli = String.join(" ", launcher()) + " -a aarch64 --state-dir " + state;

        // script(1) gives the client a pseudo-terminal, as an interactive shell would.
        Result sized = run(List.of("script", "-qefc", "stty rows 33 cols 101; " + cli
                + " run -it --rm local/small:1 sh -c 'busybox stty size; busybox tty; test -t 0 && echo IS-A-TTY; exit 4'",
                "/dev/null"), Map.of(), null);
        assertThat(sized.code()).as(sized.out() + sized.err()).isEqualTo(4);
        assertThat(sized.out()).contains("33 101", "/dev/pts/", "IS-A-TTY");

        // Ctrl-C typed in the terminal reaches the container: its sleep dies of SIGINT and the
        // shell with it (130), long before the sleep's 60 s.
        Result interrupted = run(List.of("sh", "-c", "(sleep 15; printf '\\003'; sleep 10) | script -qefc \""
                + cli + " run -it --rm local/small:1 sh -c 'echo started; busybox sleep 60; echo not-interrupted'\" /dev/null"),
                Map.of(), null);
        assertThat(interrupted.out()).contains("started").doesNotContain("not-interrupted");
        assertThat(interrupted.code()).as(interrupted.out()).isEqualTo(130);
        assertThat(interrupted.millis()).isLessThan(50_000);

        // Typed input and a shell in the guest itself.
        Result shell = run(List.of("sh", "-c", "(sleep 12; printf 'echo $((6*7)); uname -m; exit 5\\r'; sleep 10) | "
                + "script -qefc \"" + cli + " vshell\" /dev/null"), Map.of(), null);
        assertThat(shell.code()).as(shell.out()).isEqualTo(5);
        assertThat(shell.out()).contains("42", "aarch64");
    }

    @Test
    void volumesAreCopiedInAndBack() throws Exception {
        Path state = newState("volumes");
        ok(vdkr(state, Map.of(), "vmemres", "start"));
        ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
        Path data = Files.createDirectories(work.resolve("data"));
        Files.writeString(data.resolve("in.txt"), "from the host\n");
        Path ro = Files.createDirectories(work.resolve("ro"));
        Files.writeString(ro.resolve("keep.txt"), "unchanged\n");

        Result r = ok(vdkr(state, Map.of(), "run", "--rm", "-v", data + ":/data", "-v", ro + ":/ro:ro",
                "local/small:1", "sh", "-c", "cat /data/in.txt /ro/keep.txt; busybox mkdir -p /data/sub; "
                        + "echo written in the container > /data/sub/out.txt; echo x > /ro/nope.txt 2>/dev/null; true"));
        assertThat(r.out()).isEqualTo("from the host\nunchanged\n");
        assertThat(data.resolve("sub/out.txt")).hasContent("written in the container");
        assertThat(data.resolve("in.txt")).hasContent("from the host");
        assertThat(ro.resolve("nope.txt")).doesNotExist();

        // Fidelity: a second hardlink name, a FIFO, a device, setuid, a name that is not UTF-8, a
        // name like the old temporary file's, and the container's own exit code.
        Path v = Files.createDirectories(work.resolve("fidelity"));
        Files.writeString(v.resolve("f"), "old\n");
        Result f = vdkr(state, Map.of(), "run", "--rm", "-v", v + ":/v", "local/small:1", "sh", "-c",
                "cd /v && echo new > f && echo linked > a && busybox ln a b && busybox mkfifo p "
                        + "&& busybox mknod c c 1 3 && echo s > suid && busybox chmod 4755 suid "
                        + "&& printf latin1 > \"$(printf 'caf\\351')\" && echo chosen > .f.vbake-new; exit 7");
        assertThat(f.code()).as(f.err()).isEqualTo(7);
        assertThat(v.resolve("f")).hasContent("new");
        assertThat(v.resolve(".f.vbake-new")).hasContent("chosen");
        assertThat(Files.getAttribute(v.resolve("a"), "unix:ino")).isEqualTo(Files.getAttribute(v.resolve("b"), "unix:ino"));
        assertThat(Files.getAttribute(v.resolve("a"), "unix:nlink")).isEqualTo(2);
        assertThat((int) Files.getAttribute(v.resolve("p"), "unix:mode") & 0170000).isEqualTo(0010000);
        // Java cannot name the file; the shell can, byte for byte.
        Process cat = new ProcessBuilder("sh", "-c", "cat \"$(printf 'caf\\351')\"").directory(v.toFile()).start();
        assertThat(new String(cat.getInputStream().readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("latin1");
        boolean root = "root".equals(System.getProperty("user.name"));
        int suid = (int) Files.getAttribute(v.resolve("suid"), "unix:mode") & 07777;
        if (root) {
            assertThat((int) Files.getAttribute(v.resolve("c"), "unix:mode") & 0170000).isEqualTo(0020000);
            assertThat(suid).isEqualTo(04755);
        } else {
            assertThat(v.resolve("c")).doesNotExist();
            assertThat(suid).isEqualTo(0755);
            assertThat(f.err()).contains("warning: " + v + ": not kept (device nodes: \"c\"; setuid/setgid bits: \"suid\")");
        }
        try (var list = Files.list(v)) {
            assertThat(list.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith(".vbake-merge-"));
        }
    }

    @Test
    void publishedPortReachesTheContainerFromTheHost() throws Exception {
        Path state = newState("ports");
        Result cold = vdkr(state, Map.of(), "run", "--rm", "-p", "18080:8080", "local/small:1", "true");
        assertThat(cold.code()).isEqualTo(2);
        assertThat(cold.err()).contains("publishing ports (-p) needs a resident guest");

        ok(vdkr(state, Map.of(), "vmemres", "start"));
        ok(vdkr(state, Map.of(), "vimport", small.toString(), "local/small:1"));
        ok(vdkr(state, Map.of(), "run", "-d", "--name", "web", "-p", "18080:8080", "local/small:1",
                "busybox", "httpd", "-f", "-p", "8080", "-h", "/data"));
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        String body = null;
        for (int i = 0; i < 60 && body == null; i++) {
            try {
                java.net.http.HttpResponse<String> r = http.send(java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://127.0.0.1:18080/keep")).timeout(java.time.Duration.ofSeconds(5))
                        .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    body = r.body();
                }
            } catch (IOException e) {
                Thread.sleep(500);   // httpd not up yet
            }
        }
        assertThat(body).isEqualTo("keep\n");
        ok(vdkr(state, Map.of(), "rm", "-f", "web"));
    }

    @Test
    void storageExportFromAResidentGuestEqualsColdMode() throws Exception {
        Path resident = newState("export-resident");
        Path cold = newState("export-cold");
        Path residentTree = work.resolve("resident.tar");
        Path coldTree = work.resolve("cold.tar");

        ok(vdkr(resident, Map.of(), "vmemres", "start"));
        ok(vdkr(resident, Map.of(), "vimport", small.toString(), "local/small:1"));
        ok(vdkr(resident, Map.of(), "--storage", residentTree.toString(), "images"));
        assertThat(ok(vdkr(resident, Map.of(), "vmemres", "status")).out()).contains(": running");

        ok(vdkr(cold, Map.of(), "--storage", coldTree.toString(), "vimport", small.toString(), "local/small:1"));

        assertThat(normalized(residentTree)).isEqualTo(normalized(coldTree));

        // Containers that ran and were removed, failed, or still run never break an export (the
        // listing of their layers failed once any had existed) and are left out of it.
        List<String> images = entryNames(residentTree);
        assertThat(images).noneMatch(n -> n.startsWith("containers/"));
        ok(vdkr(resident, Map.of(), "run", "--rm", "local/small:1", "true"));
        Path afterRm = work.resolve("after-rm.tar");
        ok(vdkr(resident, Map.of(), "--storage", afterRm.toString(), "images"));
        assertThat(entryNames(afterRm)).isEqualTo(images);

        assertThat(vdkr(resident, Map.of(), "run", "--name", "failed", "local/small:1", "sh", "-c", "exit 3").code())
                .isEqualTo(3);
        ok(vdkr(resident, Map.of(), "run", "-d", "--name", "detached", "local/small:1", "busybox", "sleep", "600"));
        Path withContainers = work.resolve("with-containers.tar");
        Result exported = ok(vdkr(resident, Map.of(), "--storage", withContainers.toString(), "images"));
        assertThat(exported.err()).contains("left out 2 container(s) of the export (--storage-containers keeps them)");
        assertThat(entryNames(withContainers)).isEqualTo(images);
        Path kept = work.resolve("kept.tar");
        ok(vdkr(resident, Map.of(), "--storage", kept.toString(), "--storage-containers", "images"));
        String detachedId = ok(vdkr(resident, Map.of(), "inspect", "--format", "{{.Id}}", "detached")).out().strip();
        assertThat(entryNames(kept)).contains("containers/" + detachedId + "/config.v2.json");

        // Cold mode, on the same store with both containers still there.
        ok(vdkr(resident, Map.of(), "vmemres", "stop"));
        Path coldWithContainers = work.resolve("cold-with-containers.tar");
        Result coldExport = ok(vdkr(resident, Map.of(), "--storage", coldWithContainers.toString(), "images"));
        assertThat(coldExport.err()).contains("left out 2 container(s)");
        assertThat(entryNames(coldWithContainers)).isEqualTo(images);

        ok(vdkr(resident, Map.of(), "vimport", big.toString(), "local/big:1"));
        // Ctrl-C while the tree is exported: exit 130 like any interrupted command, nothing left.
        // QEMU is paused as soon as the export begins (96 MiB take a good second), so the Ctrl-C
        // lands in it.
        Path interrupted = work.resolve("interrupted.tar");
        Path errFile = work.resolve("interrupted.err");
        List<String> argv = new ArrayList<>(launcher("vdkr"));
        argv.addAll(List.of("-a", "aarch64", "--state-dir", resident.toString(), "--storage", interrupted.toString(),
                "images"));
        Process client = new ProcessBuilder(argv).redirectErrorStream(false).redirectError(errFile.toFile())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())).start();
        Path pidFile = resident.resolve("trixie/run/qemu.pid");
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        while (!(Files.exists(errFile) && Files.readString(errFile).contains("exporting"))) {
            assertThat(System.nanoTime()).as("no export started").isLessThan(deadline);
            Thread.sleep(10);
        }
        long qemu = Long.parseLong(Files.readString(pidFile).strip());
        signal("STOP", qemu);
        try {
            signal("INT", client.pid());
            Thread.sleep(1000);
        } finally {
            signal("CONT", qemu);
        }
        assertThat(client.waitFor(2, TimeUnit.MINUTES)).isTrue();
        String interruptedErr = Files.readString(errFile);
        assertThat(client.exitValue()).as(interruptedErr).isEqualTo(130);
        assertThat(interruptedErr).contains("vdkr: interrupted");
        assertThat(interrupted).doesNotExist();
        try (var list = Files.list(work)) {
            assertThat(list.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith(".interrupted.tar."));
        }
        assertThat(ok(vdkr(resident, Map.of(), "images", "-q")).out()).contains(smallId().substring(7, 19));
    }

    /**
     * The entry names of a storage tar, but for the volume database dockerd rewrites at will and
     * the {@code committed} marks overlay2 gives an image layer once a container has used it.
     */
    private static List<String> entryNames(Path tar) throws IOException {
        List<String> names = new ArrayList<>();
        try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(
                new java.io.BufferedInputStream(Files.newInputStream(tar)))) {
            for (var e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                String n = e.getName().startsWith("./") ? e.getName().substring(2) : e.getName();
                if (!n.equals("volumes/metadata.db") && !n.matches("overlay2/[0-9a-f]{64}/committed")) {
                    names.add(n);
                }
            }
        }
        return names;
    }

    private static String normalized(Path tree) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TreeNormalizer.normalize(tree, out, StoreKind.DOCKER_OVERLAY2);
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(out.toByteArray()));
    }
}
