package org.vbake.image;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;

/**
 * Reads one image out of a {@code docker save} (or {@code podman save}) archive. There is no
 * manifest, so each layer is checked against the config's diff_id and stored in the cache under the
 * digest of its bytes as found.
 */
final class DockerArchiveReader {

    /** Paths that name their content: docker 25+ {@code blobs/sha256/<hex>}, older {@code <hex>.json}. */
    private static final Pattern NAMED_BY_DIGEST =
            Pattern.compile("(?:blobs/sha256/([0-9a-f]{64}))|([0-9a-f]{64})\\.json");

    private final ImageFiles files;
    private final String source;
    private final BlobCache cache;

    private DockerArchiveReader(ImageFiles files, BlobCache cache) {
        this.files = files;
        this.source = files.source();
        this.cache = cache;
    }

    static ResolvedImage read(ImageFiles files, String selectName, Arch arch, boolean allowArchMismatch,
            BlobCache cache, EventListener events) throws IOException, BadInputException {
        return new DockerArchiveReader(files, cache).read(selectName, arch, allowArchMismatch, events);
    }

    private record StoredLayer(Digest digest, long size, Compression compression) {
    }

    private ResolvedImage read(String selectName, Arch arch, boolean allowArchMismatch, EventListener events)
            throws IOException, BadInputException {
        JsonNode manifest = ImageJson.parse(files.readSmall("manifest.json", "manifest.json", ImageJson.MAX_JSON_BYTES),
                source + ": manifest.json");
        if (!manifest.isArray() || manifest.isEmpty()) {
            throw new BadInputException(source + ": manifest.json is not a list of images");
        }
        JsonNode entry = chooseImage(manifest, selectName);

        String configName = ImageJson.text(entry, "Config");
        if (configName == null) {
            throw new BadInputException(source + ": manifest.json entry has no Config");
        }
        String configPath = files.canonical(configName);
        if (configPath == null) {
            throw new BadInputException(source + ": config " + configName + " is missing");
        }
        byte[] configBytes = files.readSmall(configPath, "config " + configName, ImageJson.MAX_JSON_BYTES);
        Digest configDigest = Digest.of(configBytes);
        Matcher named = NAMED_BY_DIGEST.matcher(TarImageFiles.normalize(configName));
        if (named.matches()) {
            String hex = named.group(1) != null ? named.group(1) : named.group(2);
            if (!hex.equals(configDigest.hex())) {
                throw new BadInputException(source + ": config " + configName + ": digest mismatch: content is "
                        + configDigest);
            }
        }
        String configWhat = source + ": config " + configName;
        JsonNode config = ImageJson.object(configBytes, configWhat);
        Platforms.checkConfig(config, arch, allowArchMismatch, source);
        if (!Platforms.matches(config, arch)) {
            events.on(new Event.Progress("warning: " + source + " is a " + Platforms.platformOf(config)
                    + " image, importing it for linux/" + arch.ociArch() + " as asked"));
        }
        List<Digest> diffIds = OciImageReader.diffIds(config, configWhat);

        JsonNode layerNames = entry.get("Layers");
        if (layerNames == null || !layerNames.isArray()) {
            throw new BadInputException(source + ": manifest.json entry has no Layers list");
        }
        if (layerNames.size() != diffIds.size()) {
            throw new BadInputException(source + ": manifest.json lists " + layerNames.size()
                    + " layers but the config has " + diffIds.size() + " diff_ids");
        }
        List<String> layerPaths = new ArrayList<>();
        Map<String, Digest> expectedDiffId = new LinkedHashMap<>();
        for (int i = 0; i < layerNames.size(); i++) {
            String name = layerNames.get(i).isTextual() ? layerNames.get(i).asText() : null;
            String path = name == null ? null : files.canonical(name);
            if (path == null) {
                throw new BadInputException(source + ": layer " + (name == null ? layerNames.get(i) : name) + " is missing");
            }
            Digest previous = expectedDiffId.putIfAbsent(path, diffIds.get(i));
            if (previous != null && !previous.equals(diffIds.get(i))) {
                throw new BadInputException(source + ": layer " + name + " is listed twice with different diff_ids");
            }
            layerPaths.add(path);
        }

        cache.put(configBytes, configWhat);
        Map<String, StoredLayer> stored = new HashMap<>();
        files.stream(expectedDiffId.keySet(), (path, in) ->
                stored.put(path, storeLayer(path, in, expectedDiffId.get(path))));

        List<ResolvedImage.Layer> layers = new ArrayList<>();
        for (int i = 0; i < layerPaths.size(); i++) {
            StoredLayer s = stored.get(layerPaths.get(i));
            layers.add(new ResolvedImage.Layer(s.digest(), s.compression().layerMediaType(), s.size(), diffIds.get(i),
                    cache.path(s.digest())));
        }
        return new ResolvedImage(source, null, repoTags(entry), null, null, null, configDigest, configBytes,
                ImageJson.text(config, "os"), ImageJson.text(config, "architecture"), ImageJson.text(config, "variant"),
                layers);
    }

    private JsonNode chooseImage(JsonNode manifest, String selectName) throws BadInputException {
        List<String> available = new ArrayList<>();
        for (JsonNode e : manifest) {
            List<String> tags = rawTags(e);
            available.add(tags.isEmpty() ? "untagged " + ImageJson.text(e, "Config") : String.join(" ", tags));
        }
        if (selectName != null && selectName.matches("sha256:[0-9a-f]{64}")) {
            // By image ID: the config's digest, which docker and podman name their configs by.
            for (JsonNode e : manifest) {
                Matcher m = NAMED_BY_DIGEST.matcher(TarImageFiles.normalize(String.valueOf(ImageJson.text(e, "Config"))));
                if (m.matches() && selectName.substring(7).equals(m.group(1) != null ? m.group(1) : m.group(2))) {
                    return e;
                }
            }
            throw new BadInputException(source + " has no image with ID " + selectName + " (it has: "
                    + String.join(", ", available) + ")");
        }
        if (selectName != null) {
            for (JsonNode e : manifest) {
                for (String tag : rawTags(e)) {
                    if (ImageNames.sameImage(tag, selectName)) {
                        return e;
                    }
                }
            }
            if (manifest.size() == 1 && rawTags(manifest.get(0)).isEmpty()) {
                return manifest.get(0);
            }
            throw new BadInputException(source + " has no image named '" + selectName + "' (it has: "
                    + String.join(", ", available) + ")");
        }
        if (manifest.size() > 1) {
            throw new BadInputException(source + " holds " + manifest.size() + " images (" + String.join(", ", available)
                    + "); name the one to use");
        }
        if (!manifest.get(0).isObject()) {
            throw new BadInputException(source + ": manifest.json entry is not an object");
        }
        return manifest.get(0);
    }

    private static List<String> rawTags(JsonNode entry) {
        List<String> tags = new ArrayList<>();
        for (JsonNode t : entry.path("RepoTags")) {
            if (t.isTextual() && !t.asText().isBlank()) {
                tags.add(t.asText());
            }
        }
        return tags;
    }

    /** RepoTags as full references: {@code alpine:3.20} → {@code docker.io/library/alpine:3.20}. */
    private static List<String> repoTags(JsonNode entry) {
        Set<String> tags = new LinkedHashSet<>();
        for (String t : rawTags(entry)) {
            tags.add(ImageNames.normalize(t));
        }
        return List.copyOf(tags);
    }

    /**
     * The digest of a decompressed layer, refused as soon as it grows past the layer limit (the
     * free space of the cache's filesystem less a reserve, or {@code VBAKE_LAYER_LIMIT}): a small
     * gzip that expands to gigabytes costs only the limit, not the whole expansion.
     */
    private Digest boundedDigest(InputStream tar, String what) throws IOException, BadInputException {
        if (limit == null) {
            limit = LayerScan.rules(cache.directory(), environment, false);
        }
        MessageDigest md = Digest.sha256();
        byte[] buf = new byte[1 << 16];
        long total = 0;
        for (int n; (n = tar.read(buf)) > 0; ) {
            total += n;
            if (total > limit.maxBytes()) {
                throw LayerScan.tooLarge(what, limit);
            }
            md.update(buf, 0, n);
        }
        return Digest.fromMessageDigest(md);
    }

    /** The layer limit, read once per archive. */
    private LayerScan.Rules limit;

    /** Where {@code VBAKE_LAYER_LIMIT} is read; tests set a small limit here. */
    static java.util.Map<String, String> environment = System.getenv();

    /**
     * Stores one layer as found and checks its uncompressed content against the config's diff_id.
     * A plain tar layer's digest is its diff_id, so the cache checks it on the way in; a compressed
     * one is hashed into a temporary file first, then decompressed once to check it.
     */
    private StoredLayer storeLayer(String path, InputStream content, Digest diffId)
            throws IOException, BadInputException {
        String what = source + ": layer " + path;
        InputStream in = new BufferedInputStream(content, 1 << 16);
        Compression compression = Compression.sniff(in);
        if (compression == Compression.NONE) {
            long size = files.size(path);
            cache.put(diffId, size, in, what);
            return new StoredLayer(diffId, size, compression);
        }
        Path tmp = cache.newTempFile();
        try {
            MessageDigest md = Digest.sha256();
            long size;
            try (OutputStream out = Files.newOutputStream(tmp)) {
                size = new DigestInputStream(in, md).transferTo(out);
            }
            Digest digest = Digest.fromMessageDigest(md);
            Digest actualDiffId;
            try (InputStream raw = Files.newInputStream(tmp);
                    InputStream tar = compression.decompress(new BufferedInputStream(raw, 1 << 16), what)) {
                actualDiffId = boundedDigest(tar, what);
            } catch (CorruptInputException e) {
                throw new BadInputException(what + ": " + e.getMessage());
            }
            if (!actualDiffId.equals(diffId)) {
                throw new BadInputException(what + ": digest mismatch: the config's diff_id is " + diffId
                        + ", the uncompressed layer is " + actualDiffId);
            }
            try (InputStream again = Files.newInputStream(tmp)) {
                cache.put(digest, size, again, what);
            }
            return new StoredLayer(digest, size, compression);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
