package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.image.ImageFixtures.Image;

/** The docker-archive handed to {@code docker load} / {@code podman load}. */
class DockerArchiveWriterTest {

    @TempDir
    Path tmp;

    private BlobCache cache;
    private Image arm64;
    private ResolvedImage resolved;

    @BeforeEach
    void setUp() throws Exception {
        cache = new BlobCache(tmp.resolve("cache"));
        arm64 = ImageFixtures.image("arm64", "v8");
        Path layout = tmp.resolve("layout");
        ImageFixtures.writeMultiPlatformLayout(layout, null, arm64, ImageFixtures.image("amd64", null));
        resolved = LocalImageSource.read(layout, null, Arch.AARCH64, false, cache, EventListener.NONE)
                .withTags(List.of("docker.io/library/demo:1.0", "demo", "r.example/x@sha256:" + "a".repeat(64),
                        "r.example/y:2@sha256:" + "b".repeat(64)));
    }

    private static Map<String, byte[]> entries(byte[] tar) throws IOException {
        Map<String, byte[]> result = new LinkedHashMap<>();
        try (TarArchiveInputStream in = new TarArchiveInputStream(new ByteArrayInputStream(tar))) {
            for (TarArchiveEntry e; (e = in.getNextEntry()) != null; ) {
                assertThat(e.getModTime().getTime()).isZero();
                assertThat(e.getLongUserId()).isZero();
                assertThat(e.getLongGroupId()).isZero();
                assertThat(e.getMode()).isEqualTo(e.isDirectory() ? 0755 : 0644);
                result.put(e.getName(), in.readAllBytes());
            }
        }
        return result;
    }

    private static byte[] write(ResolvedImage img) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        DockerArchiveWriter.write(img, out);
        return out.toByteArray();
    }

    @Test
    void holdsConfigUncompressedLayersAndManifest() throws Exception {
        Map<String, byte[]> files = entries(write(resolved));

        String config = arm64.configDigest().hex() + ".json";
        String layer1 = arm64.diffIds.get(0).hex() + "/layer.tar";
        String layer2 = arm64.diffIds.get(1).hex() + "/layer.tar";
        assertThat(files.keySet()).containsExactly(config, arm64.diffIds.get(0).hex() + "/", layer1,
                arm64.diffIds.get(1).hex() + "/", layer2, "manifest.json");
        assertThat(files.get(config)).isEqualTo(arm64.config);
        assertThat(Digest.of(files.get(layer1))).isEqualTo(arm64.diffIds.get(0));
        assertThat(Digest.of(files.get(layer2))).isEqualTo(arm64.diffIds.get(1));
        assertThat(files.get(layer1)).isEqualTo(arm64.layerTars.get(0));

        JsonNode manifest = ImageFixtures.JSON.readTree(files.get("manifest.json"));
        assertThat(manifest.size()).isEqualTo(1);
        assertThat(manifest.get(0).get("Config").asText()).isEqualTo(config);
        assertThat(manifest.get(0).get("Layers")).extracting(JsonNode::asText).containsExactly(layer1, layer2);
        assertThat(manifest.get(0).get("RepoTags")).extracting(JsonNode::asText)
                .containsExactly("docker.io/library/demo:1.0", "demo:latest", "r.example/y:2");
    }

    @Test
    void outputIsDeterministic() throws Exception {
        assertThat(write(resolved)).isEqualTo(write(resolved));
    }

    @Test
    void roundTripsThroughTheDockerArchiveReader() throws Exception {
        Path archive = tmp.resolve("out.tar");
        Files.write(archive, write(resolved));

        ResolvedImage again = LocalImageSource.read(archive, "demo:1.0", Arch.AARCH64, false,
                new BlobCache(tmp.resolve("cache2")), EventListener.NONE);

        assertThat(again.configDigest()).isEqualTo(arm64.configDigest());
        assertThat(again.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(arm64.diffIds);
        assertThat(again.layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(arm64.diffIds);
    }

    @Test
    void zstdAndPlainLayersAreWrittenUncompressed() throws Exception {
        byte[] tar1 = ImageFixtures.tar(Map.of("z", "zstd layer\n"));
        byte[] tar2 = ImageFixtures.tar(Map.of("p", "plain layer\n"));
        byte[] zst = com.github.luben.zstd.Zstd.compress(tar1);
        List<ResolvedImage.Layer> layers = new ArrayList<>();
        layers.add(new ResolvedImage.Layer(Digest.of(zst), MediaTypes.OCI_LAYER_ZSTD, zst.length, Digest.of(tar1),
                cache.put(zst, "zst")));
        layers.add(new ResolvedImage.Layer(Digest.of(tar2), MediaTypes.OCI_LAYER, tar2.length, Digest.of(tar2),
                cache.put(tar2, "plain")));
        ResolvedImage img = new ResolvedImage("test", null, List.of(), null, null, null, resolved.configDigest(),
                resolved.configBytes(), "linux", "arm64", null, layers);

        Map<String, byte[]> files = entries(write(img));

        assertThat(files.get(Digest.of(tar1).hex() + "/layer.tar")).isEqualTo(tar1);
        assertThat(files.get(Digest.of(tar2).hex() + "/layer.tar")).isEqualTo(tar2);
    }

    @Test
    void layerThatDoesNotMatchItsDiffIdIsRefused() throws Exception {
        ResolvedImage.Layer first = resolved.layers().get(0);
        ResolvedImage.Layer lying = new ResolvedImage.Layer(first.digest(), first.mediaType(), first.size(),
                resolved.layers().get(1).diffId(), first.blob());
        ResolvedImage img = new ResolvedImage("test", null, List.of(), null, null, null, resolved.configDigest(),
                resolved.configBytes(), "linux", "arm64", null, List.of(lying));

        assertThatThrownBy(() -> write(img))
                .isInstanceOf(BadInputException.class)
                .hasMessage("test: layer " + first.digest() + ": digest mismatch: uncompressed content is "
                        + first.diffId() + ", the config's diff_id is " + lying.diffId());
    }

    @Test
    void corruptGzipInTheCacheIsBadInput() throws Exception {
        ResolvedImage.Layer first = resolved.layers().get(0);
        Path broken = tmp.resolve("broken.gz");
        byte[] bytes = Files.readAllBytes(first.blob());
        Files.write(broken, java.util.Arrays.copyOf(bytes, bytes.length - 12));
        ResolvedImage img = new ResolvedImage("test", null, List.of(), null, null, null, resolved.configDigest(),
                resolved.configBytes(), "linux", "arm64", null, List.of(new ResolvedImage.Layer(first.digest(),
                        first.mediaType(), first.size(), first.diffId(), broken)));

        assertThatThrownBy(() -> write(img))
                .isInstanceOf(BadInputException.class)
                .hasMessage("test: layer " + first.digest() + ": truncated: unexpected end of gzip data");
    }
}
