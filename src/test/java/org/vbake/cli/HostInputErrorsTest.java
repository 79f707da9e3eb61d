package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad inputs to the host-side commands (vimport, load -i, pull, save -o, --storage) fail before
 * any guest boots: one line naming the problem, exit code 2, no output file, nothing staged left.
 */
class HostInputErrorsTest {

    @TempDir
    Path tmp;

    private Map<String, String> env;
    private Path cache;

    @BeforeEach
    void isolate() throws IOException {
        cache = Files.createDirectories(tmp.resolve("cache"));
        env = Map.of("HOME", tmp.toString(), "VBAKE_CACHE_DIR", cache.toString());
    }

    @Test
    void missingPathIsNamed() {
        Result r = run("vdkr", "-a", "aarch64", "vimport", tmp.resolve("nope.tar").toString());

        r.assertBadInput("nope.tar", "no such file");
    }

    @Test
    void truncatedDockerArchiveIsRefused() throws IOException {
        Path archive = dockerArchiveWithConfig("{\"architecture\":\"arm64\",\"os\":\"linux\","
                + "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
        byte[] all = Files.readAllBytes(archive);
        Path truncated = tmp.resolve("truncated.tar");
        Files.write(truncated, java.util.Arrays.copyOf(all, 700));

        Result r = run("vdkr", "-a", "aarch64", "load", "-i", truncated.toString());

        r.assertBadInput("truncated.tar");
    }

    @Test
    void wrongArchIsRefusedWithTheOverrideNamed() throws IOException {
        Path archive = dockerArchiveWithConfig("{\"architecture\":\"amd64\",\"os\":\"linux\","
                + "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");

        Result r = run("vdkr", "-a", "aarch64", "vimport", archive.toString(), "x:1");

        r.assertBadInput("amd64", "arm64");
        assertThat(r.err).contains("--allow-arch-mismatch");
    }

    @Test
    void storageNameWithoutAFormatIsRefusedBeforeBoot() {
        Result r = run("vdkr", "-a", "aarch64", "--storage", tmp.resolve("out.zip").toString(), "images");

        r.assertBadInput("out.zip");
        assertThat(r.err).contains(".tar.zst");
        assertThat(tmp.resolve("out.zip")).doesNotExist();
    }

    @Test
    void storageInAMissingDirectoryIsRefused() {
        Result r = run("vdkr", "-a", "aarch64", "--storage", tmp.resolve("no/such/out.tar").toString(), "images");

        r.assertBadInput("does not exist");
    }

    @Test
    void storageWhereNoFileCanBeMadeIsRefusedBeforeBoot() {
        Result r = run("vdkr", "-a", "aarch64", "--storage", "/proc/x.tar", "images");

        r.assertBadInput("--storage /proc/x.tar: cannot create a file in /proc");
        assertThat(tmp.resolve(".vdkr")).as("no state dir: nothing booted").doesNotExist();
    }

    @Test
    void aFileGivenAsAVolumeIsRefusedBeforeBoot() throws IOException {
        Path file = Files.writeString(tmp.resolve("hostname"), "h\n");

        Result r = run("vdkr", "-a", "aarch64", "run", "--rm", "-v", file + ":/x", "busybox", "true");

        r.assertBadInput("-v " + file + ": is not a directory");
        assertThat(file).hasContent("h\n");
        assertThat(tmp.resolve(".vdkr")).as("no state dir: nothing booted").doesNotExist();
    }

    @Test
    void unknownStorageDriverIsRefused() {
        Result r = run("vpdmn", "-a", "aarch64", "--storage-driver", "btrfs", "images");

        r.assertBadInput("btrfs");
        assertThat(r.err).contains("overlay");
    }

    @Test
    void pullOptionsThatCannotApplyAreRefused() {
        Result r = run("vdkr", "-a", "aarch64", "pull", "--platform", "linux/arm64", "alpine");

        r.assertBadInput("--platform");
    }

    @Test
    void invalidReferenceIsRefused() {
        Result r = run("vdkr", "-a", "aarch64", "pull", "Not/A:Valid:Ref");

        r.assertBadInput("Not/A:Valid:Ref");
    }

    @Test
    void unreachableRegistryIsBadInputNamingTheHost() {
        Result r = run("vdkr", "-a", "aarch64", "pull", "127.0.0.1:1/none/such:1");

        r.assertBadInput("127.0.0.1:1");
    }

    @Test
    void importFromAUrlIsRefused() {
        Result r = run("vdkr", "-a", "aarch64", "import", "https://example.org/rootfs.tar", "x:1");

        r.assertBadInput("no network");
    }

    @Test
    void aLayerWithAnEntryOutsideItsRootIsRefusedNamingTheEntry() throws IOException {
        Path layout = ociLayout("hostile", Map.of("etc/hostname", "h\n", "../../escape", "x\n"));

        Result r = run("vdkr", "-a", "aarch64", "vimport", layout.toString(), "x:1");

        r.assertBadInput("entry '../../escape' lies outside the layer's root");
    }

    @Test
    void aLayerThatExpandsPastTheLimitIsRefused() throws IOException {
        Path layout = ociLayout("big", Map.of("zeros", "\0".repeat(3 << 20)));
        env = new java.util.HashMap<>(env);
        env.put("VBAKE_LAYER_LIMIT", "1M");

        Result r = run("vdkr", "-a", "aarch64", "vimport", layout.toString(), "x:1");

        r.assertBadInput("expands to more than 1.0 MiB uncompressed (VBAKE_LAYER_LIMIT=1M)");
    }

    /** A one-layer arm64 OCI layout whose layer (gzip) holds {@code files} in this order. */
    private Path ociLayout(String name, Map<String, String> files) throws IOException {
        java.io.ByteArrayOutputStream tar = new java.io.ByteArrayOutputStream();
        try (TarArchiveOutputStream t = new TarArchiveOutputStream(tar)) {
            for (var e : new java.util.TreeMap<>(files).descendingMap().entrySet()) {
                TarArchiveEntry te = new TarArchiveEntry(e.getKey());
                byte[] content = e.getValue().getBytes(StandardCharsets.UTF_8);
                te.setSize(content.length);
                t.putArchiveEntry(te);
                t.write(content);
                t.closeArchiveEntry();
            }
        }
        java.io.ByteArrayOutputStream gz = new java.io.ByteArrayOutputStream();
        try (OutputStream out = new java.util.zip.GZIPOutputStream(gz)) {
            out.write(tar.toByteArray());
        }
        byte[] layer = gz.toByteArray();
        byte[] config = ("{\"architecture\":\"arm64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\""
                + org.vbake.image.Digest.of(tar.toByteArray()) + "\"]}}").getBytes(StandardCharsets.UTF_8);
        byte[] manifest = ("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                + "\"config\":" + descriptor("application/vnd.oci.image.config.v1+json", config) + ",\"layers\":["
                + descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer) + "]}").getBytes(StandardCharsets.UTF_8);
        Path dir = tmp.resolve(name);
        Path blobs = Files.createDirectories(dir.resolve("blobs/sha256"));
        for (byte[] b : List.of(layer, config, manifest)) {
            Files.write(blobs.resolve(org.vbake.image.Digest.of(b).hex()), b);
        }
        Files.writeString(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        Files.writeString(dir.resolve("index.json"), "{\"schemaVersion\":2,\"manifests\":["
                + descriptor("application/vnd.oci.image.manifest.v1+json", manifest) + "]}");
        return dir;
    }

    private static String descriptor(String mediaType, byte[] content) {
        return "{\"mediaType\":\"" + mediaType + "\",\"digest\":\"" + org.vbake.image.Digest.of(content)
                + "\",\"size\":" + content.length + "}";
    }

    private Path dockerArchiveWithConfig(String config) throws IOException {
        Path archive = tmp.resolve("img.tar");
        byte[] cfg = config.getBytes(StandardCharsets.UTF_8);
        String hex = org.vbake.image.Digest.of(cfg).hex();
        byte[] manifest = ("[{\"Config\":\"" + hex + ".json\",\"RepoTags\":[\"x:1\"],\"Layers\":[]}]")
                .getBytes(StandardCharsets.UTF_8);
        try (OutputStream os = Files.newOutputStream(archive); TarArchiveOutputStream t = new TarArchiveOutputStream(os)) {
            for (var e : List.of(Map.entry(hex + ".json", cfg), Map.entry("manifest.json", manifest))) {
                TarArchiveEntry te = new TarArchiveEntry(e.getKey());
                te.setSize(e.getValue().length);
                t.putArchiveEntry(te);
                t.write(e.getValue());
                t.closeArchiveEntry();
            }
        }
        return archive;
    }

    private Result run(String prog, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(prog, args, null, out, err, env, false);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8), cache);
    }

    private record Result(int code, String out, String err, Path cache) {
        void assertBadInput(String... mentions) {
            assertThat(code).as("exit code; stderr: %s", err).isEqualTo(ExitCodes.BAD_INPUT);
            List<String> lines = err.lines().toList();
            assertThat(lines).isNotEmpty();
            // Progress lines may come first; the error is one line (plus an optional hint) at the end.
            String error = lines.size() >= 2 && !lines.get(lines.size() - 1).contains(mentions[0])
                    ? lines.get(lines.size() - 2) : lines.get(lines.size() - 1);
            assertThat(error).as("stderr: %s", err).contains(mentions);
            assertThat(out + err).doesNotContain("\tat ", "Exception", "internal error");
            Path staging = cache.resolve("tmp");
            if (Files.isDirectory(staging)) {
                try (Stream<Path> s = Files.list(staging)) {
                    assertThat(s.toList()).as("staging left behind").isEmpty();
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
    }
}
