package org.vbake.image;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.vbake.api.BadInputException;

/**
 * Writes an image as a {@code docker load} archive, the one format both docker (20.10 to 26) and
 * podman (4, 5) load: {@code <config hex>.json}, one uncompressed {@code <diff_id hex>/layer.tar}
 * per layer and {@code manifest.json}. Output is byte-for-byte deterministic.
 */
public final class DockerArchiveWriter {

    private static final int BUFFER = 1 << 16;

    private DockerArchiveWriter() {
    }

    /**
     * Writes the archive to {@code out} (which is flushed, not closed). Layers are decompressed
     * twice when compressed, once to learn their size and check them against their diff_id, once
     * to write them, so nothing is held in memory or in temporary files.
     *
     * @throws BadInputException when a cached layer is not what its diff_id says; the output is
     *                           then incomplete and must be discarded
     */
    public static void write(ResolvedImage img, OutputStream out) throws IOException, BadInputException {
        write(img, out, java.util.Map.of());
    }

    /**
     * As {@link #write(ResolvedImage, OutputStream)}, for layers already checked by {@link LayerScan}:
     * {@code sizes} gives their uncompressed size by diff_id, which saves the first pass.
     */
    public static void write(ResolvedImage img, OutputStream out, java.util.Map<Digest, Long> sizes)
            throws IOException, BadInputException {
        TarArchiveOutputStream tar = new TarArchiveOutputStream(out);
        tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
        tar.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);

        String configName = img.configDigest().hex() + ".json";
        putFile(tar, configName, img.configBytes());

        List<String> layerNames = new ArrayList<>();
        Set<Digest> written = new HashSet<>();
        for (ResolvedImage.Layer layer : img.layers()) {
            String dir = layer.diffId().hex();
            layerNames.add(dir + "/layer.tar");
            if (written.add(layer.diffId())) {
                writeLayer(tar, dir, layer, img.source(), sizes.get(layer.diffId()));
            }
        }

        ObjectNode entry = ImageJson.MAPPER.createObjectNode();
        entry.put("Config", configName);
        ArrayNode tags = entry.putArray("RepoTags");
        repoTags(img.tags()).forEach(tags::add);
        ArrayNode layers = entry.putArray("Layers");
        layerNames.forEach(layers::add);
        ArrayNode manifest = ImageJson.MAPPER.createArrayNode().add(entry);
        putFile(tar, "manifest.json", ImageJson.MAPPER.writeValueAsBytes(manifest));
        tar.finish();
        tar.flush();
    }

    /**
     * Tags as docker-archive RepoTags accept them: {@code name:tag}, no digests; a bare name gets
     * {@code :latest}; a digest-only reference is dropped.
     */
    static List<String> repoTags(List<String> tags) {
        Set<String> result = new LinkedHashSet<>();
        for (String tag : tags) {
            String name = tag;
            int at = name.indexOf('@');
            boolean hadDigest = at >= 0;
            if (hadDigest) {
                name = name.substring(0, at);
            }
            boolean hasTag = name.lastIndexOf(':') > name.lastIndexOf('/');
            if (hasTag) {
                result.add(name);
            } else if (!hadDigest && !name.isEmpty()) {
                result.add(name + ":latest");
            }
        }
        return List.copyOf(result);
    }

    private static void writeLayer(TarArchiveOutputStream tar, String dir, ResolvedImage.Layer layer, String source,
            Long knownSize) throws IOException, BadInputException {
        String what = source + ": layer " + layer.digest();
        Path blob = layer.blob();
        Compression compression = Compression.of(blob);
        long size;
        if (knownSize != null) {
            size = knownSize;
        } else if (compression == Compression.NONE) {
            size = Files.size(blob);
        } else {
            MessageDigest md = Digest.sha256();
            try (InputStream in = open(blob, compression, what);
                    DigestOutputStream sink = new DigestOutputStream(OutputStream.nullOutputStream(), md)) {
                size = in.transferTo(sink);
            } catch (CorruptInputException e) {
                throw new BadInputException(what + ": " + e.getMessage());
            }
            checkDiffId(Digest.fromMessageDigest(md), layer, what);
        }

        putDirectory(tar, dir + "/");
        TarArchiveEntry e = fileEntry(dir + "/layer.tar", size);
        tar.putArchiveEntry(e);
        MessageDigest md = Digest.sha256();
        long n;
        try (InputStream in = open(blob, compression, what)) {
            n = in.transferTo(new DigestOutputStream(tar, md));
        } catch (CorruptInputException e2) {
            throw new BadInputException(what + ": " + e2.getMessage());
        }
        if (n != size) {
            throw new BadInputException(what + ": changed while it was written (" + n + " bytes, expected " + size + ")");
        }
        checkDiffId(Digest.fromMessageDigest(md), layer, what);
        tar.closeArchiveEntry();
    }

    private static InputStream open(Path blob, Compression compression, String what)
            throws IOException, BadInputException {
        InputStream raw = new BufferedInputStream(Files.newInputStream(blob), BUFFER);
        try {
            return compression.decompress(raw, what);
        } catch (IOException | BadInputException | RuntimeException e) {
            raw.close();
            throw e;
        }
    }

    private static void checkDiffId(Digest actual, ResolvedImage.Layer layer, String what) throws BadInputException {
        if (!actual.equals(layer.diffId())) {
            throw new BadInputException(what + ": digest mismatch: uncompressed content is " + actual
                    + ", the config's diff_id is " + layer.diffId());
        }
    }

    private static void putFile(TarArchiveOutputStream tar, String name, byte[] content) throws IOException {
        tar.putArchiveEntry(fileEntry(name, content.length));
        tar.write(content);
        tar.closeArchiveEntry();
    }

    private static void putDirectory(TarArchiveOutputStream tar, String name) throws IOException {
        TarArchiveEntry e = new TarArchiveEntry(name, TarArchiveEntry.LF_DIR);
        normalize(e, 0755);
        tar.putArchiveEntry(e);
        tar.closeArchiveEntry();
    }

    private static TarArchiveEntry fileEntry(String name, long size) {
        TarArchiveEntry e = new TarArchiveEntry(name, TarArchiveEntry.LF_NORMAL);
        normalize(e, 0644);
        e.setSize(size);
        return e;
    }

    private static void normalize(TarArchiveEntry e, int mode) {
        e.setMode(mode);
        e.setIds(0, 0);
        e.setUserName("");
        e.setGroupName("");
        e.setModTime(0L);
    }
}
