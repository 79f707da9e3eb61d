package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.vbake.image.ImageFixtures.JSON;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.image.ImageFixtures.Image;
import org.vbake.image.LocalImageSource.Kind;

/** Reading images from OCI layouts, oci-archives and docker-archives built in the test. */
class LocalImageSourceTest {

    @TempDir
    Path tmp;

    private BlobCache cache;
    private Image arm64;
    private Image amd64;
    private Path layout;
    private final List<Event> events = new ArrayList<>();

    @BeforeEach
    void setUp() throws IOException {
        cache = new BlobCache(tmp.resolve("cache"));
        arm64 = ImageFixtures.image("arm64", "v8");
        amd64 = ImageFixtures.image("amd64", null);
        layout = tmp.resolve("layout");
        ImageFixtures.writeMultiPlatformLayout(layout, "demo:1.0", arm64, amd64);
    }

    private ResolvedImage read(Path path, String name, Arch arch) throws Exception {
        return LocalImageSource.read(path, name, arch, false, cache, events::add);
    }

    private Path write(String name, byte[] content) throws IOException {
        Path p = tmp.resolve(name);
        Files.write(p, content);
        return p;
    }

    @Test
    void ociLayoutSelectsTheArm64ImageFromTheIndex() throws Exception {
        ResolvedImage img = read(layout, null, Arch.AARCH64);

        assertThat(img.configDigest()).isEqualTo(arm64.configDigest());
        assertThat(img.configBytes()).isEqualTo(arm64.config);
        assertThat(img.manifestDigest()).isEqualTo(arm64.manifestDigest());
        assertThat(img.manifestBytes()).isEqualTo(arm64.manifest);
        assertThat(img.manifestMediaType()).isEqualTo(MediaTypes.OCI_MANIFEST);
        assertThat(img.platform()).isEqualTo("linux/arm64/v8");
        assertThat(img.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(arm64.diffIds);
        assertThat(img.layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(arm64.layerDigests());
        assertThat(img.layers()).extracting(ResolvedImage.Layer::mediaType).containsOnly(MediaTypes.OCI_LAYER_GZIP);
        assertThat(img.layers().get(0).size()).isEqualTo(arm64.layerBlobs.get(0).length);
        assertThat(img.source()).isEqualTo("oci-layout " + layout);
        assertThat(img.repository()).isNull();
        assertThat(img.tags()).isEmpty();
        assertThat(events).contains(new Event.Progress("reading oci-layout " + layout));
    }

    @Test
    void everyBlobInTheCacheHashesToItsName() throws Exception {
        ResolvedImage img = read(layout, "demo:1.0", Arch.AARCH64);

        List<Digest> expected = new ArrayList<>(arm64.layerDigests());
        expected.add(arm64.configDigest());
        expected.add(arm64.manifestDigest());
        for (Digest d : expected) {
            assertThat(cache.contains(d)).as("%s cached", d).isTrue();
            try (InputStream in = Files.newInputStream(cache.path(d))) {
                assertThat(Digest.of(in)).isEqualTo(d);
            }
        }
        assertThat(img.layers().get(1).blob()).isEqualTo(cache.path(arm64.layerDigests().get(1)));
        assertThat(cache.contains(amd64.layerDigests().get(0))).as("the other platform stays out").isFalse();
    }

    @Test
    void ociLayoutSelectsTheAmd64ImageForX86() throws Exception {
        ResolvedImage img = read(layout, null, Arch.X86_64);

        assertThat(img.configDigest()).isEqualTo(amd64.configDigest());
        assertThat(img.architecture()).isEqualTo("amd64");
        assertThat(img.variant()).isNull();
        assertThat(img.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(amd64.diffIds);
    }

    @Test
    void ociArchiveReadsLikeTheLayoutItHolds() throws Exception {
        Path archive = write("demo.oci.tar", ImageFixtures.tarOfDirectory(layout));

        assertThat(LocalImageSource.detect(archive)).isEqualTo(Kind.OCI_ARCHIVE);
        ResolvedImage img = read(archive, null, Arch.AARCH64);

        assertThat(img.source()).isEqualTo("oci-archive " + archive);
        assertThat(img.configDigest()).isEqualTo(arm64.configDigest());
        assertThat(img.manifestBytes()).isEqualTo(arm64.manifest);
        assertThat(img.layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(arm64.layerDigests());
        for (ResolvedImage.Layer l : img.layers()) {
            try (InputStream in = Files.newInputStream(l.blob())) {
                assertThat(Digest.of(in)).isEqualTo(l.digest());
            }
        }
    }

    @Test
    void ociArchiveMayBeGzipped() throws Exception {
        Path archive = write("demo.oci.tar.gz", ImageFixtures.gzip(ImageFixtures.tarOfDirectory(layout)));

        assertThat(LocalImageSource.detect(archive)).isEqualTo(Kind.OCI_ARCHIVE);
        assertThat(read(archive, null, Arch.X86_64).configDigest()).isEqualTo(amd64.configDigest());
    }

    @Test
    void dockerArchiveWithGzippedAndPlainLayers() throws Exception {
        Image img = new Image("arm64", null);
        ImageFixtures.addLayer(img, ImageFixtures.tar(Map.of("a/file", "gzipped layer\n")), true);
        ImageFixtures.addLayer(img, ImageFixtures.tar(Map.of("b/file", "plain layer\n")), false);
        ImageFixtures.finish(img);
        Path archive = write("saved.tar",
                ImageFixtures.dockerArchive(List.of(img), List.of(List.of("example/app:2", "localhost/app:latest"))));

        assertThat(LocalImageSource.detect(archive)).isEqualTo(Kind.DOCKER_ARCHIVE);
        ResolvedImage r = read(archive, null, Arch.AARCH64);

        assertThat(r.source()).isEqualTo("docker-archive " + archive);
        assertThat(r.manifestBytes()).isNull();
        assertThat(r.manifestDigest()).isNull();
        assertThat(r.manifestMediaType()).isNull();
        assertThat(r.configDigest()).isEqualTo(img.configDigest());
        assertThat(r.tags()).containsExactly("docker.io/example/app:2", "localhost/app:latest");
        assertThat(r.layers()).extracting(ResolvedImage.Layer::mediaType)
                .containsExactly(MediaTypes.OCI_LAYER_GZIP, MediaTypes.OCI_LAYER);
        assertThat(r.layers()).extracting(ResolvedImage.Layer::digest)
                .containsExactly(Digest.of(img.layerBlobs.get(0)), img.diffIds.get(1));
        assertThat(r.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(img.diffIds);
        assertThat(r.layers()).extracting(ResolvedImage.Layer::size)
                .containsExactly((long) img.layerBlobs.get(0).length, (long) img.layerBlobs.get(1).length);
        for (ResolvedImage.Layer l : r.layers()) {
            assertThat(Files.readAllBytes(l.blob())).isEqualTo(img.layerBlobs.get(r.layers().indexOf(l)));
        }
    }

    @Test
    void aGzipLayerThatExpandsPastTheLimitIsRefusedWhileItIsRead() throws Exception {
        // 64 MiB of zeros gzip to a few hundred KiB; the limit is 1 MiB.
        java.io.ByteArrayOutputStream tar = new java.io.ByteArrayOutputStream();
        try (org.apache.commons.compress.archivers.tar.TarArchiveOutputStream t =
                new org.apache.commons.compress.archivers.tar.TarArchiveOutputStream(tar)) {
            org.apache.commons.compress.archivers.tar.TarArchiveEntry e =
                    new org.apache.commons.compress.archivers.tar.TarArchiveEntry("zeros");
            e.setSize(64L << 20);
            t.putArchiveEntry(e);
            byte[] mib = new byte[1 << 20];
            for (int i = 0; i < 64; i++) {
                t.write(mib);
            }
            t.closeArchiveEntry();
        }
        Image img = new Image("arm64", null);
        ImageFixtures.addLayer(img, tar.toByteArray(), true);
        ImageFixtures.finish(img);
        Path archive = write("bomb.tar", ImageFixtures.dockerArchive(List.of(img), List.of(List.of("bomb:1"))));
        assertThat(Files.size(archive)).isLessThan(1L << 20);
        Map<String, String> saved = DockerArchiveReader.environment;
        DockerArchiveReader.environment = Map.of("VBAKE_LAYER_LIMIT", "1M");
        try {
            assertThatThrownBy(() -> read(archive, null, Arch.AARCH64))
                    .isInstanceOf(BadInputException.class)
                    .hasMessageContaining("docker-archive " + archive + ": layer ")
                    .hasMessageContaining("expands to more than 1.0 MiB uncompressed (VBAKE_LAYER_LIMIT=1M)");
        } finally {
            DockerArchiveReader.environment = saved;
        }
    }

    @Test
    void dockerArchiveInDocker25ShapeWithSymlinkedLayerIsRead() throws Exception {
        // docker 25+ saves blobs/sha256/<hex> with an OCI index beside manifest.json; podman and
        // older docker link <id>/layer.tar to the real file.
        Map<String, byte[]> files = new java.util.LinkedHashMap<>();
        String configPath = "blobs/sha256/" + arm64.configDigest().hex();
        String layer0 = "blobs/sha256/" + arm64.diffIds.get(0).hex();
        files.put(configPath, arm64.config);
        files.put(layer0, arm64.layerTars.get(0));
        files.put(arm64.diffIds.get(1).hex() + ".tar", arm64.layerTars.get(1));
        files.put("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}".getBytes(StandardCharsets.UTF_8));
        files.put("manifest.json", ("[{\"Config\":\"" + configPath + "\",\"RepoTags\":[\"demo:25\"],\"Layers\":[\""
                + layer0 + "\",\"" + "e".repeat(64) + "/layer.tar\"]}]").getBytes(StandardCharsets.UTF_8));
        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
        try (var tar = new org.apache.commons.compress.archivers.tar.TarArchiveOutputStream(buf)) {
            for (Map.Entry<String, byte[]> f : files.entrySet()) {
                var e = new org.apache.commons.compress.archivers.tar.TarArchiveEntry(f.getKey());
                e.setSize(f.getValue().length);
                tar.putArchiveEntry(e);
                tar.write(f.getValue());
                tar.closeArchiveEntry();
            }
            var link = new org.apache.commons.compress.archivers.tar.TarArchiveEntry("e".repeat(64) + "/layer.tar",
                    org.apache.commons.compress.archivers.tar.TarArchiveEntry.LF_SYMLINK);
            link.setLinkName("../" + arm64.diffIds.get(1).hex() + ".tar");
            tar.putArchiveEntry(link);
            tar.closeArchiveEntry();
        }
        Path archive = write("docker25.tar", buf.toByteArray());

        assertThat(LocalImageSource.detect(archive)).isEqualTo(Kind.DOCKER_ARCHIVE);
        ResolvedImage img = read(archive, "demo:25", Arch.AARCH64);

        assertThat(img.configDigest()).isEqualTo(arm64.configDigest());
        assertThat(img.tags()).containsExactly("docker.io/library/demo:25");
        assertThat(img.layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(arm64.diffIds);
        assertThat(Files.readAllBytes(img.layers().get(1).blob())).isEqualTo(arm64.layerTars.get(1));
    }

    @Test
    void dockerArchiveWithSeveralImagesIsChosenByRepoTag() throws Exception {
        Image other = ImageFixtures.image("arm64", null);
        Image wanted = new Image("arm64", null);
        ImageFixtures.addLayer(wanted, ImageFixtures.tar(Map.of("wanted", "yes\n")), false);
        ImageFixtures.finish(wanted);
        Path archive = write("two.tar", ImageFixtures.dockerArchive(List.of(other, wanted),
                List.of(List.of("other:1"), List.of("alpine:3.20"))));

        assertThat(read(archive, "docker.io/library/alpine:3.20", Arch.AARCH64).configDigest())
                .isEqualTo(wanted.configDigest());
        assertThat(read(archive, "other:1", Arch.AARCH64).configDigest()).isEqualTo(other.configDigest());
        assertThatThrownBy(() -> read(archive, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("docker-archive " + archive + " holds 2 images (other:1, alpine:3.20); name the one to use");
        assertThatThrownBy(() -> read(archive, "busybox", Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("docker-archive " + archive + " has no image named 'busybox' (it has: other:1, alpine:3.20)");
    }

    @Test
    void layoutWithSeveralNamedImagesIsChosenByRefName() throws Exception {
        Image second = ImageFixtures.image("arm64", null);
        Path dir = tmp.resolve("named");
        ImageFixtures.writeLayout(dir, List.of(arm64, second), List.of("first", "second"));

        assertThat(read(dir, "second", Arch.AARCH64).configDigest()).isEqualTo(second.configDigest());
        assertThatThrownBy(() -> read(dir, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-layout " + dir + " holds several images (first, second); name the one to use");
    }

    /** index.json listing per-platform manifests directly, each with its platform, no ref names (image-spec's example). */
    private Path flatMultiPlatformLayout(Image... images) throws IOException {
        Path dir = tmp.resolve("flat-" + images.length + "-" + System.nanoTime());
        List<ObjectNode> entries = new ArrayList<>();
        for (Image img : images) {
            ImageFixtures.writeImageBlobs(dir, img);
            entries.add(ImageFixtures.platformDescriptor(img));
        }
        ImageFixtures.writeIndex(dir, entries.toArray(ObjectNode[]::new));
        return dir;
    }

    @Test
    void perPlatformManifestsListedDirectlyInIndexJsonAreSelectedByArch() throws Exception {
        Path dir = flatMultiPlatformLayout(arm64, amd64);

        assertThat(read(dir, null, Arch.AARCH64).configDigest()).isEqualTo(arm64.configDigest());
        assertThat(read(dir, null, Arch.X86_64).configDigest()).isEqualTo(amd64.configDigest());
        // As an oci-archive too.
        Path archive = write("flat.oci.tar", ImageFixtures.tarOfDirectory(dir));
        assertThat(read(archive, null, Arch.X86_64).configDigest()).isEqualTo(amd64.configDigest());
    }

    @Test
    void anUnnamedEntryIsPickedByDigestAndANamedOneByName() throws Exception {
        Path dir = flatMultiPlatformLayout(arm64, amd64);
        // With --allow-arch-mismatch semantics aside: the digest picks the entry, whatever its platform.
        LocalImageSource.Spec spec = LocalImageSource.Spec.parse(dir + "@" + amd64.manifestDigest());
        assertThat(spec.path()).isEqualTo(dir);
        assertThat(spec.select()).isEqualTo(amd64.manifestDigest().toString());
        ResolvedImage picked = LocalImageSource.read(spec.path(), spec.select(), Arch.X86_64, false, cache, events::add);
        assertThat(picked.manifestDigest()).isEqualTo(amd64.manifestDigest());
        assertThatThrownBy(() -> read(dir, "sha256:" + "0".repeat(64), Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("has no index.json entry sha256:" + "0".repeat(64) + " (it has: unnamed "
                        + arm64.manifestDigest() + " [linux/arm64/v8], unnamed " + amd64.manifestDigest()
                        + " [linux/amd64])");

        Image second = ImageFixtures.image("arm64", null);
        Path named = tmp.resolve("named");
        ImageFixtures.writeLayout(named, List.of(arm64, second), List.of("first", "second"));
        LocalImageSource.Spec byName = LocalImageSource.Spec.parse(named + ":second");
        assertThat(byName).isEqualTo(new LocalImageSource.Spec(named, "second"));
        assertThat(read(byName.path(), byName.select(), Arch.AARCH64).configDigest()).isEqualTo(second.configDigest());
        // A path that exists as written is never split.
        Path colon = Files.createDirectories(tmp.resolve("odd:name"));
        assertThat(LocalImageSource.Spec.parse(colon.toString())).isEqualTo(new LocalImageSource.Spec(colon, null));
    }

    @Test
    void unnamedEntriesThatAreDifferentImagesAreStillRefused() throws Exception {
        Image other = ImageFixtures.image("arm64", "v8");
        ImageFixtures.addLayer(other, ImageFixtures.tar(Map.of("extra", "x")), true);
        ImageFixtures.finish(other);
        Path dir = flatMultiPlatformLayout(arm64, other);

        assertThatThrownBy(() -> read(dir, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("holds several images that differ in something other than platform");
    }

    /** The layers of {@code img} as name -> content, from the verified blobs in the cache. */
    private static Map<String, String> layerFiles(ResolvedImage img) throws IOException {
        Map<String, String> files = new java.util.TreeMap<>();
        for (ResolvedImage.Layer l : img.layers()) {
            try (InputStream raw = Files.newInputStream(l.blob());
                    InputStream in = new java.util.zip.GZIPInputStream(raw);
                    org.apache.commons.compress.archivers.tar.TarArchiveInputStream tar =
                            new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(in)) {
                for (var e = tar.getNextEntry(); e != null; e = tar.getNextEntry()) {
                    if (e.isFile()) {
                        files.put(e.getName(), new String(tar.readAllBytes(), StandardCharsets.UTF_8));
                    }
                }
            }
        }
        return files;
    }

    @Test
    void archivesWrittenByJibCoreAreImagesNotRootfs() throws Exception {
        Path file = Files.writeString(tmp.resolve("hello.txt"), "hello from jib\n");
        Map<com.google.cloud.tools.jib.api.buildplan.ImageFormat, Kind> formats = Map.of(
                com.google.cloud.tools.jib.api.buildplan.ImageFormat.Docker, Kind.DOCKER_ARCHIVE,
                com.google.cloud.tools.jib.api.buildplan.ImageFormat.OCI, Kind.OCI_ARCHIVE);
        for (var f : formats.entrySet()) {
            Path tar = tmp.resolve("jib-" + f.getKey() + ".tar");
            com.google.cloud.tools.jib.api.Jib.fromScratch()
                    .setFormat(f.getKey())
                    .setPlatforms(java.util.Set.of(new com.google.cloud.tools.jib.api.buildplan.Platform("arm64", "linux")))
                    .addFileEntriesLayer(com.google.cloud.tools.jib.api.buildplan.FileEntriesLayer.builder()
                            .addEntry(file, com.google.cloud.tools.jib.api.buildplan.AbsoluteUnixPath.get("/hello.txt"))
                            .build())
                    .containerize(com.google.cloud.tools.jib.api.Containerizer
                            .to(com.google.cloud.tools.jib.api.TarImage.at(tar).named("example/jib:1"))
                            .setApplicationLayersCache(tmp.resolve("jib-cache"))
                            .setBaseImageLayersCache(tmp.resolve("jib-cache")));

            assertThat(LocalImageSource.detect(tar)).as(f.getKey().toString()).isEqualTo(f.getValue());
            ResolvedImage img = read(tar, null, Arch.AARCH64);
            assertThat(img.architecture()).isEqualTo("arm64");
            assertThat(layerFiles(img)).containsEntry("hello.txt", "hello from jib\n");
        }
    }

    @Test
    void dockerArchivesWithOtherWritersNamesAreImagesNotRootfs() throws Exception {
        // go-containerregistry's tarball: config "sha256:<hex>", layers "<hex>.tar.gz"; and layers
        // in numbered directories. Neither name is one 'docker save' writes.
        byte[] layer = arm64.layerBlobs.get(0);
        String hex = Digest.of(layer).hex();
        for (List<String> names : List.of(List.of("sha256:" + arm64.configDigest().hex(), hex + ".tar.gz"),
                List.of("config.json", "layer0/layer.tar"))) {
            Map<String, byte[]> files = new java.util.LinkedHashMap<>();
            files.put(names.get(0), arm64.config);
            ObjectNode entry = JSON.createObjectNode();
            entry.put("Config", names.get(0));
            entry.putArray("RepoTags").add("other/writer:1");
            var layers = entry.putArray("Layers");
            for (int i = 0; i < arm64.layerBlobs.size(); i++) {
                String name = i == 0 ? names.get(1) : "layer" + i + "/layer.tar";
                files.put(name, arm64.layerBlobs.get(i));
                layers.add(name);
            }
            files.put("manifest.json", JSON.writeValueAsBytes(JSON.createArrayNode().add(entry)));
            Path archive = write("other-" + names.get(1).replace('/', '_') + ".tar", ImageFixtures.tarBytes(files));

            assertThat(LocalImageSource.detect(archive)).as(names.toString()).isEqualTo(Kind.DOCKER_ARCHIVE);
            ResolvedImage img = read(archive, null, Arch.AARCH64);
            assertThat(img.configDigest()).isEqualTo(arm64.configDigest());
            assertThat(img.tags()).containsExactly("docker.io/other/writer:1");
            assertThat(img.layers()).extracting(ResolvedImage.Layer::diffId).isEqualTo(arm64.diffIds);
        }
    }

    @Test
    void unknownRefNameIsRefusedListingTheNames() {
        assertThatThrownBy(() -> read(layout, "demo:2.0", Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-layout " + layout + " has no image named 'demo:2.0' (it has: demo:1.0)");
    }

    @Test
    void indexWithoutTheTargetPlatformListsWhatItHas() throws Exception {
        Image armv7 = ImageFixtures.image("arm", "v7");
        Path dir = tmp.resolve("noarm64");
        ImageFixtures.writeMultiPlatformLayout(dir, null, amd64, armv7);

        assertThatThrownBy(() -> read(dir, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-layout " + dir + " has no linux/arm64 image (it has: linux/amd64, linux/arm/v7)");
    }

    @Test
    void singleArchImageForAnotherArchIsRefusedUnlessAllowed() throws Exception {
        Path dir = tmp.resolve("amd64only");
        ImageFixtures.writeLayout(dir, List.of(amd64), Arrays.asList((String) null));

        assertThatThrownBy(() -> read(dir, null, Arch.AARCH64))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.getMessage()).isEqualTo("oci-layout " + dir + " is a linux/amd64 image, not linux/arm64");
                    assertThat(e.hint()).isEqualTo("pass --allow-arch-mismatch to import it anyway");
                });

        ResolvedImage img = LocalImageSource.read(dir, null, Arch.AARCH64, true, cache, events::add);
        assertThat(img.architecture()).isEqualTo("amd64");
        assertThat(img.configDigest()).isEqualTo(amd64.configDigest());
        assertThat(events).anySatisfy(e -> assertThat(e).isInstanceOf(Event.Progress.class)
                .asString().contains("linux/amd64 image, importing it for linux/arm64"));
    }

    @Test
    void missingBlobIsNamed() throws Exception {
        Digest layer = arm64.layerDigests().get(1);
        Files.delete(ImageFixtures.blobPath(layout, layer));

        assertThatThrownBy(() -> read(layout, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-layout " + layout + ": blob " + layer + " (layer) is missing");
    }

    @Test
    void corruptedLayerIsADigestMismatchAndStaysOutOfTheCache() throws Exception {
        Digest layer = arm64.layerDigests().get(0);
        Path blob = ImageFixtures.blobPath(layout, layer);
        byte[] bytes = Files.readAllBytes(blob);
        bytes[bytes.length / 2] ^= 0x55;
        Files.write(blob, bytes);

        assertThatThrownBy(() -> read(layout, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith("oci-layout " + layout + ": blob " + layer + " (layer): digest mismatch: expected "
                        + layer + ", content is sha256:");
        assertThat(cache.contains(layer)).isFalse();
    }

    @Test
    void corruptedConfigIsADigestMismatch() throws Exception {
        Path blob = ImageFixtures.blobPath(layout, arm64.configDigest());
        Files.writeString(blob, Files.readString(blob).replace("arm64", "amd64"));

        assertThatThrownBy(() -> read(layout, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith("oci-layout " + layout + ": blob " + arm64.configDigest()
                        + " (config): digest mismatch: content is sha256:");
    }

    @Test
    void manifestThatIsNotJsonIsRefused() throws Exception {
        byte[] garbage = "this is not json".getBytes(StandardCharsets.UTF_8);
        Path dir = tmp.resolve("garbage");
        ImageFixtures.writeBlob(dir, garbage);
        ImageFixtures.writeIndex(dir, ImageFixtures.descriptor(MediaTypes.OCI_MANIFEST, garbage));

        assertThatThrownBy(() -> read(dir, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith("oci-layout " + dir + ": manifest " + Digest.of(garbage) + " is not valid JSON");
    }

    @Test
    void truncatedOciArchiveIsRefused() throws Exception {
        byte[] full = ImageFixtures.tarOfDirectory(layout);
        Path archive = write("cut.tar", Arrays.copyOf(full, full.length / 2 + 100));

        assertThat(LocalImageSource.detect(archive)).isEqualTo(Kind.OCI_ARCHIVE);
        assertThatThrownBy(() -> read(archive, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-archive " + archive + ": truncated: unexpected end of archive");
    }

    @Test
    void ociArchiveCutInAHeaderIsRefused() throws Exception {
        byte[] full = ImageFixtures.tarOfDirectory(layout);
        // Keep everything up to the last entry's header and 100 bytes of it.
        int cut = full.length - 1024 - 512;
        while (cut > 0 && full[cut] == 0) {
            cut -= 512;
        }
        cut = (cut / 512) * 512;
        Path archive = write("cut-header.tar", Arrays.copyOf(full, cut + 100));

        assertThatThrownBy(() -> read(archive, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageEndingWith(archive + ": truncated: unexpected end of archive");
    }

    @Test
    void dockerArchiveLayerThatDoesNotMatchItsDiffIdIsRefused() throws Exception {
        Image img = new Image("arm64", null);
        ImageFixtures.addLayer(img, ImageFixtures.tar(Map.of("f", "one\n")), true);
        ImageFixtures.finish(img);
        byte[] wrongLayer = ImageFixtures.gzip(ImageFixtures.tar(Map.of("f", "two\n")));
        img.layerBlobs.set(0, wrongLayer);
        Path archive = write("lying.tar", ImageFixtures.dockerArchive(List.of(img), List.of(List.of("x:1"))));

        assertThatThrownBy(() -> read(archive, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("docker-archive " + archive + ": layer " + Digest.of(wrongLayer).hex()
                        + "/layer.tar: digest mismatch: the config's diff_id is " + img.diffIds.get(0));
    }

    @Test
    void emptyFileIsRefused() throws Exception {
        Path empty = write("empty.tar", new byte[0]);

        assertThatThrownBy(() -> read(empty, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage(empty + ": empty file, not an image archive");
    }

    @Test
    void fileThatIsNoTarIsRefused() throws Exception {
        Path json = write("x.json", ("{\"not\": \"a tar\"}" + " ".repeat(600)).getBytes(StandardCharsets.UTF_8));

        assertThatThrownBy(() -> read(json, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(json + ": not an image archive");
    }

    @Test
    void brokenGzipIsBadInputForDetectAndRead() throws Exception {
        Path broken = write("broken.tar.gz", new byte[] {0x1f, (byte) 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});

        assertThat(LocalImageSource.detect(broken)).isEqualTo(Kind.ROOTFS_TAR);
        assertThatThrownBy(() -> read(broken, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(broken + ": not an image archive (corrupt gzip data: ");
    }

    @Test
    void rootfsIsNotAnImage() throws Exception {
        Path rootfs = write("rootfs.tar", ImageFixtures.tar(Map.of("etc/hostname", "box\n", "bin/sh", "#!")));

        assertThatThrownBy(() -> read(rootfs, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage(rootfs + " is not an image: no OCI layout, oci-archive or docker-archive found"
                        + " (it looks like a rootfs tarball)");
    }

    @Test
    void detectTellsEveryKindApart() throws Exception {
        Path rootfsDir = Files.createDirectories(tmp.resolve("rootfs/etc"));
        Files.writeString(rootfsDir.resolve("hostname"), "box\n");
        byte[] rootfsTar = ImageFixtures.tar(Map.of("etc/hostname", "box\n"));

        assertThat(LocalImageSource.detect(layout)).isEqualTo(Kind.OCI_LAYOUT);
        assertThat(LocalImageSource.detect(tmp.resolve("rootfs"))).isEqualTo(Kind.ROOTFS_DIR);
        assertThat(LocalImageSource.detect(write("r.tar", rootfsTar))).isEqualTo(Kind.ROOTFS_TAR);
        assertThat(LocalImageSource.detect(write("r.tar.gz", ImageFixtures.gzip(rootfsTar)))).isEqualTo(Kind.ROOTFS_TAR);
        assertThat(LocalImageSource.detect(write("r.tar.zst", com.github.luben.zstd.Zstd.compress(rootfsTar))))
                .isEqualTo(Kind.ROOTFS_TAR);
        assertThat(LocalImageSource.detect(write("e", new byte[0]))).isEqualTo(Kind.ROOTFS_TAR);
        assertThat(LocalImageSource.detect(write("d.tar",
                ImageFixtures.dockerArchive(List.of(arm64), List.of(List.of("a:1")))))).isEqualTo(Kind.DOCKER_ARCHIVE);
        Path missing = tmp.resolve("nope.tar");
        assertThatThrownBy(() -> LocalImageSource.detect(missing))
                .isInstanceOf(BadInputException.class)
                .hasMessage(missing + ": no such file or directory");
        assertThatThrownBy(() -> read(missing, null, Arch.AARCH64))
                .isInstanceOf(BadInputException.class)
                .hasMessage(missing + ": no such file or directory");
    }

    @Test
    void indexJsonListingPlatformsDirectlyIsSelectedByPlatform() throws Exception {
        Path dir = tmp.resolve("flat");
        ImageFixtures.writeImageBlobs(dir, arm64);
        ImageFixtures.writeImageBlobs(dir, amd64);
        ObjectNode a = ImageFixtures.platformDescriptor(amd64);
        a.putObject("annotations").put("org.opencontainers.image.ref.name", "flat");
        ObjectNode b = ImageFixtures.platformDescriptor(arm64);
        b.putObject("annotations").put("org.opencontainers.image.ref.name", "flat");
        ImageFixtures.writeIndex(dir, a, b);

        assertThat(read(dir, "flat", Arch.AARCH64).configDigest()).isEqualTo(arm64.configDigest());
        assertThat(read(dir, null, Arch.X86_64).configDigest()).isEqualTo(amd64.configDigest());
        assertThat(JSON.readTree(Files.readAllBytes(dir.resolve("index.json"))).get("manifests").size()).isEqualTo(2);
    }
}
