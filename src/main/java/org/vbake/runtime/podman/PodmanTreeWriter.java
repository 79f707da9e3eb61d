package org.vbake.runtime.podman;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.image.Digest;
import org.vbake.image.LayerBlobs;
import org.vbake.image.LayerScan;
import org.vbake.image.MediaTypes;
import org.vbake.image.ResolvedImage;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.runtime.HostTreeWriter;
import org.vbake.storage.FsTree;
import org.vbake.storage.LayerSpool;
import org.vbake.storage.LayerTar;
import org.vbake.storage.NotMirroredException;
import org.vbake.storage.TreeNormalizer;
import org.vbake.storage.UnpackReplay;

/**
 * podman's graphroot ({@code /var/lib/containers/storage}) after {@code podman pull oci:DIR} of
 * the bake's images, their names set as vbake sets them, and vbake's normalisation, written on the
 * host. What containers/storage writes (its {@code layers.go}, {@code images.go},
 * {@code drivers/overlay}, {@code drivers/vfs}; containers/image's storage destination): per layer
 * a record in {@code DRIVER-layers/layers.json} and {@code ID.tar-split.gz}, and the driver's
 * directory (overlay: {@code diff/}, {@code link}, {@code lower}, {@code work/}, {@code merged/},
 * {@code empty/} at the bottom, the {@code l/} symlink; vfs: a full copy of the layer below with
 * the layer applied); per image a record in {@code DRIVER-images/images.json} and its big data
 * (config, manifest). Layer and image ids are content already.
 */
final class PodmanTreeWriter implements HostTreeWriter {

    /** The engine versions of the guest suites. */
    enum Version {
        /** bookworm's podman 4.3.1 (containers/storage 1.43, containers/image 5.23, c/common 0.50). */
        V4_3("4.3"),
        /** trixie's podman 5.4.2 (containers/storage 1.57, containers/image 5.34, c/common 0.62). */
        V5_4("5.4");

        final String label;

        Version(String label) {
            this.label = label;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Set<String> LAYER_TYPES = Set.of(MediaTypes.OCI_LAYER, MediaTypes.OCI_LAYER_GZIP,
            MediaTypes.OCI_LAYER_ZSTD, MediaTypes.DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar");
    /** podman's umask (022) for overlay; UnpackLayer (vfs) runs with umask 0. */
    private static final UnpackReplay.Rules OVERLAY_RULES = new UnpackReplay.Rules(022, 0777, true, false, true,
            Set.of("security.selinux"), true);
    private static final UnpackReplay.Rules VFS_RULES = new UnpackReplay.Rules(0, 0755, false, false, true,
            Set.of("security.selinux"), true);

    private final Version version;
    private final String driver;

    PodmanTreeWriter(Version version, String driver) {
        this.version = version;
        this.driver = driver;
    }

    static HostTreeWriter forSuite(String suite, String driver) {
        return switch (suite) {
            case "trixie" -> new PodmanTreeWriter(Version.V5_4, driver);
            case "bookworm" -> new PodmanTreeWriter(Version.V4_3, driver);
            default -> null;
        };
    }

    @Override
    public String describe() {
        return "podman " + version.label + " " + driver;
    }

    /** One layer as the store holds it. */
    private record Layer(String id, String link, String lower, FsTree vfsRoot, String json) {
    }

    @Override
    public Tree prepare(List<Image> images, Path spoolDir, long epoch, LayerScan.Rules limits, LayerObserver observer,
            EventListener events)
            throws IOException, NotMirroredException, BadInputException {
        String fixedTime = TreeNormalizer.rfc3339(Instant.ofEpochSecond(epoch));
        boolean overlay = driver.equals("overlay");
        FsTree root = skeleton(overlay);
        LayerSpool spool = new LayerSpool(spoolDir);
        boolean done = false;
        try {
            Map<String, Layer> layers = new LinkedHashMap<>();
            Map<String, ImageRecord> records = new LinkedHashMap<>();
            java.util.Set<String> known = new java.util.HashSet<>();
            for (Image img : images) {
                ResolvedImage image = img.image();
                Layer parent = null;
                for (ResolvedImage.Layer l : image.layers()) {
                    if (!LAYER_TYPES.contains(l.mediaType())) {
                        throw new NotMirroredException("a layer of media type " + l.mediaType());
                    }
                    String hex = l.diffId().hex();
                    String id = parent == null ? hex : org.vbake.image.Digest.of((parent.id() + "+" + hex).getBytes(StandardCharsets.UTF_8)).hex();
                    Layer layer = layers.get(id);
                    if (layer == null) {
                        // A blob or diff the store already has under another parent is not unpacked
                        // from the blob: containers/image reuses the layer's uncompressed diff.
                        boolean fromDiff = known.contains(l.digest().toString()) || known.contains(l.diffId().toString());
                        layer = addLayer(root, spool, l, id, parent, overlay, fixedTime, image.source(), fromDiff, limits, observer, events);
                        layers.put(id, layer);
                        known.add(l.digest().toString());
                        known.add(l.diffId().toString());
                    }
                    parent = layer;
                }
                String id = image.configDigest().hex();
                if (records.containsKey(id)) {
                    // The guest path pulls it again and renames it; not mirrored.
                    throw new NotMirroredException("the same image twice (" + image.source() + ")");
                }
                ImageRecord rec = addImage(root, image, parent == null ? null : parent.id(), fixedTime,
                        records.size());
                records.put(id, rec);
                for (ImageRecord other : records.values()) {
                    for (String t : img.tags()) {
                        if (other != rec && other.names.wants(t)) {
                            throw new NotMirroredException("a name given to two images (" + t + ")");
                        }
                    }
                }
                rec.names.load(img);
            }
            for (ImageRecord rec : records.values()) {
                rec.names.reconcile();
            }
            StringBuilder layersJson = new StringBuilder("[");
            for (Layer l : layers.values()) {
                layersJson.append(layersJson.length() > 1 ? "," : "").append(l.json());
            }
            TreeFiles.replace(root, driver + "-layers/layers.json", layersJson.append(']').toString());
            StringBuilder imagesJson = new StringBuilder("[");
            for (ImageRecord r : records.values()) {
                imagesJson.append(imagesJson.length() > 1 ? "," : "").append(r.json());
            }
            TreeFiles.replace(root, driver + "-images/images.json", imagesJson.append(']').toString());
            done = true;
            return new org.vbake.runtime.SpooledTree(root, spool, epoch);
        } finally {
            if (!done) {
                spool.close();
            }
        }
    }

    private FsTree skeleton(boolean overlay) throws NotMirroredException {
        FsTree t = new FsTree(0755, 0, 0);
        t.mkdir("libpod", 0700, 0, 0);
        if (overlay) {
            t.mkdir("overlay", 0700, 0, 0);
            TreeFiles.file(t, "overlay/.has-mount-program", 0600, "false".getBytes(StandardCharsets.US_ASCII));
            t.mkdir("overlay/l", 0755, 0, 0);
        } else {
            t.mkdir("vfs", 0700, 0, 0);
            t.mkdir("vfs/dir", 0700, 0, 0);
        }
        t.mkdir(driver + "-containers", 0700, 0, 0);
        TreeFiles.file(t, driver + "-containers/containers.lock", 0644, new byte[0]);
        t.mkdir(driver + "-images", 0700, 0, 0);
        TreeFiles.file(t, driver + "-images/images.lock", 0644, new byte[0]);
        TreeFiles.file(t, driver + "-images/images.json", 0600, "[]".getBytes(StandardCharsets.US_ASCII));
        t.mkdir(driver + "-layers", 0700, 0, 0);
        TreeFiles.file(t, driver + "-layers/layers.lock", 0644, new byte[0]);
        TreeFiles.file(t, driver + "-layers/layers.json", 0600, "[]".getBytes(StandardCharsets.US_ASCII));
        TreeFiles.file(t, "storage.lock", 0644, new byte[0]);
        TreeFiles.file(t, "userns.lock", 0644, new byte[0]);
        // podman 4 keeps its mounts/ in the graphroot, podman 5 volumes/.
        t.mkdir(version == Version.V4_3 ? "mounts" : "volumes", 0700, 0, 0);
        return t;
    }

    private Layer addLayer(FsTree root, LayerSpool spool, ResolvedImage.Layer l, String id, Layer parent,
            boolean overlay, String fixedTime, String source, boolean fromDiff,
            LayerScan.Rules limits, LayerObserver observer, EventListener events)
            throws IOException, NotMirroredException, BadInputException {
        long t0 = System.nanoTime();
        FsTree diff = new FsTree(0555, 0, 0);
        UnpackReplay replay;
        if (overlay) {
            replay = UnpackReplay.overlay(diff, OVERLAY_RULES);
        } else {
            if (parent != null) {
                // containers/storage's copy keeps capabilities, user.* and the opaque marker.
                diff.copyFrom(parent.vfsRoot(), x -> x.equals(FsTree.CAPABILITY) || x.startsWith("user.")
                        || x.equals("trusted.overlay.opaque"));
            }
            replay = UnpackReplay.full(diff, VFS_RULES);
        }
        TreeSet<Long> uids = new TreeSet<>();
        TreeSet<Long> gids = new TreeSet<>();
        LayerSpool.Read read;
        String what = source + ": layer " + l.digest();
        try (InputStream in = LayerBlobs.open(l, what)) {
            LayerSpool.Applier seen = observer.observe(l);
            read = spool.read(in, (h, content) -> {
                if (!goBase(h.name()).startsWith(".wh.")) {
                    uids.add(h.uid() & 0xffffffffL);
                    gids.add(h.gid() & 0xffffffffL);
                }
                replay.entry(h, content);
                if (seen != null) {
                    seen.entry(h, content);
                }
            }, limits.maxBytes());
        } catch (LayerSpool.TooLarge e) {
            throw LayerScan.tooLarge(what, limits);
        }
        replay.finish();
        if (!read.diffId().equals(l.diffId().toString())) {
            throw new IOException(what + " changed while it was read: its content is " + read.diffId()
                    + ", the config says " + l.diffId());
        }
        String link = null;
        String lower = null;
        if (overlay) {
            String dir = "overlay/" + id;
            root.mkdir(dir, 0700, 0, 0);
            root.graft(dir + "/diff", diff);
            link = TreeNormalizer.linkNameFor(id);
            root.symlink("overlay/l/" + link, "../" + id + "/diff");
            TreeFiles.file(root, dir + "/link", 0644, link.getBytes(StandardCharsets.US_ASCII));
            if (parent == null) {
                root.mkdir(dir + "/empty", 0700, 0, 0);
            } else {
                lower = "l/" + parent.link() + (parent.lower() != null ? ":" + parent.lower() : "");
                TreeFiles.file(root, dir + "/lower", 0644, lower.getBytes(StandardCharsets.US_ASCII));
            }
            root.mkdir(dir + "/merged", 0700, 0, 0);
            root.mkdir(dir + "/work", 0700, 0, 0);
        } else {
            // The temp directory UnpackLayer's caller makes and removes in the layer root.
            diff.touch("");
            root.graft("vfs/dir/" + id, diff);
        }
        TreeFiles.file(root, driver + "-layers/" + id + ".tar-split.gz", 0600, read.tarSplitGz());

        StringBuilder j = new StringBuilder("{\"id\":\"").append(id).append('"');
        if (parent != null) {
            j.append(",\"parent\":\"").append(parent.id()).append('"');
        }
        j.append(",\"created\":\"").append(fixedTime).append('"');
        j.append(",\"compressed-diff-digest\":\"").append(l.digest()).append('"');
        // Made from another layer's diff: the stream is uncompressed; containers/image 5.34 passes
        // the blob's size along, 5.23 leaves the count of what was read.
        j.append(",\"compressed-size\":").append(fromDiff && version == Version.V4_3 ? read.bytes() : l.size());
        j.append(",\"diff-digest\":\"").append(l.diffId()).append('"');
        j.append(",\"diff-size\":").append(read.bytes());
        int compression = fromDiff ? 0 : switch (LayerBlobs.compression(l)) {
            case NONE -> 0;
            case GZIP -> 2;
            case XZ -> 3;
            case ZSTD -> 4;
        };
        if (compression != 0) {
            j.append(",\"compression\":").append(compression);
        }
        if (!uids.isEmpty()) {
            j.append(",\"uidset\":").append(numbers(uids));
            j.append(",\"gidset\":").append(numbers(gids));
        }
        j.append('}');
        events.on(new Event.Debug("host writer: layer " + l.diffId().shortId() + " (" + read.entries()
                + " entries) in " + (System.nanoTime() - t0) / 1_000_000 + " ms"));
        return new Layer(id, link, lower, overlay ? null : diff, j.toString());
    }

    /** Go's path.Base: the last element, trailing slashes dropped; "." for nothing. */
    private static String goBase(String name) {
        String n = name;
        while (n.length() > 1 && n.endsWith("/")) {
            n = n.substring(0, n.length() - 1);
        }
        if (n.isEmpty()) {
            return ".";
        }
        int slash = n.lastIndexOf('/');
        return slash < 0 || n.length() == 1 ? n : n.substring(slash + 1);
    }

    private static String numbers(TreeSet<Long> set) {
        StringBuilder sb = new StringBuilder("[");
        for (long v : set) {
            sb.append(sb.length() > 1 ? "," : "").append(v);
        }
        return sb.append(']').toString();
    }

    /** An image's record and big data. */
    private final class ImageRecord {
        final String id;
        final Digest manifestDigest;
        final String topLayer;
        final String created;
        final Map<String, Integer> sizes = new TreeMap<>();
        final Map<String, String> digests = new TreeMap<>();
        final List<String> bigDataNames = new ArrayList<>();
        final PodmanNames names;

        ImageRecord(String id, Digest manifestDigest, String topLayer, String created, PodmanNames names) {
            this.id = id;
            this.manifestDigest = manifestDigest;
            this.topLayer = topLayer;
            this.created = created;
            this.names = names;
        }

        String json() {
            StringBuilder j = new StringBuilder("{\"id\":\"").append(id).append('"');
            j.append(",\"digest\":\"").append(manifestDigest).append('"');
            if (!names.names.isEmpty()) {
                j.append(",\"names\":").append(strings(names.names));
            }
            if (!names.history.isEmpty()) {
                j.append(",\"names-history\":").append(strings(names.history));
            }
            if (topLayer != null) {
                j.append(",\"layer\":\"").append(topLayer).append('"');
            }
            // containers/image 5.23 records (empty) signatures for every copy; 5.34 only when there are some.
            j.append(",\"metadata\":").append(version == Version.V4_3
                    ? quote("{\"signatures-sizes\":{\"" + manifestDigest + "\":[]}}") : "\"{}\"");
            j.append(",\"big-data-names\":").append(strings(bigDataNames));
            j.append(",\"big-data-sizes\":{");
            boolean first = true;
            for (Map.Entry<String, Integer> e : sizes.entrySet()) {
                j.append(first ? "" : ",").append(quote(e.getKey())).append(':').append(e.getValue());
                first = false;
            }
            j.append("},\"big-data-digests\":{");
            first = true;
            for (Map.Entry<String, String> e : digests.entrySet()) {
                j.append(first ? "" : ",").append(quote(e.getKey())).append(':').append(quote(e.getValue()));
                first = false;
            }
            j.append("},\"created\":\"").append(created).append("\"}");
            return j.toString();
        }
    }

    private ImageRecord addImage(FsTree root, ResolvedImage image, String topLayer, String fixedTime, int position)
            throws IOException, NotMirroredException {
        byte[] manifest = image.manifestBytes();
        if (manifest == null) {
            throw new NotMirroredException("an image without a manifest (" + image.source() + ")");
        }
        Digest manifestDigest = Digest.of(manifest);
        String id = image.configDigest().hex();
        // podman 4 names what it pulls from a layout after the path (ImageLoader's fixed one).
        PodmanNames names = version == Version.V4_3
                ? new PodmanNames("localhost" + ContainerRuntime.LAYOUT_PULL_DIR + "/image-" + position + ":latest",
                        true)
                : new PodmanNames(null, false);
        ImageRecord rec = new ImageRecord(id, manifestDigest, topLayer, created(image.configBytes(), fixedTime), names);
        String dir = driver + "-images/" + id;
        root.mkdir(dir, 0700, 0, 0);
        bigData(root, rec, dir, image.configDigest().toString(), image.configBytes(), image.configDigest().toString());
        bigData(root, rec, dir, "manifest-" + manifestDigest, manifest, manifestDigest.toString());
        bigData(root, rec, dir, "manifest", manifest, manifestDigest.toString());
        if (version == Version.V4_3) {
            bigData(root, rec, dir, "signature-" + manifestDigest.hex(), new byte[0], Digest.of(new byte[0]).toString());
        }
        return rec;
    }

    private static void bigData(FsTree root, ImageRecord rec, String dir, String key, byte[] bytes, String digest)
            throws NotMirroredException {
        rec.bigDataNames.add(key);
        rec.sizes.put(key, bytes.length);
        rec.digests.put(key, digest);
        TreeFiles.file(root, dir + "/" + bigDataFileName(key), 0600, bytes);
    }

    /** containers/storage's makeBigDataBaseName: the key if it is [.0-9a-z]*, else "=" + base64(key). */
    static String bigDataFileName(String key) {
        for (char c : key.toCharArray()) {
            if (!(c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'))) {
                return "=" + Base64.getEncoder().encodeToString(key.getBytes(StandardCharsets.UTF_8));
            }
        }
        return key;
    }

    /**
     * The image's "created": the config's, as Go writes a parsed time back (RFC 3339 with the
     * fraction's trailing zeros dropped, "Z" for UTC); the fixed time when the config has none.
     */
    static String created(byte[] config, String fixedTime) {
        try {
            JsonNode c = JSON.readTree(config).path("created");
            if (!c.isTextual()) {
                return fixedTime;
            }
            OffsetDateTime t = OffsetDateTime.parse(c.asText());
            if (t.getYear() < 1 || t.getYear() > 9999 || t.toInstant().equals(Instant.parse("0001-01-01T00:00:00Z"))) {
                return fixedTime;
            }
            StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%04d-%02d-%02dT%02d:%02d:%02d",
                    t.getYear(), t.getMonthValue(), t.getDayOfMonth(), t.getHour(), t.getMinute(), t.getSecond()));
            if (t.getNano() != 0) {
                sb.append('.').append(String.format(Locale.ROOT, "%09d", t.getNano()).replaceAll("0+$", ""));
            }
            ZoneOffset off = t.getOffset();
            if (off.getTotalSeconds() == 0) {
                sb.append('Z');
            } else {
                int s = Math.abs(off.getTotalSeconds());
                sb.append(off.getTotalSeconds() < 0 ? '-' : '+')
                        .append(String.format(Locale.ROOT, "%02d:%02d", s / 3600, (s / 60) % 60));
            }
            return sb.toString();
        } catch (IOException | DateTimeParseException e) {
            return fixedTime;
        }
    }

    private static String strings(List<String> list) {
        StringBuilder sb = new StringBuilder("[");
        for (String s : list) {
            sb.append(sb.length() > 1 ? "," : "").append(quote(s));
        }
        return sb.append(']').toString();
    }

    static String quote(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

}
