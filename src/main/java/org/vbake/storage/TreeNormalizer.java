package org.vbake.storage;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Comparator;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.BiFunction;
import org.vbake.api.BadInputException;
import org.vbake.storage.TreeNormalizerTar.Entry;

/**
 * Makes an exported storage tree reproducible: the ids and timestamps a container engine picks at
 * random or from the clock are replaced by values derived from content, so baking the same images
 * twice gives byte-identical tars. Input is a plain tar as the exporter writes it (sorted
 * depth-first, "./" names, PAX xattrs); output is the same kind of tar, re-sorted after renaming.
 * Every other byte of every entry (contents, modes, owners, mtimes, xattrs, devices, hardlinks)
 * is kept.
 *
 * <p>What is rewritten, per engine, and why the engine still accepts it:
 *
 * <ul>
 *   <li><b>docker cache-ids</b> (overlay2 and vfs): each layer's directory ({@code overlay2/ID},
 *       {@code vfs/dir/ID}) is named by a random 64-hex id that docker only ever reads back from
 *       {@code image/DRIVER/layerdb/sha256/CHAIN/cache-id}; it never derives it from content and
 *       never checks its form. The id becomes {@code hex(sha256("vbake-cache-id:" + chainID))},
 *       with chainID as {@code sha256:HEX}; the directory (with everything below it, hardlink
 *       targets included) and the cache-id file are changed together.
 *   <li><b>overlay short links</b> (docker overlay2 and podman overlay): {@code DRIVER/l/NAME} are
 *       symlinks to {@code ../ID/diff}, named by 26 random base32 characters that also stand in
 *       each layer's {@code link} file and in the {@code lower} files of the layers above
 *       ({@code l/A:l/B}). The drivers only use them to keep mount options short, so they need to
 *       be unique and consistent, nothing more. The name becomes the first 26 characters of
 *       {@code base32(sha256("vbake-link:" + layer directory name))}: symlink name, symlink
 *       target, link and lower files all change together.
 *   <li><b>docker {@code image/DRIVER/imagedb/metadata/sha256/ID/lastUpdated}</b>: the time the
 *       image was last tagged, shown only as {@code Metadata.LastTagTime}; set to the fixed time.
 *   <li><b>podman {@code DRIVER-layers/layers.json}</b>: each layer's {@code "created"} is the
 *       time it was unpacked; set to the fixed time. Layer ids are left: containers/image names a
 *       layer {@code hex(diffID)}, or {@code hex(sha256(parentID + "+" + hex(diffID)))} above a
 *       parent, so they are content already (a layer that is not is reported in
 *       {@link Result#notes()}).
 *   <li><b>podman {@code DRIVER-images/images.json}</b>: an image's {@code "created"} is kept when
 *       it is the creation time in the image's config (what containers/image records when the
 *       config has one, and what {@code podman images} shows), otherwise it was the clock and is
 *       set to the fixed time. Image ids are config digests; names, digests and metadata
 *       follow from what was loaded.
 *   <li><b>podman lock files</b> ({@code storage.lock}, {@code userns.lock},
 *       {@code DRIVER-layers/*.lock}, {@code DRIVER-images/*.lock}, {@code
 *       DRIVER-containers/*.lock}): containers/storage writes a fresh random "last writer" token
 *       into them on every change, only so that other processes notice the change. They are
 *       emptied, which is what a store that was never written looks like; every reader starts
 *       by loading the whole store anyway.
 *   <li><b>tar-split files</b> (docker {@code layerdb/sha256/CHAIN/tar-split.json.gz}, podman
 *       {@code DRIVER-layers/ID.tar-split.gz}): content already, but how the raw bytes after the
 *       last file are cut into segments depends on the engine's reader stack, tar-split 0.11.2
 *       adds an empty last segment, Go versions escape some characters differently and the two
 *       engines gzip differently. They are re-encoded in {@link TarSplit}'s canonical form, which
 *       describes the same layer bytes, so an engine's {@code save} still gives the original diff
 *       ID, and a tree the host writer made compares equal to the engine's.
 * </ul>
 *
 * JSON files are changed by splicing the new value over the old string, so the engine's compact
 * encoding, field order and escaping stay as the engine wrote them.
 *
 * <p>The output is encoded the way the exporter (Go's archive/tar) encodes it, so an entry that
 * needs no change keeps its bytes, and a GNU tar of the same tree (PAX, without atime/ctime
 * records, in any order) normalizes to the same bytes as the exporter's tar. Entries are sorted
 * again after renaming; should a hardlink then come before the path it links to, the two swap
 * roles so the first path carries the content, as the exporter would have written it. mtimes are
 * the exporter's business (it clamps them) and are kept.
 *
 * <p>What is left as it is (and reported in {@link Result#notes()} when found): containers
 * (docker {@code containers/} and {@code layerdb/mounts/}, podman {@code DRIVER-containers/}),
 * whose ids are random and referenced from configs this class does not rewrite; layer
 * directories that no layerdb cache-id names (an interrupted pull).
 */
public final class TreeNormalizer {

    /**
     * What a normalization changed.
     *
     * @param layersRenamed  layer directories given a derived name (docker cache-ids)
     * @param linksRenamed   overlay short links given a derived name
     * @param filesRewritten files whose content changed
     * @param notes          what was left as it was, and why, one line each
     */
    public record Result(int layersRenamed, int linksRenamed, int filesRewritten, List<String> notes) {
        public Result {
            notes = List.copyOf(notes);
        }
    }

    /** The time written where the engine wrote the clock, unless the caller gives one. */
    public static final Instant DEFAULT_TIME = Instant.EPOCH;

    private static final int LINK_LENGTH = 26;
    private static final int MAX_SMALL_FILE = 1 << 20;
    private static final int MAX_JSON_FILE = 256 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private TreeNormalizer() {
    }

    /** Normalizes with {@link #DEFAULT_TIME} for the engine's timestamps. */
    public static Result normalize(Path inTar, OutputStream outTar, StoreKind kind) throws IOException, BadInputException {
        return normalize(inTar, outTar, kind, DEFAULT_TIME);
    }

    /**
     * Writes the normalized tree of {@code inTar} to {@code outTar} (flushed, not closed). The
     * input is checked before the first byte is written, but a file cut short is only found while
     * copying: write through {@link StorageFile} so a failure leaves nothing behind.
     *
     * @param inTar     a plain (uncompressed) storage tar; read twice, so a file, not a stream
     * @param kind      what wrote it; {@link #detect} tells from the paths
     * @param fixedTime what timestamps from the engine's clock become (SOURCE_DATE_EPOCH)
     * @throws BadInputException when the tar is not a readable, consistent storage tree of that kind
     */
    public static Result normalize(Path inTar, OutputStream outTar, StoreKind kind, Instant fixedTime)
            throws IOException, BadInputException {
        rfc3339(fixedTime); // refuses times Go could not write either
        checkPlain(inTar);
        try (FileChannel channel = FileChannel.open(inTar, StandardOpenOption.READ)) {
            Run run = new Run(inTar, channel, kind, fixedTime);
            run.readHeaders();
            run.plan();
            return run.write(outTar);
        }
    }

    /** Tells the engine and driver from the paths in the tree. */
    public static StoreKind detect(Path tar) throws IOException, BadInputException {
        checkPlain(tar);
        Set<StoreKind> found = EnumSet.noneOf(StoreKind.class);
        try (FileChannel channel = FileChannel.open(tar, StandardOpenOption.READ)) {
            TreeNormalizerTar.Reader reader = new TreeNormalizerTar.Reader(channel, tar.toString());
            for (Entry e; (e = reader.next()) != null; ) {
                StoreKind k = StoreKind.evidence(e.path);
                if (k != null) {
                    found.add(k);
                }
            }
        }
        if (found.size() == 1) {
            return found.iterator().next();
        }
        if (found.isEmpty()) {
            throw new BadInputException(tar + ": not a docker or podman storage tree (no image/DRIVER/ and no "
                    + "DRIVER-layers/ or DRIVER-images/)");
        }
        throw new BadInputException(tar + ": holds the stores of more than one engine or driver " + found,
                "name the kind to normalize");
    }

    private static void checkPlain(Path tar) throws IOException, BadInputException {
        byte[] magic = new byte[4];
        int n;
        try (InputStream in = Files.newInputStream(tar)) {
            n = in.readNBytes(magic, 0, 4);
        }
        if (n >= 2 && (magic[0] & 0xff) == 0x1f && (magic[1] & 0xff) == 0x8b
                || n == 4 && (magic[0] & 0xff) == 0x28 && (magic[1] & 0xff) == 0xb5 && (magic[2] & 0xff) == 0x2f
                        && (magic[3] & 0xff) == 0xfd) {
            throw new BadInputException(tar + ": is compressed; the normalizer reads a plain tar");
        }
    }

    /** The cache-id docker gets for a layer: {@code hex(sha256("vbake-cache-id:" + chainId))}. */
    public static String cacheIdFor(String chainId) {
        return HexFormat.of().formatHex(sha256("vbake-cache-id:" + chainId));
    }

    /** The overlay short link of a layer directory: 26 characters of base32, as the drivers make them. */
    public static String linkNameFor(String layerDir) {
        return base32(sha256("vbake-link:" + layerDir)).substring(0, LINK_LENGTH);
    }

    /** Go's {@code time.RFC3339Nano} in UTC, as the engines write timestamps. */
    public static String rfc3339(Instant t) {
        OffsetDateTime u = t.atOffset(ZoneOffset.UTC);
        if (u.getYear() < 0 || u.getYear() > 9999) {
            throw new IllegalArgumentException("time out of range: " + t);
        }
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%04d-%02d-%02dT%02d:%02d:%02d",
                u.getYear(), u.getMonthValue(), u.getDayOfMonth(), u.getHour(), u.getMinute(), u.getSecond()));
        if (u.getNano() != 0) {
            String frac = String.format(Locale.ROOT, "%09d", u.getNano());
            sb.append('.').append(frac.replaceAll("0+$", ""));
        }
        return sb.append('Z').toString();
    }

    static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** RFC 4648 base32 without padding. */
    static String base32(byte[] data) {
        final String alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        StringBuilder sb = new StringBuilder();
        int buffer = 0;
        int bits = 0;
        for (byte b : data) {
            buffer = (buffer << 8) | (b & 0xff);
            bits += 8;
            while (bits >= 5) {
                sb.append(alphabet.charAt((buffer >> (bits - 5)) & 31));
                bits -= 5;
            }
        }
        if (bits > 0) {
            sb.append(alphabet.charAt((buffer << (5 - bits)) & 31));
        }
        return sb.toString();
    }

    /**
     * Depth-first order with siblings sorted bytewise, as the exporter walks: a path sorts by its
     * components, so "a/x" comes before "a-b" even though '-' is less than '/'.
     */
    static final Comparator<String> TREE_ORDER = (a, b) -> {
        int n = Math.min(a.length(), b.length());
        for (int i = 0; i < n; i++) {
            char x = a.charAt(i);
            char y = b.charAt(i);
            if (x != y) {
                if (x == '/') {
                    return -1;
                }
                if (y == '/') {
                    return 1;
                }
                return Character.compare(x, y);
            }
        }
        return Integer.compare(a.length(), b.length());
    };

    /**
     * Replaces the string value of {@code key} in each object of a top-level JSON array, in place:
     * {@code replacement} gets the element's index and old value and returns the new value, or
     * null to keep it. Everything else keeps its bytes.
     */
    static byte[] replaceMemberStrings(byte[] json, String key, BiFunction<Integer, String, String> replacement)
            throws IOException {
        record Splice(int start, int end, String value) {
        }
        List<Splice> splices = new ArrayList<>();
        try (JsonParser p = new JsonFactory().createParser(json)) {
            if (p.nextToken() != JsonToken.START_ARRAY) {
                throw new IOException("not a JSON array");
            }
            int index = -1;
            for (JsonToken t = p.nextToken(); t != JsonToken.END_ARRAY; t = p.nextToken()) {
                if (t == null) {
                    throw new IOException("JSON ends early");
                }
                index++;
                if (t != JsonToken.START_OBJECT) {
                    p.skipChildren();
                    continue;
                }
                for (JsonToken f = p.nextToken(); f != JsonToken.END_OBJECT; f = p.nextToken()) {
                    if (f == null) {
                        throw new IOException("JSON ends early");
                    }
                    String name = p.currentName();
                    JsonToken v = p.nextToken();
                    if (v == JsonToken.VALUE_STRING && key.equals(name)) {
                        int start = (int) p.currentTokenLocation().getByteOffset();
                        String old = p.getText();
                        int end = stringEnd(json, start);
                        String now = replacement.apply(index, old);
                        if (now != null && !now.equals(old)) {
                            splices.add(new Splice(start, end, now));
                        }
                    } else {
                        p.skipChildren();
                    }
                }
            }
        }
        if (splices.isEmpty()) {
            return json;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(json.length);
        int at = 0;
        for (Splice s : splices) {
            out.write(json, at, s.start() - at);
            out.write(JSON.writeValueAsBytes(s.value()));
            at = s.end();
        }
        out.write(json, at, json.length - at);
        return out.toByteArray();
    }

    /** The offset just past the JSON string that opens at {@code quote}. */
    private static int stringEnd(byte[] json, int quote) throws IOException {
        if (quote < 0 || quote >= json.length || json[quote] != '"') {
            throw new IOException("cannot locate a JSON string at byte " + quote);
        }
        for (int i = quote + 1; i < json.length; i++) {
            if (json[i] == '\\') {
                i++;
            } else if (json[i] == '"') {
                return i + 1;
            }
        }
        throw new IOException("unterminated JSON string at byte " + quote);
    }

    /** One normalization: the headers in memory, the plan, then the output. */
    private static final class Run {
        private final Path file;
        private final FileChannel channel;
        private final StoreKind kind;
        private final String fixedTime;
        private final List<Entry> entries = new ArrayList<>();
        private final Map<String, Entry> byPath = new HashMap<>();
        /** Renames of the first component below a directory: parent path → (old name → new name). */
        private final Map<String, Map<String, String>> renames = new LinkedHashMap<>();
        /** Sorted, so that the report is as reproducible as the tree. */
        private final Set<String> notes = new TreeSet<>();
        private TreeNormalizerTar.Reader reader;
        private int layersRenamed;
        private int linksRenamed;

        Run(Path file, FileChannel channel, StoreKind kind, Instant fixedTime) {
            this.file = file;
            this.channel = channel;
            this.kind = kind;
            this.fixedTime = rfc3339(fixedTime);
        }

        void readHeaders() throws IOException, BadInputException {
            reader = new TreeNormalizerTar.Reader(channel, file.toString());
            Set<StoreKind> found = EnumSet.noneOf(StoreKind.class);
            for (Entry e; (e = reader.next()) != null; ) {
                if (byPath.put(e.path, e) != null) {
                    throw new BadInputException(file + ": " + e.tarName() + " appears twice");
                }
                entries.add(e);
                StoreKind k = StoreKind.evidence(e.path);
                if (k != null) {
                    found.add(k);
                }
            }
            if (!found.isEmpty() && !found.contains(kind)) {
                throw new BadInputException(file + ": looks like " + found + ", not " + kind);
            }
        }

        void plan() throws IOException, BadInputException {
            String layerParent = kind.overlay() ? kind.driver() : kind.driver() + "/dir";
            Map<String, String> layerRenames = new TreeMap<>();
            if (kind.docker()) {
                planDockerLayers(layerParent, layerRenames);
                planLastUpdated();
            } else {
                planPodmanJson();
                planLocks();
                checkPodmanContainers();
            }
            renames.put(layerParent, layerRenames);
            if (kind.overlay()) {
                planLinks(kind.driver(), layerRenames);
            }
            planTarSplits();
        }

        /** Every layer's tar-split file in its canonical form ({@link TarSplit}). */
        private void planTarSplits() throws IOException, BadInputException {
            for (Entry e : entries) {
                if (!e.isRegular()) {
                    continue;
                }
                boolean tarSplit;
                if (kind.docker()) {
                    String[] c = below(e.path, "image/" + kind.driver() + "/layerdb/sha256/");
                    tarSplit = c != null && c.length == 2 && c[1].equals("tar-split.json.gz");
                } else {
                    String[] c = below(e.path, kind.driver() + "-layers/");
                    tarSplit = c != null && c.length == 1 && c[0].endsWith(".tar-split.gz");
                }
                if (tarSplit) {
                    e.newContent = TarSplit.canonical(read(e, MAX_JSON_FILE), file + ": " + e.tarName());
                }
            }
        }

        /** docker: cache-ids from chain ids; the layer directories follow. */
        private void planDockerLayers(String layerParent, Map<String, String> layerRenames)
                throws IOException, BadInputException {
            String layerdb = "image/" + kind.driver() + "/layerdb/";
            Map<String, String> chainOf = new HashMap<>();
            for (Entry e : entries) {
                String[] c = below(e.path, layerdb);
                if (c == null || c.length != 3 || !c[2].equals("cache-id") || !e.isRegular()
                        || c[0].equals("mounts") || c[0].equals("tmp")) {
                    continue;
                }
                String chainId = c[0] + ":" + c[1];
                byte[] content = small(e);
                String old = token(content);
                if (!old.matches("[A-Za-z0-9][A-Za-z0-9_.-]*") || old.equals("l")) {
                    throw new BadInputException(file + ": " + e.tarName() + " holds '" + old + "', not a layer id");
                }
                String previous = chainOf.put(old, chainId);
                if (previous != null) {
                    throw new BadInputException(file + ": layers " + previous + " and " + chainId
                            + " share the cache-id " + old);
                }
                String now = cacheIdFor(chainId);
                layerRenames.put(old, now);
                e.newContent = withToken(content, now);
            }
            // Container layers (named in layerdb/mounts) keep their random ids, like the containers.
            Set<String> containerLayers = new HashSet<>();
            for (Entry e : entries) {
                String[] c = below(e.path, layerdb + "mounts/");
                if (c != null && c.length == 2 && (c[1].equals("mount-id") || c[1].equals("init-id")) && e.isRegular()) {
                    containerLayers.add(token(small(e)));
                }
            }
            if (!containerLayers.isEmpty()) {
                notes.add("docker: " + containerLayers.size() + " container layer(s) keep their random ids "
                        + "(export without containers for a reproducible tree)");
            }
            Set<String> taken = new HashSet<>();
            for (Entry e : entries) {
                String[] c = below(e.path, layerParent + "/");
                if (c == null || c.length != 1 || !e.isDir() || c[0].equals("l")) {
                    continue;
                }
                String dir = c[0];
                taken.add(dir);
                String base = dir.endsWith("-init") ? dir.substring(0, dir.length() - 5) : dir;
                if (!layerRenames.containsKey(dir) && !containerLayers.contains(base)) {
                    notes.add("docker: layer directory " + layerParent + "/" + dir
                            + " is named by no layerdb cache-id; left as it is");
                }
            }
            for (Map.Entry<String, String> r : layerRenames.entrySet()) {
                if (taken.contains(r.getValue()) && !layerRenames.containsKey(r.getValue())) {
                    throw new BadInputException(file + ": derived cache-id " + r.getValue() + " is already taken");
                }
                if (taken.contains(r.getKey())) {
                    layersRenamed++;
                }
            }
        }

        private void planLastUpdated() throws IOException, BadInputException {
            String metadata = "image/" + kind.driver() + "/imagedb/metadata/";
            for (Entry e : entries) {
                String[] c = below(e.path, metadata);
                if (c != null && c.length == 3 && c[2].equals("lastUpdated") && e.isRegular()) {
                    small(e);
                    e.newContent = fixedTime.getBytes(StandardCharsets.US_ASCII);
                }
            }
        }

        /** podman: the clock in layers.json and images.json. */
        private void planPodmanJson() throws IOException, BadInputException {
            Entry layers = byPath.get(kind.driver() + "-layers/layers.json");
            if (layers != null && layers.isRegular()) {
                byte[] json = read(layers, MAX_JSON_FILE);
                checkLayerIds(layers, json);
                layers.newContent = splice(layers, json, (i, old) -> fixedTime);
            }
            Entry images = byPath.get(kind.driver() + "-images/images.json");
            if (images != null && images.isRegular()) {
                byte[] json = read(images, MAX_JSON_FILE);
                JsonNode list = parse(images, json);
                List<Instant> configCreated = new ArrayList<>();
                for (JsonNode image : list) {
                    configCreated.add(configCreated(image.path("id").asText("")));
                }
                images.newContent = splice(images, json, (i, old) -> {
                    Instant fromConfig = i < configCreated.size() ? configCreated.get(i) : null;
                    return fromConfig != null && fromConfig.equals(instant(old)) ? null : fixedTime;
                });
            }
        }

        /** Reports layers whose id is not the one containers/image derives from their content. */
        private void checkLayerIds(Entry layers, byte[] json) throws BadInputException {
            for (JsonNode layer : parse(layers, json)) {
                String id = layer.path("id").asText("");
                String diff = layer.path("diff-digest").asText("");
                String parent = layer.path("parent").asText("");
                String hex = diff.substring(diff.indexOf(':') + 1);
                String expected = parent.isEmpty() ? hex : HexFormat.of().formatHex(sha256(parent + "+" + hex));
                if (diff.isEmpty() || !id.equals(expected)) {
                    notes.add("podman: layer " + id + " is not named after its content (a container's layer?); "
                            + "left as it is");
                }
            }
        }

        /** The "created" of an image's config, which containers/image copies into images.json. */
        private Instant configCreated(String id) throws IOException {
            String key = "sha256:" + id;
            String name = "=" + Base64.getEncoder().encodeToString(key.getBytes(StandardCharsets.UTF_8));
            Entry config = byPath.get(kind.driver() + "-images/" + id + "/" + name);
            if (config == null || !config.isRegular() || config.size > MAX_JSON_FILE) {
                return null;
            }
            try {
                return instant(JSON.readTree(read(config, MAX_JSON_FILE)).path("created").asText(null));
            } catch (IOException | BadInputException e) {
                return null;
            }
        }

        /** podman's "last writer" tokens. */
        private void planLocks() {
            Set<String> lockDirs = Set.of("", kind.driver() + "-layers", kind.driver() + "-images",
                    kind.driver() + "-containers");
            for (Entry e : entries) {
                int slash = e.path.lastIndexOf('/');
                String dir = slash < 0 ? "" : e.path.substring(0, slash);
                if (e.isRegular() && e.path.endsWith(".lock") && lockDirs.contains(dir) && e.size > 0) {
                    e.newContent = new byte[0];
                }
            }
        }

        private void checkPodmanContainers() throws IOException, BadInputException {
            Entry containers = byPath.get(kind.driver() + "-containers/containers.json");
            if (containers != null && containers.isRegular() && containers.size > 0) {
                JsonNode list = parse(containers, read(containers, MAX_JSON_FILE));
                if (list.size() > 0) {
                    notes.add("podman: " + list.size() + " container(s) keep their random ids and timestamps "
                            + "(remove them before the export for a reproducible tree)");
                }
            }
        }

        /** Overlay short links: l/NAME symlinks, link files and lower files, renamed together. */
        private void planLinks(String driverDir, Map<String, String> layerRenames) throws IOException, BadInputException {
            String linkDir = driverDir + "/l";
            Map<String, String> linkRenames = new TreeMap<>();
            Map<String, String> newToOld = new HashMap<>();
            for (Entry e : entries) {
                String[] c = below(e.path, driverDir + "/");
                if (c == null || c.length != 2 || !c[1].equals("link") || !e.isRegular() || c[0].equals("l")) {
                    continue;
                }
                byte[] content = small(e);
                String old = token(content);
                String now = linkNameFor(layerRenames.getOrDefault(c[0], c[0]));
                String clash = newToOld.put(now, old);
                if (linkRenames.containsKey(old) || clash != null) {
                    throw new BadInputException(file + ": link name " + old + " is used by two layers");
                }
                linkRenames.put(old, now);
                e.newContent = withToken(content, now);
            }
            for (Entry e : entries) {
                String[] c = below(e.path, linkDir + "/");
                if (c == null || c.length != 1 || !e.isSymlink()) {
                    continue;
                }
                String target = e.linkname;
                String[] t = target.split("/", -1);
                if (t.length != 3 || !t[0].equals("..") || !t[2].equals("diff") || t[1].isEmpty()) {
                    notes.add(e.tarName() + " points to " + target + ", not to a layer's diff; left as it is");
                    continue;
                }
                String dir = layerRenames.getOrDefault(t[1], t[1]);
                e.linkname = "../" + dir + "/diff";
                String now = linkNameFor(dir);
                String known = linkRenames.get(c[0]);
                if (known == null && !newToOld.containsKey(now)) {
                    linkRenames.put(c[0], now);
                    newToOld.put(now, c[0]);
                } else if (known == null || !known.equals(now)) {
                    notes.add(e.tarName() + " is not the link named in " + driverDir + "/" + t[1] + "/link; "
                            + "its name is left as it is");
                }
            }
            for (Entry e : entries) {
                String[] c = below(e.path, driverDir + "/");
                if (c == null || c.length != 2 || !c[1].equals("lower") || !e.isRegular() || c[0].equals("l")) {
                    continue;
                }
                byte[] content = small(e);
                String text = new String(content, StandardCharsets.ISO_8859_1);
                String body = text.stripTrailing();
                StringBuilder sb = new StringBuilder();
                for (String part : body.split(":", -1)) {
                    if (sb.length() > 0) {
                        sb.append(':');
                    }
                    String name = part.startsWith("l/") ? part.substring(2) : null;
                    String now = name == null ? null : linkRenames.get(name);
                    if (now == null) {
                        notes.add(e.tarName() + " names " + part + ", which is no known layer link; left as it is");
                        sb.append(part);
                    } else {
                        sb.append("l/").append(now);
                    }
                }
                sb.append(text.substring(body.length()));
                e.newContent = sb.toString().getBytes(StandardCharsets.ISO_8859_1);
            }
            for (Map.Entry<String, String> r : linkRenames.entrySet()) {
                if (!r.getKey().equals(r.getValue()) && byPath.containsKey(linkDir + "/" + r.getKey())) {
                    linksRenamed++;
                }
            }
            renames.put(linkDir, linkRenames);
        }

        Result write(OutputStream outTar) throws IOException, BadInputException {
            int rewritten = 0;
            for (Entry e : entries) {
                if (e.newContent != null) {
                    if (e.newContent.length == e.size && Arrays.equals(e.newContent, read(e, MAX_JSON_FILE))) {
                        e.newContent = null;
                    } else {
                        rewritten++;
                    }
                }
                e.path = rename(e.path);
                if (e.isHardlink()) {
                    e.linkname = rename(e.linkname);
                }
            }
            Map<String, Entry> renamed = new HashMap<>();
            for (Entry e : entries) {
                Entry other = renamed.put(e.path, e);
                if (other != null) {
                    throw new BadInputException(file + ": two entries would be named " + e.tarName());
                }
            }
            entries.sort((a, b) -> TREE_ORDER.compare(a.path, b.path));
            fixHardlinkOrder(renamed);

            OutputStream noClose = new FilterOutputStream(outTar) {
                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    out.write(b, off, len);
                }

                @Override
                public void close() throws IOException {
                    flush();
                }
            };
            try (OutputStream buffered = new BufferedOutputStream(noClose, 1 << 20)) {
                TreeNormalizerTar.Writer w = new TreeNormalizerTar.Writer(buffered);
                ByteBuffer buf = ByteBuffer.allocate(1 << 20);
                for (Entry e : entries) {
                    w.writeHeader(e);
                    if (!e.hasData()) {
                        continue;
                    }
                    if (e.newContent != null) {
                        w.write(e.newContent);
                    } else {
                        copy(e, w, buf);
                    }
                    w.pad(e.outputSize());
                }
                w.close();
            }
            return new Result(layersRenamed, linksRenamed, rewritten, new ArrayList<>(notes));
        }

        /**
         * After renaming, a hardlink may sort before the path it links to. The first path in the
         * new order must carry the content (as the exporter would write it), so the two swap:
         * content, type and xattrs move to the first path, the old one becomes the link.
         */
        private void fixHardlinkOrder(Map<String, Entry> renamed) {
            for (int i = 0; i < entries.size(); i++) {
                entries.get(i).order = i;
            }
            Map<Entry, List<Entry>> links = new LinkedHashMap<>();
            for (Entry e : entries) {
                if (e.isHardlink()) {
                    Entry target = renamed.get(e.linkname);
                    if (target != null && !target.isHardlink() && !target.isDir()) {
                        links.computeIfAbsent(target, k -> new ArrayList<>()).add(e);
                    }
                }
            }
            for (Map.Entry<Entry, List<Entry>> group : links.entrySet()) {
                Entry carrier = group.getKey();
                Entry first = carrier;
                for (Entry l : group.getValue()) {
                    if (l.order < first.order) {
                        first = l;
                    }
                }
                if (first == carrier) {
                    continue;
                }
                TreeMap<String, String> linkRecords = first.records;
                first.type = carrier.type;
                first.size = carrier.size;
                first.dataOffset = carrier.dataOffset;
                first.newContent = carrier.newContent;
                first.linkname = carrier.linkname;
                first.devMajor = carrier.devMajor;
                first.devMinor = carrier.devMinor;
                first.records = carrier.records;
                carrier.type = '1';
                carrier.size = 0;
                carrier.newContent = null;
                carrier.devMajor = 0;
                carrier.devMinor = 0;
                carrier.records = linkRecords;
                for (Entry l : group.getValue()) {
                    l.linkname = first.path;
                }
                carrier.linkname = first.path;
            }
        }

        private void copy(Entry e, TreeNormalizerTar.Writer w, ByteBuffer buf) throws IOException {
            long left = e.size;
            long pos = e.dataOffset;
            while (left > 0) {
                buf.clear();
                if (left < buf.capacity()) {
                    buf.limit((int) left);
                }
                int n = channel.read(buf, pos);
                if (n <= 0) {
                    throw new EOFException(file + ": " + e.tarName() + " is cut short");
                }
                w.write(buf.array(), 0, n);
                pos += n;
                left -= n;
            }
        }

        private String rename(String path) {
            String p = path;
            for (Map.Entry<String, Map<String, String>> r : renames.entrySet()) {
                String prefix = r.getKey() + "/";
                if (!p.startsWith(prefix)) {
                    continue;
                }
                int end = p.indexOf('/', prefix.length());
                String child = end < 0 ? p.substring(prefix.length()) : p.substring(prefix.length(), end);
                String now = r.getValue().get(child);
                if (now != null) {
                    p = prefix + now + (end < 0 ? "" : p.substring(end));
                }
            }
            return p;
        }

        private byte[] splice(Entry e, byte[] json, BiFunction<Integer, String, String> replacement)
                throws BadInputException {
            try {
                return replaceMemberStrings(json, "created", replacement);
            } catch (IOException ex) {
                throw new BadInputException(file + ": " + e.tarName() + ": " + ex.getMessage());
            }
        }

        private JsonNode parse(Entry e, byte[] json) throws BadInputException {
            try {
                JsonNode node = JSON.readTree(json);
                if (node == null || !node.isArray()) {
                    throw new BadInputException(file + ": " + e.tarName() + " is not a JSON array");
                }
                return node;
            } catch (IOException ex) {
                throw new BadInputException(file + ": " + e.tarName() + ": " + ex.getMessage());
            }
        }

        private byte[] small(Entry e) throws IOException, BadInputException {
            return read(e, MAX_SMALL_FILE);
        }

        private byte[] read(Entry e, int limit) throws IOException, BadInputException {
            if (e.size > limit) {
                throw new BadInputException(file + ": " + e.tarName() + " is " + e.size + " bytes, more than "
                        + "such a file can be");
            }
            return reader.read(e.dataOffset, (int) e.size);
        }

        /** Components of {@code path} below {@code prefix} (which ends in "/"), or null if not below it. */
        private static String[] below(String path, String prefix) {
            if (!path.startsWith(prefix) || path.length() == prefix.length()) {
                return null;
            }
            return path.substring(prefix.length()).split("/");
        }

        private static String token(byte[] content) {
            return new String(content, StandardCharsets.ISO_8859_1).strip();
        }

        /** The new token with the old one's surrounding whitespace (none, as the engines write them). */
        private static byte[] withToken(byte[] content, String token) {
            String text = new String(content, StandardCharsets.ISO_8859_1);
            String body = text.strip();
            int start = text.indexOf(body);
            return (text.substring(0, start) + token + text.substring(start + body.length()))
                    .getBytes(StandardCharsets.ISO_8859_1);
        }

        private static Instant instant(String s) {
            if (s == null) {
                return null;
            }
            try {
                return OffsetDateTime.parse(s).toInstant();
            } catch (DateTimeParseException e) {
                return null;
            }
        }
    }
}
