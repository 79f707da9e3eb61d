package org.vbake.image;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;

/** Builds small but real images on disk: OCI layouts, oci-archives and docker-archives. */
final class ImageFixtures {

    static final ObjectMapper JSON = new ObjectMapper();

    private ImageFixtures() {
    }

    /** One single-platform image: its layers (uncompressed tars), config and manifest. */
    static final class Image {
        final String architecture;
        final String variant;
        final List<byte[]> layerTars = new ArrayList<>();
        final List<byte[]> layerBlobs = new ArrayList<>();
        final List<Digest> diffIds = new ArrayList<>();
        byte[] config;
        byte[] manifest;

        Image(String architecture, String variant) {
            this.architecture = architecture;
            this.variant = variant;
        }

        Digest configDigest() {
            return Digest.of(config);
        }

        Digest manifestDigest() {
            return Digest.of(manifest);
        }

        List<Digest> layerDigests() {
            return layerBlobs.stream().map(Digest::of).toList();
        }
    }

    /** A two-layer image whose files say which arch it is for; layers are gzip'd in its manifest. */
    static Image image(String architecture, String variant) throws IOException {
        Image img = new Image(architecture, variant);
        addLayer(img, tar(Map.of("etc/os-release", "ID=fixture\n", "etc/arch", architecture + "\n")), true);
        addLayer(img, tar(Map.of("usr/bin/app", "#!/bin/sh\necho " + architecture + "\n")), true);
        finish(img);
        return img;
    }

    static void addLayer(Image img, byte[] tar, boolean gzip) throws IOException {
        img.layerTars.add(tar);
        img.layerBlobs.add(gzip ? gzip(tar) : tar);
        img.diffIds.add(Digest.of(tar));
    }

    static void finish(Image img) throws IOException {
        ObjectNode config = JSON.createObjectNode();
        config.put("architecture", img.architecture);
        config.put("os", "linux");
        if (img.variant != null) {
            config.put("variant", img.variant);
        }
        config.putObject("config").putArray("Cmd").add("/usr/bin/app");
        ObjectNode rootfs = config.putObject("rootfs");
        rootfs.put("type", "layers");
        ArrayNode ids = rootfs.putArray("diff_ids");
        img.diffIds.forEach(d -> ids.add(d.toString()));
        img.config = JSON.writeValueAsBytes(config);

        ObjectNode manifest = JSON.createObjectNode();
        manifest.put("schemaVersion", 2);
        manifest.put("mediaType", MediaTypes.OCI_MANIFEST);
        manifest.set("config", descriptor(MediaTypes.OCI_CONFIG, img.config));
        ArrayNode layers = manifest.putArray("layers");
        for (int i = 0; i < img.layerBlobs.size(); i++) {
            byte[] blob = img.layerBlobs.get(i);
            boolean gz = blob.length > 1 && (blob[0] & 0xff) == 0x1f;
            layers.add(descriptor(gz ? MediaTypes.OCI_LAYER_GZIP : MediaTypes.OCI_LAYER, blob));
        }
        img.manifest = JSON.writeValueAsBytes(manifest);
    }

    static ObjectNode descriptor(String mediaType, byte[] content) {
        ObjectNode d = JSON.createObjectNode();
        d.put("mediaType", mediaType);
        d.put("digest", Digest.of(content).toString());
        d.put("size", content.length);
        return d;
    }

    static ObjectNode platformDescriptor(Image img) {
        ObjectNode d = descriptor(MediaTypes.OCI_MANIFEST, img.manifest);
        ObjectNode p = d.putObject("platform");
        p.put("architecture", img.architecture);
        p.put("os", "linux");
        if (img.variant != null) {
            p.put("variant", img.variant);
        }
        return d;
    }

    /**
     * An OCI layout whose index.json names one multi-platform index ({@code refName}) for
     * {@code images}, plus an attestation entry as buildkit writes them.
     */
    static void writeMultiPlatformLayout(Path dir, String refName, Image... images) throws IOException {
        ObjectNode nested = JSON.createObjectNode();
        nested.put("schemaVersion", 2);
        nested.put("mediaType", MediaTypes.OCI_INDEX);
        ArrayNode list = nested.putArray("manifests");
        for (Image img : images) {
            writeImageBlobs(dir, img);
            list.add(platformDescriptor(img));
        }
        ObjectNode attestation = descriptor(MediaTypes.OCI_MANIFEST, "{}".getBytes(StandardCharsets.UTF_8));
        attestation.putObject("platform").put("architecture", "unknown").put("os", "unknown");
        attestation.putObject("annotations").put("vnd.docker.reference.type", "attestation-manifest");
        list.add(attestation);
        byte[] nestedBytes = JSON.writeValueAsBytes(nested);
        writeBlob(dir, nestedBytes);
        ObjectNode entry = descriptor(MediaTypes.OCI_INDEX, nestedBytes);
        if (refName != null) {
            entry.putObject("annotations").put("org.opencontainers.image.ref.name", refName);
        }
        writeIndex(dir, entry);
    }

    /** An OCI layout with index.json pointing at each image's manifest directly, named by {@code refNames}. */
    static void writeLayout(Path dir, List<Image> images, List<String> refNames) throws IOException {
        List<ObjectNode> entries = new ArrayList<>();
        for (int i = 0; i < images.size(); i++) {
            Image img = images.get(i);
            writeImageBlobs(dir, img);
            ObjectNode entry = descriptor(MediaTypes.OCI_MANIFEST, img.manifest);
            if (refNames.get(i) != null) {
                entry.putObject("annotations").put("org.opencontainers.image.ref.name", refNames.get(i));
            }
            entries.add(entry);
        }
        writeIndex(dir, entries.toArray(ObjectNode[]::new));
    }

    static void writeImageBlobs(Path dir, Image img) throws IOException {
        writeBlob(dir, img.manifest);
        writeBlob(dir, img.config);
        for (byte[] blob : img.layerBlobs) {
            writeBlob(dir, blob);
        }
    }

    static void writeIndex(Path dir, ObjectNode... entries) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        ObjectNode index = JSON.createObjectNode();
        index.put("schemaVersion", 2);
        index.put("mediaType", MediaTypes.OCI_INDEX);
        ArrayNode list = index.putArray("manifests");
        for (ObjectNode e : entries) {
            list.add(e);
        }
        Files.write(dir.resolve("index.json"), JSON.writeValueAsBytes(index));
    }

    static Path blobPath(Path layout, Digest d) {
        return layout.resolve("blobs").resolve("sha256").resolve(d.hex());
    }

    static void writeBlob(Path dir, byte[] content) throws IOException {
        Path p = blobPath(dir, Digest.of(content));
        Files.createDirectories(p.getParent());
        Files.write(p, content);
    }

    /**
     * A {@code docker save} archive of {@code images}, each with its RepoTags; layer files are
     * stored as the images' blobs (gzip'd or plain), in the old {@code <id>/layer.tar} shape.
     */
    static byte[] dockerArchive(List<Image> images, List<List<String>> repoTags) throws IOException {
        Map<String, byte[]> files = new LinkedHashMap<>();
        ArrayNode manifest = JSON.createArrayNode();
        for (int i = 0; i < images.size(); i++) {
            Image img = images.get(i);
            String configName = img.configDigest().hex() + ".json";
            files.put(configName, img.config);
            ObjectNode entry = manifest.addObject();
            entry.put("Config", configName);
            ArrayNode tags = entry.putArray("RepoTags");
            repoTags.get(i).forEach(tags::add);
            ArrayNode layers = entry.putArray("Layers");
            for (byte[] blob : img.layerBlobs) {
                String name = Digest.of(blob).hex() + "/layer.tar";
                files.put(name, blob);
                layers.add(name);
            }
        }
        files.put("manifest.json", JSON.writeValueAsBytes(manifest));
        return tarBytes(files);
    }

    /** A tar of every file under {@code dir}, names relative to it, sorted. */
    static byte[] tarOfDirectory(Path dir) throws IOException {
        Map<String, byte[]> files = new LinkedHashMap<>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) {
                files.put(dir.relativize(p).toString(), Files.readAllBytes(p));
            }
        }
        return tarBytes(files);
    }

    static byte[] tar(Map<String, String> files) throws IOException {
        Map<String, byte[]> bytes = new LinkedHashMap<>();
        files.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> bytes.put(e.getKey(), e.getValue().getBytes(StandardCharsets.UTF_8)));
        return tarBytes(bytes);
    }

    static byte[] tarBytes(Map<String, byte[]> files) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(buf)) {
            for (Map.Entry<String, byte[]> f : files.entrySet()) {
                TarArchiveEntry e = new TarArchiveEntry(f.getKey());
                e.setSize(f.getValue().length);
                e.setModTime(0L);
                tar.putArchiveEntry(e);
                tar.write(f.getValue());
                tar.closeArchiveEntry();
            }
        }
        return buf.toByteArray();
    }

    static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (OutputStream gz = new GZIPOutputStream(buf)) {
            gz.write(data);
        }
        return buf.toByteArray();
    }
}
