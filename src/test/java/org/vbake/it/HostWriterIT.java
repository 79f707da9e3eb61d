package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.it.CliProcess.ok;

import com.fasterxml.jackson.databind.ObjectMapper;
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
import java.util.TreeMap;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.CliProcess.Result;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.Oracle;
import org.vbake.it.fixtures.StorageCorpus;
import org.vbake.it.fixtures.TestImages;

/**
 * The host writer against the engine, on a corpus of every layer feature that can differ
 * ({@link StorageCorpus}): for each engine version and storage driver, the same manifest baked by
 * the engine in a target-arch guest ({@code --writer guest}) and by vbake on the host ({@code
 * --writer host}) must give the same storage tree, byte for byte. On a difference the test shows
 * the entries that differ. The host engines then read host-written trees of the test images (image
 * ID, diff IDs from {@code save}, the filesystem of a container), and an input the writer cannot
 * mirror (a sparse file) goes to the guest in {@code auto} and is refused with {@code host}.
 */
class HostWriterIT {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String EPOCH = "1740000000"; // after some corpus mtimes, before the clock

    private static Path work;
    private static CliProcess cli;
    private static LocalRegistry registry;
    private static StorageCorpus.Written corpus;
    private static String multiRef;
    private static String bareRef;

    @BeforeAll
    static void corpus() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-hostwriter-");
        cli = new CliProcess(work);
        corpus = StorageCorpus.write(work.resolve("corpus"));
        registry = LocalRegistry.start(Files.createDirectories(work.resolve("registry")));
        String multi = registry.push(corpus.layouts().get("index"), "corpus/multi", "1");
        multiRef = registry.host() + "/corpus/multi:1@" + multi;
        String bare = registry.push(corpus.layouts().get("bare"), "corpus/bare", "1");
        bareRef = registry.host() + "/corpus/bare@" + bare;
    }

    @AfterAll
    static void cleanUp() throws Exception {
        if (registry != null) {
            registry.close();
        }
        if (work != null && !Boolean.getBoolean("vbake.it.keep")) {
            Trees.deleteTree(work);
        }
    }

    static Stream<Arguments> engines() {
        return Stream.of(
                Arguments.of("docker", "overlay2", "trixie"),
                Arguments.of("docker", "vfs", "trixie"),
                Arguments.of("podman", "overlay", "trixie"),
                Arguments.of("podman", "vfs", "trixie"),
                Arguments.of("docker", "overlay2", "bookworm"),
                Arguments.of("docker", "vfs", "bookworm"),
                Arguments.of("podman", "overlay", "bookworm"),
                Arguments.of("podman", "vfs", "bookworm"));
    }

    private static Path manifest(String runtime, String driver, String suite) throws IOException {
        StringBuilder yaml = new StringBuilder("""
                arch: aarch64
                runtime: %s
                driver: %s
                suite: %s
                output: tar
                images:
                  - oci: %s
                    name: corpus/rich:1
                    tags: [corpus/rich:latest, registry.test:5000/team/rich:v1]
                  - oci: %s
                    name: corpus/shared:1
                  - ref: %s
                  - ref: %s
                """.formatted(runtime, driver, suite, corpus.layouts().get("rich"), corpus.layouts().get("shared"),
                multiRef, bareRef));
        if (driver.equals("vfs")) {
            // A hardlink to a file of the layer below: only a copy of the lower layers can hold it.
            yaml.append("  - oci: ").append(corpus.layouts().get("across")).append("\n    name: corpus/across:1\n");
        }
        return Files.writeString(work.resolve("bake-" + runtime + "-" + driver + "-" + suite + ".yaml"), yaml);
    }

    private static Result vbake(String... args) throws IOException, InterruptedException {
        return cli.run(argv(args), Map.of("SOURCE_DATE_EPOCH", EPOCH), null);
    }

    private static List<String> argv(String... args) {
        List<String> argv = new ArrayList<>(CliProcess.launcher("vbake"));
        argv.addAll(List.of(args));
        return argv;
    }

    @ParameterizedTest(name = "{0} {1} ({2}): the host writer's tree is the engine's, byte for byte")
    @MethodSource("engines")
    void hostWriterWritesTheEnginesTree(String runtime, String driver, String suite) throws Exception {
        Path m = manifest(runtime, driver, suite);
        String key = runtime + "-" + driver + "-" + suite;
        Path guest = work.resolve("guest-" + key);
        Result g = ok(vbake("bake", m.toString(), "-o", guest.toString(), "--writer", "guest", "--fresh",
                "--state-dir", work.resolve("state-" + key).toString(), "--progress=plain"));
        Path host = work.resolve("host-" + key);
        Result h = ok(vbake("bake", m.toString(), "-o", host.toString(), "--writer", "host", "--progress=plain"));
        assertThat(g.out()).contains("by the guest (" + runtime + " " + suite + " " + driver + ")");
        assertThat(h.out()).contains("the tree written on the host (" + runtime + " ");

        Path gt = guest.resolve("storage.tar");
        Path ht = host.resolve("storage.tar");
        if (!java.util.Arrays.equals(Files.readAllBytes(gt), Files.readAllBytes(ht))) {
            assertThat(difference(listing(ht), listing(gt))).as("entries only the host writer's tree has (+) and "
                    + "only the engine's has (-)").isEmpty();
        }
        assertThat(ht).hasSameBinaryContentAs(gt);
        assertThat(JSON.readTree(host.resolve("listing.json").toFile()).path("writer").asText())
                .startsWith("host (" + runtime + " ");
        // h's own timing, for the record: the guest bake takes seconds, the host one a fraction.
        System.out.printf("%s: guest %.1f s, host %.1f s%n", key, g.millis() / 1000.0, h.millis() / 1000.0);
    }

    /** The lines only one side has, "+ " for the host's, "- " for the engine's; then order differences. */
    static List<String> difference(List<String> host, List<String> engine) {
        List<String> out = new ArrayList<>();
        java.util.Set<String> h = new java.util.LinkedHashSet<>(host);
        java.util.Set<String> g = new java.util.LinkedHashSet<>(engine);
        for (String l : engine) {
            if (!h.contains(l)) {
                out.add("- " + l);
            }
        }
        for (String l : host) {
            if (!g.contains(l)) {
                out.add("+ " + l);
            }
        }
        if (out.isEmpty() && !host.equals(engine)) {
            out.add("same entries in another order");
        }
        return out;
    }

    /** Every entry as one line: type, mode, owner, mtime, size, link, attributes and content digest. */
    static List<String> listing(Path tar) throws IOException {
        List<String> out = new ArrayList<>();
        try (TarArchiveInputStream in = new TarArchiveInputStream(Files.newInputStream(tar), "ISO-8859-1")) {
            for (TarArchiveEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                Map<String, String> x = new TreeMap<>();
                e.getExtraPaxHeaders().forEach((k, v) -> x.put(k, HexFormat.of().formatHex(
                        v.getBytes(StandardCharsets.ISO_8859_1))));
                out.add(e.getName() + " type=" + (char) e.getLinkFlag() + " mode=" + Integer.toOctalString(e.getMode())
                        + " owner=" + e.getLongUserId() + ":" + e.getLongGroupId() + " mtime=" + e.getModTime().getTime() / 1000
                        + " size=" + e.getSize() + " link=" + e.getLinkName() + " dev=" + e.getDevMajor() + ","
                        + e.getDevMinor() + " x=" + x + " sha=" + sha256(in));
            }
        }
        return out;
    }

    private static String sha256(InputStream in) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] b = new byte[1 << 16];
            for (int n; (n = in.read(b)) > 0; ) {
                md.update(b, 0, n);
            }
            return HexFormat.of().formatHex(md.digest()).substring(0, 16);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @ParameterizedTest(name = "{0}: the host engine reads host-written trees of both arches")
    @EnumSource(RuntimeKind.class)
    void hostEnginesReadHostWrittenTrees(RuntimeKind runtime) throws Exception {
        for (Arch arch : Arch.values()) {
            TestImages.Platform platform = arch == Arch.AARCH64 ? TestImages.Platform.ARM64 : TestImages.Platform.AMD64;
            Path busybox = TestImages.guestBusybox(arch, RuntimeKind.DOCKER, work.resolve("busybox-" + arch.id()));
            Path layout = work.resolve("images-" + arch.id());
            TestImages.Expected expected = TestImages.single(platform, busybox).writeLayout(layout);
            String yaml = """
                    arch: %s
                    runtime: %s
                    output: tar.zst
                    images:
                      - oci: %s
                        name: local/oracle:1
                    """.formatted(arch.id(), runtime.id(), layout);
            Path m = Files.writeString(work.resolve("oracle-" + runtime.id() + "-" + arch.id() + ".yaml"), yaml);
            Path out = work.resolve("oracle-out-" + runtime.id() + "-" + arch.id());
            ok(vbake("bake", m.toString(), "-o", out.toString(), "--writer", "host"));
            Oracle.Engine engine = runtime == RuntimeKind.DOCKER ? Oracle.Engine.DOCKER : Oracle.Engine.PODMAN;
            Oracle.Result read = Oracle.forProject().run(engine, out.resolve("storage.tar.zst"),
                    work.resolve("oracle-" + runtime.id() + "-" + arch.id()), "docker.io/local/oracle:1");
            assertThat(read.differencesFrom(expected.single())).as(arch + " " + runtime).isEmpty();
            assertThat(read.savedDiffIds()).isEqualTo(expected.single().diffIds());
            assertThat(read.exportListing().get("bin/capped").xattrs())
                    .containsEntry("security.capability", "0100000200200000000000000000000000000000");
        }
    }

    @Test
    void ext4OutputIsReproducibleHoldsTheTreeAndTheHostEngineReadsIt() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(System.getProperty("user.name").equals("root"),
                "mounting the image on the host needs root");
        Path busybox = TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox-aarch64"));
        Path layout = work.resolve("ext4-images");
        TestImages.Expected expected = TestImages.single(TestImages.Platform.ARM64, busybox).writeLayout(layout);
        String images = """
                images:
                  - oci: %s
                    name: corpus/rich:1
                  - oci: %s
                    name: local/oracle:1
                """.formatted(corpus.layouts().get("rich"), layout);
        Path tarManifest = Files.writeString(work.resolve("ext4-as-tar.yaml"),
                "arch: aarch64\nruntime: docker\noutput: tar\n" + images);
        Path ext4Manifest = Files.writeString(work.resolve("ext4.yaml"),
                "arch: aarch64\nruntime: docker\noutput: ext4\n" + images);
        Path asTar = work.resolve("ext4-as-tar");
        ok(vbake("bake", tarManifest.toString(), "-o", asTar.toString(), "--writer", "host"));
        // The first boots a guest and leaves a snapshot; the second resumes it and gets its output
        // disk hot-plugged: both ways must give the same bytes.
        String state = work.resolve("state-ext4").toString();
        Path a = work.resolve("ext4-a");
        Path b = work.resolve("ext4-b");
        ok(vbake("bake", ext4Manifest.toString(), "-o", a.toString(), "--state-dir", state));
        ok(vbake("bake", ext4Manifest.toString(), "-o", b.toString(), "--state-dir", state, "--no-cache"));
        Path image = a.resolve("storage.ext4");
        assertThat(b.resolve("storage.ext4")).hasSameBinaryContentAs(image);
        Path tooSmall = Files.writeString(work.resolve("ext4-small.yaml"),
                "arch: aarch64\nruntime: docker\noutput: ext4\nsize: 8M\n" + images);
        Result small = vbake("bake", tooSmall.toString(), "-o", work.resolve("ext4-small").toString(),
                "--state-dir", state);
        assertThat(small.code()).as(small.err()).isEqualTo(2);
        assertThat(small.err()).containsPattern("size: 8388608 bytes is less than the \\d+ bytes \\([0-9.]+ MB\\) "
                + "the tree needs as ext4");
        assertThat(work.resolve("ext4-small")).doesNotExist();
        assertThat(a.resolve("storage.tar")).doesNotExist();

        var ext4 = JSON.readTree(a.resolve("listing.json").toFile()).path("ext4");
        assertThat(ext4.path("imageBytes").asLong()).isEqualTo(Files.size(image));
        assertThat(ext4.path("neededBytes").asLong()).isPositive().isLessThan(Files.size(image));
        long unpacked = 0;
        try (TarArchiveInputStream in = new TarArchiveInputStream(Files.newInputStream(asTar.resolve("storage.tar")))) {
            for (TarArchiveEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                unpacked += e.isFile() && !e.isLink() ? e.getSize() : 0;
            }
        }
        assertThat(ext4.path("unpackedBytes").asLong()).isEqualTo(unpacked);

        // Mounted on the host and tarred by GNU tar: every entry as the tar output has it.
        Path mnt = Files.createDirectories(work.resolve("ext4-mnt"));
        Path fromExt4 = work.resolve("from-ext4.tar");
        run("mount", "-o", "loop,ro", image.toString(), mnt.toString());
        try {
            run("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--exclude=./lost+found", "-C",
                    mnt.toString(), "-cf", fromExt4.toString(), ".");
        } finally {
            run("umount", mnt.toString());
        }
        assertThat(difference(comparable(fromExt4), comparable(asTar.resolve("storage.tar"))))
                .as("entries only the ext4 image has (+) and only the tar output has (-)").isEmpty();
        Oracle.Result read = Oracle.forProject().run(Oracle.Engine.DOCKER, fromExt4, work.resolve("oracle-ext4"),
                "docker.io/local/oracle:1");
        assertThat(read.differencesFrom(expected.single())).isEmpty();
        // verify takes the image as its guest's input disk and reads the engine and driver from the
        // listing. The corpus image has no program to run: every layer of it is read (save), then
        // running 'true' fails, as it must.
        Result verify = vbake("verify", a.toString(), "-a", "aarch64");
        assertThat(verify.out()).contains("ok     " + expected.single().configDigest())
                .containsPattern("FAILED sha256:[0-9a-f]{64} corpus/rich:1: cannot run 'true' in ")
                .contains("verify failed: 1 of 2 image(s)");
    }

    /**
     * {@link #listing} in name order, without the root entry, with "./" dropped, hardlinks shown
     * as the file they name (GNU tar picks which name of a file comes first), and only the xattr
     * pax headers (GNU tar adds others).
     */
    private static List<String> comparable(Path tar) throws IOException {
        Map<String, String> byName = new TreeMap<>();
        Map<String, String> links = new TreeMap<>();
        for (String line : listing(tar)) {
            String name = line.substring(0, line.indexOf(" type="));
            String rest = line.substring(name.length());
            name = name.startsWith("./") ? name.substring(2) : name;
            name = name.endsWith("/") ? name.substring(0, name.length() - 1) : name;
            if (name.isEmpty() || name.equals(".")) {
                continue;
            }
            rest = rest.replaceAll(" x=\\{[^}]*\\}", " x=" + xattrsOnly(rest));
            if (rest.startsWith(" type=1")) {
                String target = rest.substring(rest.indexOf(" link=") + 6, rest.indexOf(" dev="));
                links.put(name, target.startsWith("./") ? target.substring(2) : target);
            } else {
                byName.put(name, rest.replaceAll(" link= ", " "));
            }
        }
        links.forEach((name, target) -> byName.put(name, "hardlink-to-file " + byName.get(target)));
        // a file GNU tar stored first may be the name our tar stores as the link: compare contents
        Map<String, String> out = new TreeMap<>();
        byName.forEach((n, r) -> out.put(n, r.replace("hardlink-to-file ", "")));
        List<String> lines = new ArrayList<>();
        out.forEach((n, r) -> lines.add(n + r));
        return lines;
    }

    private static String xattrsOnly(String rest) {
        int i = rest.indexOf(" x={");
        String inner = rest.substring(i + 4, rest.indexOf('}', i));
        List<String> keep = new ArrayList<>();
        for (String kv : inner.split(", ")) {
            if (kv.startsWith("SCHILY.xattr.")) {
                keep.add(kv);
            }
        }
        return java.util.regex.Matcher.quoteReplacement("{" + String.join(", ", keep) + "}");
    }

    private static void run(String... argv) throws Exception {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(String.join(" ", argv) + ": " + log).isZero();
    }

    @Test
    void aBookwormBakeIsVerifiedByABookwormEngine() throws Exception {
        Path busybox = TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox-aarch64"));
        Path layout = work.resolve("bookworm-image");
        TestImages.Expected image = TestImages.single(TestImages.Platform.ARM64, busybox).writeLayout(layout);
        Path m = Files.writeString(work.resolve("bookworm.yaml"), """
                arch: aarch64
                runtime: docker
                suite: bookworm
                images:
                  - oci: %s
                    name: local/old:1
                """.formatted(layout));
        Path out = work.resolve("bookworm-out");
        ok(vbake("bake", m.toString(), "-o", out.toString(), "--writer", "host"));
        assertThat(JSON.readTree(out.resolve("listing.json").toFile()).path("suite").asText()).isEqualTo("bookworm");
        Result verify = ok(vbake("verify", out.toString(), "-a", "aarch64", "--debug"));
        assertThat(verify.out()).contains("ok     " + image.single().configDigest());
        // The listing's suite chose the guest: docker 20.10 read the tree.
        assertThat(verify.out()).contains("verified 1 image(s) on aarch64 docker 20.10.").contains("(bookworm)");
    }

    @Test
    void anInputTheWriterCannotMirrorGoesToTheGuestOrIsRefused() throws Exception {
        Path sparse = StorageCorpus.writeSparse(work.resolve("sparse-corpus"));
        Path m = Files.writeString(work.resolve("sparse.yaml"), """
                arch: aarch64
                runtime: docker
                output: tar
                images:
                  - oci: %s
                    name: corpus/sparse:1
                """.formatted(sparse));
        Path refused = work.resolve("sparse-host");
        Result r = vbake("bake", m.toString(), "-o", refused.toString(), "--writer", "host");
        assertThat(r.code()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains("--writer host: the host writer (docker 26.1 overlay2) does not mirror the "
                + "engine for a sparse file");
        assertThat(refused).doesNotExist();

        Path auto = work.resolve("sparse-auto");
        Result a = ok(vbake("bake", m.toString(), "-o", auto.toString(), "--progress=plain", "--state-dir",
                work.resolve("state-sparse").toString()));
        assertThat(a.err()).contains("the host writer does not mirror the engine for a sparse file");
        assertThat(JSON.readTree(auto.resolve("listing.json").toFile()).path("writer").asText())
                .startsWith("guest (docker trixie overlay2)");
    }
}
