package org.vbake.bake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.vbake.image.Digest;
import org.vbake.image.ResolvedImage;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;

/**
 * Bakes already done, found again by what went into them. The key is a digest of the content of
 * every input: the manifest's bytes, each image's manifest, config and layer digests with its
 * names and RepoDigest, the writer and the engine version it writes for, SOURCE_DATE_EPOCH,
 * driver and output format. So an unchanged manifest is not baked twice: when {@code -o} already
 * holds the output for the key, nothing is written at all; when the cache holds it, it is copied
 * out (each file checked against its digest). Keys depend on content only, not on paths or the
 * host, so the same cache can be shared between build hosts.
 */
public final class BakeCache {

    /** Changes whenever what a bake writes for the same inputs changes. */
    static final int FORMAT = 1;
    private static final int KEEP = 8;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;

    public BakeCache(Path cacheRoot) {
        this.dir = cacheRoot.resolve("results");
    }

    /** One image as the key sees it. */
    public record Input(ResolvedImage image, List<String> tags, Digest repoDigest) {
    }

    /**
     * The content key of a bake.
     *
     * @param writer who writes the tree and for which engine version ({@code auto: docker 26.1
     *               overlay2}, {@code guest: docker trixie overlay2})
     */
    public static String key(byte[] manifestBytes, BakeManifest manifest, List<Input> images, String writer,
            long epoch) {
        ObjectNode k = JSON.createObjectNode();
        k.put("format", FORMAT);
        k.put("manifest", Digest.of(manifestBytes).toString());
        k.put("arch", manifest.arch().id());
        k.put("runtime", manifest.runtime().id());
        k.put("driver", manifest.driverOrDefault());
        k.put("suite", manifest.suite());
        if (manifest.size() != null) {
            k.put("size", manifest.size());
        }
        k.put("output", manifest.output().id());
        k.put("writer", writer);
        k.put("epoch", epoch);
        ArrayNode list = k.putArray("images");
        for (Input in : images) {
            ObjectNode i = list.addObject();
            ResolvedImage img = in.image();
            i.put("source", img.source());
            i.put("manifest", img.manifestDigest() != null ? img.manifestDigest().toString() : null);
            i.put("config", img.configDigest().toString());
            ArrayNode layers = i.putArray("layers");
            for (ResolvedImage.Layer l : img.layers()) {
                layers.add(l.mediaType() + " " + l.digest() + " " + l.diffId());
            }
            ArrayNode tags = i.putArray("tags");
            in.tags().forEach(tags::add);
            i.put("repoDigest", in.repoDigest() != null ? in.repoDigest().toString() : null);
        }
        try {
            return Digest.of(JSON.writeValueAsBytes(k)).hex();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * Whether {@code out} holds a bake's output for {@code key}, every file as the marker lists it
     * (size and digest).
     */
    public static boolean upToDate(Path out, String key) {
        Path marker = out.resolve(BakeOutput.MARKER);
        try {
            if (!Files.isRegularFile(marker, LinkOption.NOFOLLOW_LINKS)) {
                return false;
            }
            JsonNode m = JSON.readTree(Files.readAllBytes(marker));
            if (!key.equals(m.path("key").asText(null))) {
                return false;
            }
            return intact(out, m);
        } catch (IOException e) {
            return false;
        }
    }

    /** Every file the marker lists is there with its size and digest, and nothing else is. */
    private static boolean intact(Path dir, JsonNode marker) throws IOException {
        Map<String, Long> present = BakeOutput.contents(dir);
        int files = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = marker.path("files").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> f = it.next();
            files++;
            Path p = dir.resolve(f.getKey());
            Long size = present.get(f.getKey());
            if (size == null || size != f.getValue().path("size").asLong(-1)) {
                return false;
            }
            String want = f.getValue().path("sha256").asText(null);
            if (want != null) {
                try (InputStream in = Files.newInputStream(p)) {
                    if (!Digest.of(in).toString().equals(want)) {
                        return false;
                    }
                }
            }
        }
        long regular = present.entrySet().stream()
                .filter(e -> e.getValue() >= 0 && !e.getKey().equals(BakeOutput.MARKER)).count();
        return files > 0 && regular == files;
    }

    /**
     * Copies the cached output for {@code key} into {@code work} (an empty directory); false when
     * there is none or it does not match its marker (then it is dropped).
     */
    public boolean restore(String key, Path work) throws IOException {
        Path entry = dir.resolve(key);
        Path marker = entry.resolve(BakeOutput.MARKER);
        if (!Files.isRegularFile(marker)) {
            return false;
        }
        JsonNode m;
        try {
            m = JSON.readTree(Files.readAllBytes(marker));
        } catch (IOException e) {
            Trees.deleteTree(entry);
            return false;
        }
        if (!key.equals(m.path("key").asText(null)) || !intact(entry, m)) {
            Trees.deleteTree(entry);
            return false;
        }
        copyTree(entry, work);
        Files.setLastModifiedTime(marker, FileTime.fromMillis(System.currentTimeMillis()));
        return true;
    }

    /** Keeps a copy of a finished bake's {@code work} (marker included) under its key. */
    public void store(String key, Path work) throws IOException {
        Files.createDirectories(dir);
        Path entry = dir.resolve(key);
        if (Files.exists(entry)) {
            Trees.deleteTree(entry);
        }
        Path tmp = Scratch.newDirectory(dir, ".store-");
        try {
            copyTree(work, tmp);
            Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            if (Files.exists(tmp)) {
                Trees.deleteTree(tmp);
            }
        }
        evict();
    }

    /** The oldest results beyond {@link #KEEP} go. */
    private void evict() throws IOException {
        List<Path> entries = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            s.filter(p -> p.getFileName().toString().matches("[0-9a-f]{64}")).forEach(entries::add);
        }
        if (entries.size() <= KEEP) {
            return;
        }
        entries.sort(Comparator.comparing(p -> {
            try {
                return Files.getLastModifiedTime(p.resolve(BakeOutput.MARKER)).toMillis();
            } catch (IOException e) {
                return 0L;
            }
        }));
        for (Path p : entries.subList(0, entries.size() - KEEP)) {
            Trees.deleteTree(p);
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        Files.walkFileTree(from, new SimpleFileVisitor<>() {
            @Override
            public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) throws IOException {
                Files.createDirectories(to.resolve(from.relativize(d).toString()));
                return FileVisitResult.CONTINUE;
            }

            @Override
            public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
                Files.copy(f, to.resolve(from.relativize(f).toString()), StandardCopyOption.REPLACE_EXISTING);
                return FileVisitResult.CONTINUE;
            }
        });
    }
}
