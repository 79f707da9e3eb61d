package org.vbake.image;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashSet;
import java.util.Set;

/**
 * Writes an image as an OCI image layout directory holding just that image. Layer blobs are hard
 * links into the blob cache where the file system allows, so a layout costs no extra disk space;
 * whoever reads the layout must not modify its blobs.
 */
public final class OciLayoutWriter {

    private OciLayoutWriter() {
    }

    /**
     * Writes {@code oci-layout}, the blobs and, last, an {@code index.json} with the image's
     * manifest as its one entry (replacing any index already there; blobs already present are
     * kept). An image without a manifest (from a docker-archive) gets a synthesized OCI manifest.
     *
     * @param refName the {@code org.opencontainers.image.ref.name} annotation, or null for none
     * @return the digest of the manifest index.json points to
     */
    public static Digest write(ResolvedImage img, Path dir, String refName) throws IOException {
        Path blobs = Files.createDirectories(dir.resolve("blobs").resolve("sha256"));
        byte[] manifest = img.manifestBytes() != null ? img.manifestBytes() : synthesizeManifest(img);
        Digest manifestDigest = Digest.of(manifest);
        String manifestType = img.manifestBytes() != null && img.manifestMediaType() != null ? img.manifestMediaType()
                : MediaTypes.OCI_MANIFEST;

        writeAtomically(dir.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}".getBytes(StandardCharsets.UTF_8));
        writeBlob(blobs, img.configDigest(), img.configBytes());
        Set<Digest> done = new HashSet<>();
        for (ResolvedImage.Layer layer : img.layers()) {
            if (done.add(layer.digest())) {
                linkOrCopy(layer.blob(), blobs.resolve(layer.digest().hex()), layer.size());
            }
        }
        writeBlob(blobs, manifestDigest, manifest);

        ObjectNode index = ImageJson.MAPPER.createObjectNode();
        index.put("schemaVersion", 2);
        index.put("mediaType", MediaTypes.OCI_INDEX);
        ObjectNode descriptor = index.putArray("manifests").addObject();
        descriptor.put("mediaType", manifestType);
        descriptor.put("digest", manifestDigest.toString());
        descriptor.put("size", manifest.length);
        if (refName != null) {
            descriptor.putObject("annotations").put(OciImageReader.REF_NAME, refName);
        }
        writeAtomically(dir.resolve("index.json"), ImageJson.MAPPER.writeValueAsBytes(index));
        return manifestDigest;
    }

    /** An OCI manifest for an image that came without one; the same image always gives the same bytes. */
    static byte[] synthesizeManifest(ResolvedImage img) throws IOException {
        ObjectNode m = ImageJson.MAPPER.createObjectNode();
        m.put("schemaVersion", 2);
        m.put("mediaType", MediaTypes.OCI_MANIFEST);
        ObjectNode config = m.putObject("config");
        config.put("mediaType", MediaTypes.OCI_CONFIG);
        config.put("digest", img.configDigest().toString());
        config.put("size", img.configBytes().length);
        ArrayNode layers = m.putArray("layers");
        for (ResolvedImage.Layer layer : img.layers()) {
            ObjectNode l = layers.addObject();
            l.put("mediaType", layer.mediaType());
            l.put("digest", layer.digest().toString());
            l.put("size", layer.size());
        }
        return ImageJson.MAPPER.writeValueAsBytes(m);
    }

    private static void writeBlob(Path blobs, Digest digest, byte[] content) throws IOException {
        Path target = blobs.resolve(digest.hex());
        if (Files.isRegularFile(target) && Files.size(target) == content.length) {
            return;
        }
        writeAtomically(target, content);
    }

    private static void linkOrCopy(Path source, Path target, long size) throws IOException {
        if (Files.isRegularFile(target) && Files.size(target) == size) {
            return;
        }
        Files.deleteIfExists(target);
        try {
            Files.createLink(target, source);
        } catch (FileSystemException | UnsupportedOperationException e) {
            // Another file system, or one without hard links.
            Path tmp = target.resolveSibling(target.getFileName() + ".part");
            Files.copy(source, tmp, StandardCopyOption.REPLACE_EXISTING);
            move(tmp, target);
        }
    }

    private static void writeAtomically(Path target, byte[] content) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".part");
        Files.write(tmp, content);
        move(tmp, target);
    }

    private static void move(Path tmp, Path target) throws IOException {
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
