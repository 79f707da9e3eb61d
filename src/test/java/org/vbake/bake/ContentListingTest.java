package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.bake.PackagesFixtures.debianBase;
import static org.vbake.bake.PackagesFixtures.image;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.bake.ContentListing.Entry;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.bake.PackagesFixtures.Compress;
import org.vbake.image.Digest;
import org.vbake.image.MediaTypes;
import org.vbake.image.ResolvedImage;

class ContentListingTest {

    @TempDir
    Path cache;

    private static Digest digest(char c) {
        return new Digest(String.valueOf(c).repeat(64));
    }

    /** An image whose blobs are never read: the listing only uses what ResolvedImage says. */
    private static ResolvedImage fixedImage(Digest manifest) {
        return new ResolvedImage("docker-archive /in/app.tar", "docker.io/library/app", List.of(), manifest,
                manifest == null ? null : new byte[0], manifest == null ? null : MediaTypes.OCI_MANIFEST,
                digest('c'), new byte[0], "linux", "arm64", "v8",
                List.of(new ResolvedImage.Layer(digest('1'), MediaTypes.OCI_LAYER_GZIP, 123, digest('d'),
                        Path.of("/nonexistent"))));
    }

    @Test
    void listingOfScannedImage() throws Exception {
        ResolvedImage image = image(cache, "docker.io/library/debian", debianBase(Compress.GZIP));
        Entry entry = Entry.of(List.of("docker.io/library/debian:12", "localhost/base:latest"), image,
                image.manifestDigest(), Packages.scan(image));

        JsonNode json = new ObjectMapper().readTree(ContentListing.toBytes(ContentListing.listing(List.of(entry))));

        assertThat(json.get("schema").asText()).isEqualTo("vbake.listing/1");
        JsonNode img = json.get("images").get(0);
        assertThat(img.get("references")).extracting(JsonNode::asText)
                .containsExactly("docker.io/library/debian:12", "localhost/base:latest");
        assertThat(img.get("source").asText()).isEqualTo("oci-archive /in/test.tar");
        assertThat(img.get("platform").asText()).isEqualTo("linux/arm64/v8");
        assertThat(img.get("imageId").asText()).isEqualTo(image.configDigest().toString()).startsWith("sha256:");
        assertThat(img.get("configDigest").asText()).isEqualTo(image.configDigest().toString());
        assertThat(img.get("manifestDigest").asText()).isEqualTo(image.manifestDigest().toString());
        assertThat(img.get("repoDigest").asText()).isEqualTo(image.manifestDigest().toString());
        assertThat(img.get("distro").get("id").asText()).isEqualTo("debian");
        JsonNode layer = img.get("layers").get(0);
        ResolvedImage.Layer expected = image.layers().get(0);
        assertThat(layer.get("digest").asText()).isEqualTo(expected.digest().toString());
        assertThat(layer.get("mediaType").asText()).isEqualTo(MediaTypes.OCI_LAYER_GZIP);
        assertThat(layer.get("size").asLong()).isEqualTo(expected.size());
        assertThat(layer.get("diffId").asText()).isEqualTo(expected.diffId().toString());
        assertThat(img.get("packages")).hasSize(2);
        JsonNode libc = img.get("packages").get(1);
        assertThat(libc.get("name").asText()).isEqualTo("libc6");
        assertThat(libc.get("version").asText()).isEqualTo("2.36-9+deb12u4");
        assertThat(libc.get("arch").asText()).isEqualTo("arm64");
        assertThat(libc.get("type").asText()).isEqualTo("dpkg");
        assertThat(libc.get("sourcePackage").asText()).isEqualTo("glibc");
        assertThat(libc.get("license").isNull()).isTrue();
        assertThat(img.get("notes")).isEmpty();
    }

    @Test
    void exactBytesForAFixedInput() {
        Entry entry = new Entry(List.of("docker.io/library/app:1"), fixedImage(null), null,
                List.of(new Package("apk", "zlib", "1.3.1-r1", "aarch64", "zlib", "Zlib"),
                        new Package("apk", "musl", "1.2.5-r0", "aarch64", null, null)),
                List.of("no package database found (dpkg, apk or rpm)"),
                new Distro("alpine", "3.20.3", null));

        String text = new String(ContentListing.toBytes(ContentListing.listing(List.of(entry))),
                StandardCharsets.UTF_8);

        String c = "sha256:" + "c".repeat(64);
        assertThat(text).isEqualTo("""
                {
                  "schema": "vbake.listing/1",
                  "images": [
                    {
                      "references": [
                        "docker.io/library/app:1"
                      ],
                      "source": "docker-archive /in/app.tar",
                      "platform": "linux/arm64/v8",
                      "imageId": "%1$s",
                      "configDigest": "%1$s",
                      "manifestDigest": null,
                      "repoDigest": null,
                      "distro": {
                        "id": "alpine",
                        "versionId": "3.20.3",
                        "prettyName": null
                      },
                      "layers": [
                        {
                          "digest": "sha256:%2$s",
                          "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "size": 123,
                          "diffId": "sha256:%3$s"
                        }
                      ],
                      "packages": [
                        {
                          "name": "musl",
                          "version": "1.2.5-r0",
                          "arch": "aarch64",
                          "type": "apk",
                          "sourcePackage": null,
                          "license": null
                        },
                        {
                          "name": "zlib",
                          "version": "1.3.1-r1",
                          "arch": "aarch64",
                          "type": "apk",
                          "sourcePackage": "zlib",
                          "license": "Zlib"
                        }
                      ],
                      "notes": [
                        "no package database found (dpkg, apk or rpm)"
                      ]
                    }
                  ]
                }
                """.formatted(c, "1".repeat(64), "d".repeat(64)));
    }

    @Test
    void emptyListsAndNoDistro() {
        Entry entry = new Entry(List.of(), fixedImage(digest('e')), digest('e'), List.of(), List.of());

        String text = new String(ContentListing.toBytes(ContentListing.listing(List.of(entry))),
                StandardCharsets.UTF_8);

        assertThat(text).contains("\"references\": [],\n")
                .contains("\"distro\": null,\n")
                .contains("\"packages\": [],\n")
                .contains("\"manifestDigest\": \"sha256:" + "e".repeat(64) + "\"");
    }

    @Test
    void imagesKeepTheirOrderAndBytesAreStable() throws Exception {
        ResolvedImage debian = image(cache, "docker.io/library/debian", debianBase(Compress.GZIP));
        List<Entry> entries = List.of(
                new Entry(List.of("z:1"), fixedImage(null), null, List.of(), List.of()),
                Entry.of(List.of("a:1"), debian, null, Packages.scan(debian)));

        ObjectNode listing = ContentListing.listing(entries);
        byte[] once = ContentListing.toBytes(listing);
        byte[] twice = ContentListing.toBytes(ContentListing.listing(entries));

        assertThat(once).isEqualTo(twice);
        assertThat(once[once.length - 1]).isEqualTo((byte) '\n');
        assertThat(once[once.length - 2]).isEqualTo((byte) '}');
        assertThat(listing.get("images")).extracting(i -> i.get("references").get(0).asText())
                .containsExactly("z:1", "a:1");
        assertThat(new String(once, StandardCharsets.UTF_8)).doesNotContain("\r");
    }
}
