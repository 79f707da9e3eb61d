package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.InProcessCli.Result;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.Oracle;
import org.vbake.it.fixtures.TestImages;
import org.vbake.it.fixtures.TestImages.Platform;

/**
 * The core job, proven with independent checks: images we build ourselves (whiteout, opaque dir,
 * hardlink, file capability, symlink, FIFO, uid 1000, setuid) go into the target-arch engine by a
 * registry pull and by vimport; the exported tree is unpacked on the host and read by the host's
 * own dockerd or podman, which must see the upstream image ID, the original layer diffIDs and
 * exactly the expected container filesystem. {@code vbake verify} must pass on the tree and fail
 * on the same tree with one layer removed.
 */
class ImportExportIT {

    private static Path work;
    private static LocalRegistry registry;
    private static Map<Arch, Path> busybox = new HashMap<>();
    private static TestImages.Expected pushed;

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
    static void imagesAndRegistry() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-ie-");
        Map<Platform, Path> byPlatform = new LinkedHashMap<>();
        for (Arch a : Arch.values()) {
            Path bb = TestImages.guestBusybox(a, RuntimeKind.DOCKER, work.resolve("busybox-" + a.id()));
            busybox.put(a, bb);
            byPlatform.put(platform(a), bb);
        }
        Path layout = work.resolve("index-layout");
        pushed = TestImages.index(byPlatform).writeLayout(layout);
        registry = LocalRegistry.start(Files.createDirectories(work.resolve("registry")));
        String digest = registry.push(layout, "test/special", "1");
        assertThat(digest).isEqualTo(pushed.indexDigest());
    }

    @AfterAll
    static void cleanUp() throws Exception {
        if (registry != null) {
            registry.close();
        }
        if (work != null) {
            Trees.deleteTree(work);
        }
    }

    @AfterEach
    void noQemuLeft() {
        List<String> left = ProcessHandle.allProcesses()
                .map(p -> p.info().commandLine().orElse(""))
                .filter(c -> c.contains("qemu-system") && c.contains(work.toString()))
                .toList();
        assertThat(left).as("QEMU processes left behind").isEmpty();
    }

    @ParameterizedTest(name = "{1} on {0}: pull from a registry index, export, read back by the host engine")
    @MethodSource("targets")
    void pulledImageIsExactlyUpstream(Arch arch, RuntimeKind runtime) throws Exception {
        String ref = registry.host() + "/test/special:1";
        Path tree = work.resolve("pull-" + runtime.id() + "-" + arch.id() + ".tar.zst");

        Result r = cli(arch, runtime, "--storage", tree.toString(), "pull", ref);

        assertThat(r.code()).as(r.err()).isZero();
        TestImages.PlatformImage expected = pushed.image(platform(arch));
        assertThat(r.out()).contains("Digest: " + pushed.indexDigest(), "Image ID: " + expected.configDigest(), ref);
        assertThat(r.err()).contains("not pinned by digest");

        Oracle.Result host = Oracle.forProject().run(engine(runtime), tree,
                work.resolve("oracle-pull-" + runtime.id() + "-" + arch.id()), ref);
        assertThat(host.differencesFrom(expected)).isEmpty();
        assertThat(host.repoTags()).anyMatch(t -> t.endsWith("/test/special:1"));
        // docker records the digest that was pulled (the index); podman the platform manifest's.
        String digest = runtime == RuntimeKind.DOCKER ? pushed.indexDigest() : expected.manifestDigest();
        assertThat(host.repoDigests()).contains(registry.host() + "/test/special@" + digest);
        if (runtime == RuntimeKind.PODMAN) {
            assertThat(work.resolve("pull-podman-" + arch.id() + ".storage.conf")).content()
                    .contains("driver = \"overlay\"");
        }
    }

    @ParameterizedTest(name = "{1} on {0}: vimport an oci-archive, export, verify; a layer removed fails verify")
    @MethodSource("targets")
    void vimportedTreeVerifiesAndABrokenOneDoesNot(Arch arch, RuntimeKind runtime) throws Exception {
        Path archive = work.resolve("single-" + arch.id() + ".oci.tar");
        TestImages.Expected single = TestImages.single(platform(arch), busybox.get(arch)).writeOciArchive(archive);
        Path tree = work.resolve("vimport-" + runtime.id() + "-" + arch.id() + ".tar");

        Result r = cli(arch, runtime, "--storage", tree.toString(), "vimport", archive.toString(), "local/oci:1");

        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("Loaded image: docker.io/local/oci:1");
        Oracle.Result host = Oracle.forProject().run(engine(runtime), tree,
                work.resolve("oracle-vimport-" + runtime.id() + "-" + arch.id()), "docker.io/local/oci:1");
        assertThat(host.differencesFrom(single.single())).isEmpty();

        Result ok = vbake("verify", tree.toString(), "-a", arch.id(), "--", "/bin/sh", "-c",
                "test \"$(cat /data/added)\" = added && test ! -e /data/gone");
        assertThat(ok.code()).as(ok.err()).isZero();
        assertThat(ok.out()).contains("ok     " + single.single().configDigest(), "verified 1 image(s)");

        Path broken = work.resolve("broken-" + runtime.id() + "-" + arch.id() + ".tar");
        String removed = removeOneLayer(tree, broken, runtime);
        Result bad = vbake("verify", broken.toString(), "-a", arch.id());
        assertThat(bad.code()).as(bad.out() + bad.err()).isEqualTo(1);
        assertThat(bad.out()).contains("FAILED " + single.single().configDigest(), removed.substring(0, 12))
                .contains("verify failed: 1 of 1 image(s)");
    }

    @ParameterizedTest(name = "{0} on aarch64: --storage x.ext4 is a partition image the host engine reads")
    @org.junit.jupiter.params.provider.EnumSource(RuntimeKind.class)
    void ext4PartitionImageHoldsTheSameTree(RuntimeKind runtime) throws Exception {
        Arch arch = Arch.AARCH64;
        Path archive = work.resolve("single-ext4-" + runtime.id() + ".oci.tar");
        TestImages.Expected single = TestImages.single(platform(arch), busybox.get(arch)).writeOciArchive(archive);
        Path image = work.resolve("data-" + runtime.id() + ".ext4");

        Result r = cli(arch, runtime, "--storage", image.toString(), "vimport", archive.toString(), "local/ext4:1");

        assertThat(r.code()).as(r.err()).isZero();
        assertThat(image).isRegularFile();
        // Mounted read-only on the host (loop device), tarred with GNU tar keeping xattrs, and
        // handed to the host engine like any export.
        Path mnt = Files.createDirectories(work.resolve("mnt-" + runtime.id()));
        Path tree = work.resolve("from-ext4-" + runtime.id() + ".tar");
        run("mount", "-o", "loop,ro", image.toString(), mnt.toString());
        try {
            run("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--exclude=./lost+found", "-C",
                    mnt.toString(), "-cf", tree.toString(), ".");
        } finally {
            run("umount", mnt.toString());
        }
        Oracle.Result host = Oracle.forProject().run(engine(runtime), tree,
                work.resolve("oracle-ext4-" + runtime.id()), "docker.io/local/ext4:1");
        assertThat(host.differencesFrom(single.single())).isEmpty();
    }

    private static void run(String... argv) throws Exception {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(String.join(" ", argv) + ": " + log).isZero();
    }

    /** Copies the tree without one layer directory (the first one in it); returns the layer's dir name. */
    private static String removeOneLayer(Path tree, Path out, RuntimeKind runtime) throws Exception {
        String prefix = runtime == RuntimeKind.DOCKER ? "./overlay2/" : "./overlay/";
        String layer = null;
        try (TarArchiveInputStream in = new TarArchiveInputStream(Files.newInputStream(tree))) {
            for (TarArchiveEntry e; (e = in.getNextEntry()) != null; ) {
                String n = e.getName();
                if (n.startsWith(prefix) && n.length() > prefix.length() + 64
                        && n.substring(prefix.length(), prefix.length() + 64).matches("[0-9a-f]{64}")) {
                    layer = n.substring(prefix.length(), prefix.length() + 64);
                    break;
                }
            }
        }
        assertThat(layer).as("a layer directory in " + tree).isNotNull();
        String drop = prefix + layer + "/";
        try (var in = new java.io.BufferedInputStream(Files.newInputStream(tree));
                var os = new java.io.BufferedOutputStream(Files.newOutputStream(out))) {
            copyTarWithout(in, os, drop);
        }
        return layer;
    }

    /**
     * Copies a tar block by block, leaving out entries under {@code dropPrefix} together with their
     * PAX headers; everything else (binary xattr records included) is copied byte for byte.
     */
    private static void copyTarWithout(java.io.InputStream in, java.io.OutputStream out, String dropPrefix)
            throws java.io.IOException {
        byte[] pending = null;
        String paxPath = null;
        while (true) {
            byte[] header = in.readNBytes(512);
            if (header.length < 512 || java.util.Arrays.equals(header, new byte[512])) {
                out.write(new byte[1024]);
                return;
            }
            long size = Long.parseLong(new String(header, 124, 12, StandardCharsets.US_ASCII).trim().replace("\0", ""), 8);
            byte[] data = in.readNBytes((int) ((size + 511) / 512 * 512));
            char type = (char) header[156];
            if (type == 'x') {
                pending = concat(header, data);
                String records = new String(data, 0, (int) size, StandardCharsets.ISO_8859_1);
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\d+ path=([^\n]*)\n").matcher(records);
                paxPath = m.find() ? new String(m.group(1).getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8)
                        : null;
                continue;
            }
            String name = paxPath != null ? paxPath : cString(header, 345, 155).isEmpty() ? cString(header, 0, 100)
                    : cString(header, 345, 155) + "/" + cString(header, 0, 100);
            if (!name.startsWith(dropPrefix)) {
                if (pending != null) {
                    out.write(pending);
                }
                out.write(header);
                out.write(data);
            }
            pending = null;
            paxPath = null;
        }
    }

    private static String cString(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) {
            end++;
        }
        return new String(b, off, end - off, StandardCharsets.UTF_8);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    private static Platform platform(Arch a) {
        return a == Arch.AARCH64 ? Platform.ARM64 : Platform.AMD64;
    }

    private static Oracle.Engine engine(RuntimeKind r) {
        return r == RuntimeKind.DOCKER ? Oracle.Engine.DOCKER : Oracle.Engine.PODMAN;
    }


    private static Result cli(Arch arch, RuntimeKind runtime, String... args) {
        List<String> argv = new ArrayList<>(List.of("-a", arch.id(), "--state-dir",
                work.resolve("state-" + runtime.id() + "-" + arch.id()).toString()));
        argv.addAll(List.of(args));
        return main(runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn", argv);
    }

    private static Result vbake(String... args) {
        return main("vbake", List.of(args));
    }

    private static Result main(String prog, List<String> argv) {
        return InProcessCli.run(prog, argv);
    }
}
