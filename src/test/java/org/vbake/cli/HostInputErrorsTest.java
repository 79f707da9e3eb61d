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
