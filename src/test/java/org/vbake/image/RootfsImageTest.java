package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;

class RootfsImageTest {

    @TempDir
    Path tmp;

    @Test
    void sameTreeGivesTheSameDigestsAndAConfigForTheArch() throws Exception {
        Path rootfs = Files.createDirectories(tmp.resolve("rootfs/bin"));
        Files.writeString(rootfs.resolve("hello"), "hi\n");
        BlobCache cache = new BlobCache(tmp.resolve("cache"));

        ResolvedImage a = RootfsImage.build(tmp.resolve("rootfs"), Arch.AARCH64, List.of("/bin/sh"), Map.of(),
                1735689600L, cache);
        Files.setLastModifiedTime(rootfs.resolve("hello"), java.nio.file.attribute.FileTime.fromMillis(0));
        Files.setLastModifiedTime(rootfs.resolve("hello"), java.nio.file.attribute.FileTime.from(
                java.time.Instant.now()));
        ResolvedImage b = RootfsImage.build(tmp.resolve("rootfs"), Arch.AARCH64, List.of("/bin/sh"), Map.of(),
                1735689600L, cache);

        assertThat(b.configDigest()).isEqualTo(a.configDigest());
        assertThat(b.manifestDigest()).isEqualTo(a.manifestDigest());
        assertThat(Digest.of(a.configBytes())).isEqualTo(a.configDigest());
        JsonNode config = new ObjectMapper().readTree(a.configBytes());
        assertThat(config.path("architecture").asText()).isEqualTo("arm64");
        assertThat(config.path("variant").asText()).isEqualTo("v8");
        assertThat(config.path("created").asText()).isEqualTo("2025-01-01T00:00:00Z");
        assertThat(config.path("config").path("Cmd").get(0).asText()).isEqualTo("/bin/sh");
        assertThat(config.path("rootfs").path("diff_ids").get(0).asText()).isEqualTo(a.layers().get(0).diffId().toString());
        try (var in = Files.newInputStream(a.layers().get(0).blob())) {
            assertThat(Digest.of(in)).isEqualTo(a.layers().get(0).diffId());
        }
    }
}
