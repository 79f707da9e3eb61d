package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.bake.PackagesFixtures.debianBase;
import static org.vbake.bake.PackagesFixtures.dir;
import static org.vbake.bake.PackagesFixtures.file;
import static org.vbake.bake.PackagesFixtures.image;
import static org.vbake.bake.PackagesFixtures.layer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.bake.ContentListing.Entry;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.bake.PackagesFixtures.Compress;
import org.vbake.image.ResolvedImage;

class SbomWriterTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path cache;

    private List<Entry> twoImages() throws Exception {
        ResolvedImage debian = image(cache, "docker.io/library/debian", debianBase(Compress.GZIP));
        ResolvedImage alpine = image(cache, "docker.io/library/alpine", layer(Compress.ZSTD,
                dir("etc"), file("etc/os-release", "ID=alpine\nVERSION_ID=3.20.3\n"),
                file("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\nA:aarch64\nL:MIT\no:musl\n\n"
                        + "P:libcrypto3\nV:3.3.2-r0\nA:aarch64\nL:Apache-2.0\no:openssl\n")));
        return List.of(
                Entry.of(List.of("docker.io/library/debian:12"), debian, debian.manifestDigest(), Packages.scan(debian)),
                Entry.of(List.of("docker.io/library/alpine:3.20"), alpine, alpine.manifestDigest(),
                        Packages.scan(alpine)));
    }

    @Test
    void requiredFieldsAndComponents() throws Exception {
        List<Entry> images = twoImages();

        JsonNode bom = JSON.readTree(SbomWriter.cycloneDx(images, "arm64 storage", "seed-1", null));

        assertThat(bom.get("bomFormat").asText()).isEqualTo("CycloneDX");
        assertThat(bom.get("specVersion").asText()).isEqualTo("1.5");
        assertThat(bom.get("version").asInt()).isEqualTo(1);
        assertThat(bom.get("serialNumber").asText())
                .isEqualTo("urn:uuid:" + UUID.nameUUIDFromBytes("seed-1".getBytes(StandardCharsets.UTF_8)))
                .matches("^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
        assertThat(bom.get("metadata").has("timestamp")).isFalse();
        JsonNode storage = bom.get("metadata").get("component");
        assertThat(storage.get("type").asText()).isEqualTo("data");
        assertThat(storage.get("name").asText()).isEqualTo("arm64 storage");

        JsonNode debian = bom.get("components").get(0);
        ResolvedImage debianImage = images.get(0).image();
        assertThat(debian.get("type").asText()).isEqualTo("container");
        assertThat(debian.get("name").asText()).isEqualTo("docker.io/library/debian:12");
        assertThat(debian.get("version").asText()).isEqualTo(debianImage.configDigest().toString());
        assertThat(debian.get("purl").asText()).isEqualTo("pkg:oci/debian@sha256%3A"
                + debianImage.manifestDigest().hex() + "?arch=arm64&repository_url=docker.io/library/debian&tag=12");
        assertThat(debian.get("hashes").get(0).get("alg").asText()).isEqualTo("SHA-256");
        assertThat(debian.get("hashes").get(0).get("content").asText()).isEqualTo(debianImage.configDigest().hex());
        assertThat(debian.get("components")).extracting(c -> c.get("purl").asText()).containsExactly(
                "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=arm64&distro=debian-12",
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=arm64&distro=debian-12&upstream=glibc");
        assertThat(debian.get("components").get(0).get("type").asText()).isEqualTo("library");
        assertThat(debian.get("components").get(0).has("licenses")).isFalse();

        JsonNode alpine = bom.get("components").get(1);
        assertThat(alpine.get("name").asText()).isEqualTo("docker.io/library/alpine:3.20");
        JsonNode libcrypto = alpine.get("components").get(0);
        assertThat(libcrypto.get("name").asText()).isEqualTo("libcrypto3");
        assertThat(libcrypto.get("version").asText()).isEqualTo("3.3.2-r0");
        assertThat(libcrypto.get("purl").asText())
                .isEqualTo("pkg:apk/alpine/libcrypto3@3.3.2-r0?arch=aarch64&distro=alpine-3.20.3&upstream=openssl");
        assertThat(libcrypto.get("licenses").get(0).get("license").get("name").asText()).isEqualTo("Apache-2.0");

        Set<String> refs = new HashSet<>();
        List<String> all = new ArrayList<>();
        bom.findValues("bom-ref").forEach(r -> all.add(r.asText()));
        refs.addAll(all);
        assertThat(refs).hasSameSizeAs(all);
    }

    @Test
    void identicalInputGivesIdenticalBytes() throws Exception {
        List<Entry> images = twoImages();

        byte[] first = SbomWriter.cycloneDx(images, "seed");
        byte[] second = SbomWriter.cycloneDx(List.copyOf(images), "seed");

        assertThat(first).isEqualTo(second);
        assertThat(new String(first, StandardCharsets.UTF_8)).endsWith("}\n").doesNotContain("timestamp");
        assertThat(SbomWriter.cycloneDx(images, "other seed")).isNotEqualTo(first);
    }

    @Test
    void serialFromContentWhenNoSeed() throws Exception {
        List<Entry> images = twoImages();

        String a = JSON.readTree(SbomWriter.cycloneDx(images, "s", null, null)).get("serialNumber").asText();
        String b = JSON.readTree(SbomWriter.cycloneDx(images, "s", null, null)).get("serialNumber").asText();
        String c = JSON.readTree(SbomWriter.cycloneDx(images.subList(0, 1), "s", null, null))
                .get("serialNumber").asText();

        assertThat(a).isEqualTo(b).isNotEqualTo(c);
    }

    @Test
    void timestampOnlyFromSourceDateEpoch() throws Exception {
        JsonNode bom = JSON.readTree(SbomWriter.cycloneDx(twoImages(), "s", "seed", 1700000000L));

        assertThat(bom.get("metadata").get("timestamp").asText()).isEqualTo("2023-11-14T22:13:20Z");
    }

    @Test
    void withoutManifestOrRepositoryThereIsNoOciPurl() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.NONE));
        ResolvedImage noManifest = new ResolvedImage("docker-archive /x.tar", null, List.of(), null, null, null,
                image.configDigest(), image.configBytes(), "linux", "arm64", null, image.layers());
        Entry entry = new Entry(List.of(), noManifest, null,
                List.of(new Package("dpkg", "libc6", "1:2.36", "arm64", null, null)), List.of("a note"));

        JsonNode c = JSON.readTree(SbomWriter.cycloneDx(List.of(entry), "seed")).get("components").get(0);

        assertThat(c.get("name").asText()).isEqualTo(image.configDigest().toString());
        assertThat(c.has("purl")).isFalse();
        assertThat(c.get("properties").findValuesAsText("value")).contains("linux/arm64", "a note");
        assertThat(c.get("components").get(0).get("purl").asText()).isEqualTo("pkg:deb/debian/libc6@1%3A2.36?arch=arm64");
    }

    @Test
    void rpmPurlHasVersionReleaseWithTheEpochAsAQualifier() {
        Package bash = new Package("rpm", "bash", "1:5.2.26-3.el9", "aarch64", "bash", "GPL-3.0-or-later");
        Package noEpoch = new Package("rpm", "libgcc", "11.4.1-3.el9", "x86_64", "gcc", "GPLv3+ and GPLv3+ with exceptions");

        assertThat(SbomWriter.packagePurl(bash, new Distro("rhel", "9.4", null)))
                .isEqualTo("pkg:rpm/rhel/bash@5.2.26-3.el9?arch=aarch64&distro=rhel-9.4&epoch=1");
        assertThat(SbomWriter.packagePurl(noEpoch, new Distro("rhel", "9.4", null)))
                .isEqualTo("pkg:rpm/rhel/libgcc@11.4.1-3.el9?arch=x86_64&distro=rhel-9.4&upstream=gcc");
        // Without os-release there is no vendor to name, and none is guessed.
        assertThat(SbomWriter.packagePurl(bash, null)).isEqualTo("pkg:rpm/bash@5.2.26-3.el9?arch=aarch64&epoch=1");
        assertThat(SbomWriter.packagePurl(new Package("rpm", "x", null, null, null, null), null)).isNull();
    }

    @Test
    void licenseIsAnExpressionOnlyWhenItHasSpdxShape() {
        assertThat(SbomWriter.spdxExpression("GPL-2.0-or-later AND BSD-3-Clause")).isTrue();
        assertThat(SbomWriter.spdxExpression("(MIT OR Apache-2.0) AND LicenseRef-Fedora-Public-Domain")).isTrue();
        assertThat(SbomWriter.spdxExpression("GPL-2.0-or-later WITH GCC-exception-3.1")).isTrue();
        assertThat(SbomWriter.spdxExpression("GPL-2.0+ OR MIT")).isTrue();

        assertThat(SbomWriter.spdxExpression("MIT")).as("a single name").isFalse();
        assertThat(SbomWriter.spdxExpression("GPLv2+ and MIT")).as("old Fedora style").isFalse();
        assertThat(SbomWriter.spdxExpression("ASL 2.0 AND MIT")).as("space inside a name").isFalse();
        assertThat(SbomWriter.spdxExpression("(MIT OR Apache-2.0")).isFalse();
        assertThat(SbomWriter.spdxExpression("MIT OR Apache-2.0)")).isFalse();
        assertThat(SbomWriter.spdxExpression("MIT AND")).isFalse();
        assertThat(SbomWriter.spdxExpression("AND MIT")).isFalse();
        assertThat(SbomWriter.spdxExpression("MIT () AND BSD")).isFalse();
        assertThat(SbomWriter.spdxExpression("Public Domain")).isFalse();
        assertThat(SbomWriter.spdxExpression("")).isFalse();
    }

    @Test
    void licensesBecomeNameOrExpression() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.NONE));
        Entry entry = new Entry(List.of(), image, null, List.of(
                new Package("apk", "a", "1", null, null, "MIT AND BSD-2-Clause"),
                new Package("apk", "b", "1", null, null, "GPLv2+ and MIT"),
                new Package("apk", "c", "1", null, null, " ")), List.of(), new Distro("alpine", null, null));

        JsonNode c = JSON.readTree(SbomWriter.cycloneDx(List.of(entry), "seed")).get("components").get(0)
                .get("components");

        assertThat(c.get(0).get("licenses").toString()).isEqualTo("[{\"expression\":\"MIT AND BSD-2-Clause\"}]");
        assertThat(c.get(1).get("licenses").toString()).isEqualTo("[{\"license\":{\"name\":\"GPLv2+ and MIT\"}}]");
        assertThat(c.get(2).has("licenses")).isFalse();
    }

    @Test
    void ociPurlFromReferenceWhenRepositoryUnknown() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.NONE));
        Entry entry = new Entry(List.of("127.0.0.1:5000/team/App:v1"), image, null, List.of(), List.of(),
                new Distro("debian", null, null));

        JsonNode c = JSON.readTree(SbomWriter.cycloneDx(List.of(entry), "seed")).get("components").get(0);

        assertThat(c.get("purl").asText()).isEqualTo("pkg:oci/app@sha256%3A" + image.manifestDigest().hex()
                + "?arch=arm64&repository_url=127.0.0.1%3A5000/team/App&tag=v1");
    }
}
