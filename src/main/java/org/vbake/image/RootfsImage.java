package org.vbake.image;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;

/**
 * A one-layer image made on the host from a root filesystem directory or tarball, reproducibly:
 * the same tree, arch, command and SOURCE_DATE_EPOCH give the same layer, config and manifest
 * digests. For images a recipe assembles from its own packages rather than pulls.
 */
public final class RootfsImage {

    private static final ObjectMapper JSON = new ObjectMapper();

    private RootfsImage() {
    }

    /**
     * @param cmd    the image's default command (may be empty)
     * @param env    environment of the image config, in order
     * @param epoch  creation time and mtime clamp in seconds (SOURCE_DATE_EPOCH); null for 0
     */
    public static ResolvedImage build(Path rootfs, Arch arch, List<String> cmd, Map<String, String> env, Long epoch,
            BlobCache cache) throws IOException, BadInputException {
        long when = epoch != null ? epoch : 0;
        Path tmp = cache.newTempFile();
        try {
            MessageDigest md = Digest.sha256();
            long size;
            try (OutputStream out = new DigestOutputStream(
                    new java.io.BufferedOutputStream(Files.newOutputStream(tmp), 1 << 20), md)) {
                RootfsTar.write(rootfs, out, when);
            }
            size = Files.size(tmp);
            Digest diffId = Digest.fromMessageDigest(md);
            Path blob;
            try (InputStream in = Files.newInputStream(tmp)) {
                blob = cache.put(diffId, size, in, "layer of " + rootfs);
            }

            ObjectNode config = JSON.createObjectNode();
            config.put("architecture", arch.ociArch());
            if (arch == Arch.AARCH64) {
                config.put("variant", "v8");
            }
            config.put("created", Instant.ofEpochSecond(when).toString());
            config.put("os", "linux");
            ObjectNode cc = config.putObject("config");
            ArrayNode envs = cc.putArray("Env");
            env.forEach((k, v) -> envs.add(k + "=" + v));
            if (!env.containsKey("PATH")) {
                envs.insert(0, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            }
            if (!cmd.isEmpty()) {
                ArrayNode c = cc.putArray("Cmd");
                cmd.forEach(c::add);
            }
            ObjectNode rootfsNode = config.putObject("rootfs");
            rootfsNode.put("type", "layers");
            rootfsNode.putArray("diff_ids").add(diffId.toString());
            config.putArray("history").addObject().put("created", Instant.ofEpochSecond(when).toString())
                    .put("created_by", "vbake rootfs " + rootfs.getFileName());
            byte[] configBytes = JSON.writeValueAsBytes(config);
            Digest configDigest = Digest.of(configBytes);
            cache.put(configBytes, "config of " + rootfs);

            ObjectNode manifest = JSON.createObjectNode();
            manifest.put("schemaVersion", 2);
            manifest.put("mediaType", MediaTypes.OCI_MANIFEST);
            manifest.putObject("config").put("mediaType", MediaTypes.OCI_CONFIG)
                    .put("digest", configDigest.toString()).put("size", configBytes.length);
            manifest.putArray("layers").addObject().put("mediaType", MediaTypes.OCI_LAYER)
                    .put("digest", diffId.toString()).put("size", size);
            byte[] manifestBytes = JSON.writeValueAsBytes(manifest);
            cache.put(manifestBytes, "manifest of " + rootfs);

            return new ResolvedImage("rootfs " + rootfs, null, List.of(), Digest.of(manifestBytes), manifestBytes,
                    MediaTypes.OCI_MANIFEST, configDigest, configBytes, "linux", arch.ociArch(),
                    arch == Arch.AARCH64 ? "v8" : null,
                    List.of(new ResolvedImage.Layer(diffId, MediaTypes.OCI_LAYER, size, diffId, blob)));
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
