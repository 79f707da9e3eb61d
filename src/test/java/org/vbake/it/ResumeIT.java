package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.it.CliProcess.ok;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.CliProcess.Result;
import org.vbake.it.fixtures.TestImages;

/**
 * Cold commands resume the guest the previous command saved instead of booting, and answer the
 * same: images, inspect, a container run, inputs from host files, exports. A saved guest that no
 * longer matches (its state disk touched, its device state cut short) is not used, with one
 * warning, and a kill -9 of QEMU in the middle of a save or a resume leaves a store that checks
 * clean and holds everything imported before. Both arches, both runtimes; the whole list on
 * aarch64 docker.
 */
class ResumeIT {

    private static Path work;
    private static CliProcess cli;
    private static final List<Path> states = new ArrayList<>();

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
    static void setUp() throws IOException {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-resume-");
        cli = new CliProcess(work);
    }

    @AfterAll
    static void cleanUp() throws IOException {
        if (work != null) {
            Trees.deleteTree(work);
        }
    }

    @AfterEach
    void nothingLeftRunning() {
        List<String> left = ProcessHandle.allProcesses().map(p -> p.info().commandLine().orElse(""))
                .filter(c -> c.contains("qemu-system") && c.contains(work.toString())).toList();
        assertThat(left).as("QEMU processes left behind").isEmpty();
    }

    private record Target(Arch arch, RuntimeKind runtime, Path state, Path image, String id) {
        String prog() {
            return runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn";
        }

        Path record() {
            return state.resolve("trixie/snapshot/snapshot.json");
        }
    }

    private static Target target(Arch arch, RuntimeKind runtime, String name) throws Exception {
        Path busybox = TestImages.guestBusybox(arch, runtime, work.resolve("busybox-" + arch.id() + "-" + runtime.id()));
        TestImages.Platform platform = arch == Arch.AARCH64 ? TestImages.Platform.ARM64 : TestImages.Platform.AMD64;
        Path archive = work.resolve("small-" + arch.id() + "-" + runtime.id() + ".tar");
        String id = TestImages.single(platform, busybox).writeOciArchive(archive).image(platform).configDigest();
        Path state = work.resolve(name);
        states.add(state);
        return new Target(arch, runtime, state, archive, id);
    }

    private static Result run(Target t, String... args) throws IOException, InterruptedException {
        return run(t, Map.of(), args);
    }

    private static Result run(Target t, Map<String, String> env, String... args)
            throws IOException, InterruptedException {
        List<String> all = new ArrayList<>(List.of("--debug"));
        all.addAll(List.of(args));
        return cli.cli(t.prog(), t.arch().id(), t.state(), env, null, all.toArray(String[]::new));
    }

    private static boolean resumed(Result r) {
        return r.err().contains("[phase] resume (qemu start to engine ready)");
    }

    /** What a user sees of the store: image list, the image's ID and a file read by a container. */
    private static List<String> answers(Target t, boolean resume) throws IOException, InterruptedException {
        List<String> flags = resume ? List.of() : List.of("--no-resume");
        List<String> out = new ArrayList<>();
        for (List<String> cmd : List.of(
                List.of("images", "--format", "{{.Repository}}:{{.Tag}}"),
                List.of("image", "inspect", "--format", "{{.Id}}", "local/small:1"),
                List.of("run", "--rm", "local/small:1", "cat", "/data/keep"))) {
            List<String> args = new ArrayList<>(flags);
            args.addAll(cmd);
            Result r = ok(run(t, args.toArray(String[]::new)));
            assertThat(resumed(r)).as("resumed: %s", cmd).isEqualTo(resume);
            out.add(r.out().strip());
        }
        return out;
    }

    @ParameterizedTest(name = "{1} on {0}: a resumed guest answers as a booted one")
    @MethodSource("targets")
    void aResumedGuestAnswersAsABootedOne(Arch arch, RuntimeKind runtime) throws Exception {
        Target t = target(arch, runtime, "answers-" + arch.id() + "-" + runtime.id());
        Result first = ok(run(t, "vimport", t.image().toString(), "local/small:1"));
        assertThat(resumed(first)).isFalse();
        assertThat(first.err()).contains("[phase] guest saved");
        assertThat(t.record()).exists();

        List<String> resumedAnswers = answers(t, true);
        List<String> bootedAnswers = answers(t, false);
        assertThat(resumedAnswers).isEqualTo(bootedAnswers);
        assertThat(resumedAnswers.get(0)).contains("local/small:1");
        assertThat(resumedAnswers.get(1)).endsWith(t.id().substring("sha256:".length()));
        assertThat(resumedAnswers.get(2)).isEqualTo("keep");
        // --no-resume boots and powers off: nothing saved afterwards.
        assertThat(t.record()).doesNotExist();
    }

    @Test
    void theWholeListOnAarch64Docker() throws Exception {
        Target t = target(Arch.AARCH64, RuntimeKind.DOCKER, "whole");
        ok(run(t, "vimport", t.image().toString(), "local/small:1"));

        // Host files reach a resumed guest (streamed), and its clock is the host's.
        Result again = ok(run(t, "vimport", t.image().toString(), "local/again:1"));
        assertThat(resumed(again)).isTrue();
        long before = System.currentTimeMillis() / 1000;
        Result date = ok(run(t, "run", "--rm", "local/small:1", "busybox", "date", "+%s"));
        long after = System.currentTimeMillis() / 1000;
        assertThat(resumed(date)).isTrue();
        assertThat(Long.parseLong(date.out().strip())).isBetween(before - 2, after + 2);

        // Exports from a resumed guest: a tar, and an ext4 image on a disk added after the resume.
        Path tar = work.resolve("resumed.tar");
        Result exported = ok(run(t, "--storage", tar.toString(), "images"));
        assertThat(resumed(exported)).isTrue();
        assertThat(tarNames(tar)).anyMatch(n -> n.startsWith("image/overlay2/imagedb/content/sha256/"
                + t.id().substring(7)));
        Path ext4 = work.resolve("resumed.ext4");
        Result partition = ok(run(t, "--storage", ext4.toString(), "images"));
        assertThat(resumed(partition)).isTrue();
        assertThat(ext4Magic(ext4)).isEqualTo(0xEF53);
        assertThat(t.record()).as("a guest with a disk added is powered off, not saved").doesNotExist();
        Result afterPartition = ok(run(t, "images", "--format", "{{.Repository}}:{{.Tag}}"));
        assertThat(resumed(afterPartition)).isFalse();
        assertThat(afterPartition.out()).contains("local/small:1", "local/again:1");

        // A state disk touched after the save: not resumed, one warning, the same answer.
        assertThat(t.record()).exists();
        Files.setLastModifiedTime(t.state().resolve("trixie/state.ext4"),
                java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis()));
        Result touched = ok(run(t, "images", "--format", "{{.Repository}}:{{.Tag}}"));
        assertThat(resumed(touched)).isFalse();
        assertThat(touched.err()).containsOnlyOnce("warning: not resuming the saved guest: the state disk changed "
                + "since it was saved; booting");
        assertThat(lines(touched.out())).isEqualTo(lines(afterPartition.out()));

        // A saved device state cut short: the same.
        Path devices = t.state().resolve("trixie/snapshot/devices");
        try (RandomAccessFile f = new RandomAccessFile(devices.toFile(), "rw")) {
            f.setLength(f.length() / 2);
        }
        Result truncated = ok(run(t, "images", "--format", "{{.Repository}}:{{.Tag}}"));
        assertThat(resumed(truncated)).isFalse();
        assertThat(truncated.err()).contains("warning: not resuming the saved guest: its device state is truncated "
                + "or corrupt; booting");
        assertThat(lines(truncated.out())).isEqualTo(lines(afterPartition.out()));

        // kill -9 of QEMU while the guest is being saved.
        String saveBefore = savedContent(t);
        killQemuAt(t, "save:8000", "guest frozen and stopped", "vimport", t.image().toString(), "local/third:1");
        assertClean(t);
        assertThat(t.record()).doesNotExist();
        Result afterSaveKill = ok(run(t, "images", "--format", "{{.Repository}}:{{.Tag}}"));
        assertThat(resumed(afterSaveKill)).isFalse();
        assertThat(afterSaveKill.out()).contains("local/small:1", "local/again:1", "local/third:1");
        assertThat(savedContent(t)).isEqualTo(saveBefore);

        // kill -9 of QEMU while the saved guest is being loaded: the command boots instead.
        assertThat(t.record()).exists();
        Result resumeKilled = killQemuAt(t, "resume:8000", "loading the saved guest", "images", "--format",
                "{{.Repository}}:{{.Tag}}");
        assertThat(resumeKilled.code()).as(resumeKilled.err()).isZero();
        assertThat(resumeKilled.err()).contains("warning: could not resume the saved guest", "booting");
        assertThat(lines(resumeKilled.out())).isEqualTo(lines(afterSaveKill.out()));
        assertClean(t);
        assertThat(savedContent(t)).isEqualTo(saveBefore);
    }

    /** Runs a command with a pause at {@code pause}, kills QEMU when stderr shows {@code marker}, returns its result. */
    private static Result killQemuAt(Target t, String pause, String marker, String... args) throws Exception {
        Path err = work.resolve("kill-" + pause.replace(':', '-') + ".err");
        List<String> argv = new ArrayList<>(CliProcess.launcher(t.prog()));
        argv.addAll(List.of("-a", t.arch().id(), "--state-dir", t.state().toString(), "--debug"));
        argv.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(argv).redirectError(err.toFile())
                .redirectOutput(work.resolve("kill.out").toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().put("VBAKE_TEST_PAUSE", pause);
        pb.environment().put("XDG_CONFIG_HOME", work.resolve("config").toString());
        Process p = pb.start();
        CompletableFuture<Boolean> done = p.onExit().thenApply(x -> true);
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!(Files.exists(err) && Files.readString(err).contains(marker))) {
            assertThat(done.isDone()).as("ended before '%s': %s", marker, Files.exists(err) ? Files.readString(err) : "")
                    .isFalse();
            assertThat(System.nanoTime()).isLessThan(deadline);
            Thread.sleep(20);
        }
        long qemu = Long.parseLong(Files.readString(t.state().resolve("trixie/run/qemu.pid")).strip());
        ProcessHandle.of(qemu).orElseThrow().destroyForcibly();
        assertThat(p.waitFor(5, TimeUnit.MINUTES)).isTrue();
        return new Result(p.exitValue(), Files.readString(work.resolve("kill.out")), Files.readString(err), 0);
    }

    private static void assertClean(Target t) throws Exception {
        Process fsck = new ProcessBuilder("/sbin/e2fsck", "-fn", t.state().resolve("trixie/state.ext4").toString())
                .redirectErrorStream(true).start();
        String out = new String(fsck.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(fsck.waitFor()).as(out).isZero();
    }

    /** The bytes of every entry of {@code docker save} of the first image, as names and sizes. */
    private static String savedContent(Target t) throws Exception {
        Path saved = work.resolve("saved-" + System.nanoTime() + ".tar");
        ok(run(t, "save", "-o", saved.toString(), "local/small:1"));
        StringBuilder sb = new StringBuilder();
        try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(Files.newInputStream(saved))) {
            for (var e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                if (e.isFile()) {
                    sb.append(e.getName()).append(' ').append(org.vbake.image.Digest.of(in)).append('\n');
                }
            }
        }
        Files.delete(saved);
        return sb.toString();
    }

    /** Sorted lines: docker lists the repositories of one image in any order (a Go map walk). */
    private static List<String> lines(String text) {
        return text.lines().sorted().toList();
    }

    private static List<String> tarNames(Path tar) throws IOException {
        List<String> names = new ArrayList<>();
        try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(Files.newInputStream(tar))) {
            for (var e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                names.add(e.getName().replaceFirst("^\\./", ""));
            }
        }
        return names;
    }

    private static int ext4Magic(Path image) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.seek(1024 + 0x38);
            return (f.read() & 0xff) | (f.read() & 0xff) << 8;
        }
    }
}
