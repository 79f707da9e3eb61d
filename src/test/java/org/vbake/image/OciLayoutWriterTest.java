package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.EventListener;
import org.vbake.image.ImageFixtures.Image;

/** OCI layouts written for an image: exact manifest kept, or one synthesized for docker-archives. */
class OciLayoutWriterTest {

    @TempDir
    Path tmp;

    @Test
    void keepsTheExactManifestAndLinksLayersFromTheCache() throws Exception {
        BlobCache cache = new BlobCache(tmp.resolve("cache"));
        Image arm64 = ImageFixtures.image("arm64", "v8");
        Path source = tmp.resolve("source");
        ImageFixtures.writeMultiPlatformLayout(source, "demo:1", arm64, ImageFixtures.image("amd64", null));
        ResolvedImage img = LocalImageSource.read(source, null, Arch.AARCH64, false, cache, EventListener.NONE);
        Path out = tmp.resolve("out");

        Digest written = OciLayoutWriter.write(img, out, "demo:1");

        assertThat(written).isEqualTo(arm64.manifestDigest());
        assertThat(Files.readAllBytes(ImageFixtures.blobPath(out, written))).isEqualTo(arm64.manifest);
        assertThat(Files.readAllBytes(ImageFixtures.blobPath(out, arm64.configDigest()))).isEqualTo(arm64.config);
        for (ResolvedImage.Layer l : img.layers()) {
            assertThat(Files.isSameFile(ImageFixtures.blobPath(out, l.digest()), l.blob())).as("hard link").isTrue();
        }
        JsonNode index = ImageFixtures.JSON.readTree(Files.readAllBytes(out.resolve("index.json")));
        JsonNode d = index.get("manifests").get(0);
        assertThat(index.get("manifests").size()).isEqualTo(1);
        assertThat(d.get("mediaType").asText()).isEqualTo(MediaTypes.OCI_MANIFEST);
        assertThat(d.get("digest").asText()).isEqualTo(arm64.manifestDigest().toString());
        assertThat(d.get("size").asLong()).isEqualTo(arm64.manifest.length);
        assertThat(d.get("annotations").get("org.opencontainers.image.ref.name").asText()).isEqualTo("demo:1");
        assertThat(Files.readString(out.resolve("oci-layout"))).isEqualTo("{\"imageLayoutVersion\":\"1.0.0\"}");

        ResolvedImage again = LocalImageSource.read(out, "demo:1", Arch.AARCH64, false,
                new BlobCache(tmp.resolve("cache2")), EventListener.NONE);
        assertThat(again.manifestBytes()).isEqualTo(arm64.manifest);
        assertThat(again.configDigest()).isEqualTo(arm64.configDigest());
    }

    @Test
    void synthesizesADeterministicOciManifestForDockerArchives() throws Exception {
        BlobCache cache = new BlobCache(tmp.resolve("cache"));
        Image img = new Image("amd64", null);
        ImageFixtures.addLayer(img, ImageFixtures.tar(Map.of("a", "gz\n")), true);
        ImageFixtures.addLayer(img, ImageFixtures.tar(Map.of("b", "plain\n")), false);
        ImageFixtures.finish(img);
        Path archive = tmp.resolve("saved.tar");
        Files.write(archive, ImageFixtures.dockerArchive(List.of(img), List.of(List.of("app:1"))));
        ResolvedImage resolved = LocalImageSource.read(archive, null, Arch.X86_64, false, cache, EventListener.NONE);

        Digest first = OciLayoutWriter.write(resolved, tmp.resolve("a"), null);
        Digest second = OciLayoutWriter.write(resolved, tmp.resolve("b"), null);

        assertThat(first).isEqualTo(second);
        JsonNode manifest = ImageFixtures.JSON.readTree(Files.readAllBytes(ImageFixtures.blobPath(tmp.resolve("a"), first)));
        assertThat(manifest.get("mediaType").asText()).isEqualTo(MediaTypes.OCI_MANIFEST);
        assertThat(manifest.get("config").get("mediaType").asText()).isEqualTo(MediaTypes.OCI_CONFIG);
        assertThat(manifest.get("config").get("digest").asText()).isEqualTo(img.configDigest().toString());
        assertThat(manifest.get("layers")).extracting(l -> l.get("mediaType").asText())
                .containsExactly(MediaTypes.OCI_LAYER_GZIP, MediaTypes.OCI_LAYER);
        assertThat(manifest.get("layers")).extracting(l -> l.get("digest").asText())
                .containsExactly(Digest.of(img.layerBlobs.get(0)).toString(), img.diffIds.get(1).toString());
        JsonNode index = ImageFixtures.JSON.readTree(Files.readAllBytes(tmp.resolve("a/index.json")));
        assertThat(index.get("manifests").get(0).has("annotations")).isFalse();

        ResolvedImage again = LocalImageSource.read(tmp.resolve("a"), null, Arch.X86_64, false,
                new BlobCache(tmp.resolve("cache2")), EventListener.NONE);
        assertThat(again.configDigest()).isEqualTo(img.configDigest());
        assertThat(again.manifestDigest()).isEqualTo(first);
        assertThat(again.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(img.diffIds);
    }
}
