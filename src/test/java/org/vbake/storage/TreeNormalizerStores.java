package org.vbake.storage;

import static org.vbake.storage.TreeNormalizerExporter.CLAMP;
import static org.vbake.storage.TreeNormalizerExporter.utf8;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.Base64;
import java.util.Collections;
import java.util.HexFormat;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.zip.GZIPOutputStream;
import org.vbake.storage.TreeNormalizerExporter.Node;

/**
 * Storage trees as docker and podman leave them, written as the exporter writes them, for the unit
 * tests; {@code TreeNormalizerIT} does the same with the host's real engines.
 *
 * <p>The layouts copy real stores written by docker 20.10.24 and podman 4.3.1 (Debian bookworm)
 * and exported by {@code vbake-agent export-tree} with {@code --mtime-clamp 1750000000} and the
 * excludes vbake uses (docker: runtimes, tmp, containerd, network, engine-id, buildkit, swarm;
 * podman: libpod/bolt_state.db, tmp, defaultNetworkBackend). Each store went through:
 *
 * <ul>
 *   <li>{@code load} of two docker-archives sharing layers: {@code example.test/a:latest} (a base
 *       layer with a hardlink, a symlink and a file the next layer deletes; a layer with that
 *       whiteout) and {@code example.test/b:latest} (a's two layers plus one with an opaque
 *       directory);
 *   <li>a push of {@code a} to a local registry and a pull back as
 *       {@code 127.0.0.1:5055/x/a:v1} (podman: {@code 127.0.0.1:5055/x/pa:v1}), which gives
 *       docker a {@code lastUpdated} file and distribution metadata, and podman a second manifest;
 *   <li>{@code tag example.test/b:latest example.test/b:tagged}.
 * </ul>
 *
 * The base layer here also holds what real images hold and the real bakes lacked: a file with a
 * binary {@code security.capability}, names that are not UTF-8 or are UTF-8, a long path USTAR can
 * split and a name it cannot hold, and an owner beyond USTAR's octal field.
 *
 * <p>How they look: docker keeps {@code image/DRIVER/layerdb/sha256/CHAIN/{cache-id,diff,parent,
 * size,tar-split.json.gz}}, {@code image/DRIVER/imagedb/{content,metadata}/sha256/ID},
 * {@code repositories.json} and, per layer, {@code overlay2/CACHEID/{committed,diff/,link,lower,
 * work/}} with {@code overlay2/l/LINK -> ../CACHEID/diff} (overlay2; whiteouts are char 0/0, opaque
 * directories carry {@code trusted.overlay.opaque=y}) or a full copy of the layer's file system in
 * {@code vfs/dir/CACHEID/}. podman keeps {@code DRIVER-layers/layers.json} (with the unpack time in
 * each {@code "created"}), {@code DRIVER-images/images.json} and each image's big-data files
 * ({@code "=" + base64(key)}), per layer {@code overlay/ID/{diff/,empty/,link,lower,merged/,work/}}
 * with {@code overlay/l/LINK}, or {@code vfs/dir/ID/}, and {@code *.lock} files holding a 64-byte
 * random token of their last writer.
 *
 * <p>Two bakes of the same seed are the same tree; two seeds differ only where the engines use
 * randomness or the clock: docker's cache-ids, overlay short links and {@code lastUpdated}, podman's
 * layer {@code "created"}, short links and lock tokens. Everything else derives from the layers'
 * content, as in the engines: diff ids are the digests of the layer tars, docker chain ids and
 * podman layer ids follow from them, image ids are the configs' digests.
 */
final class TreeNormalizerStores {

    /** The mtime of the images' own files. */
    static final long IMAGE_TIME = 1700000000L;
    /** {@code setcap cap_net_bind_service+ep}: a binary xattr, with NULs. */
    static final byte[] CAPABILITY = HexFormat.of().parseHex("0100000200200000000000000000000000000000");
    static final String CREATED = "2025-01-01T00:00:00Z";

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json";
    private static final String CONFIG_TYPE = "application/vnd.docker.container.image.v1+json";
    private static final String LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    private static final String PUSHED_TO = "127.0.0.1:5055/x/a";
    private static final Images IMAGES = new Images();

    private TreeNormalizerStores() {
    }

    /** A bake of the images into a fresh store of that kind; the seed stands for the engine's randomness and clock. */
    static TreeNormalizerExporter bake(StoreKind kind, long seed) {
        return kind.docker() ? docker(kind, new Random(seed)) : podman(kind, new Random(seed));
    }

    // ---- the images ----

    private enum Style {
        /** The layer tar: whiteouts as .wh. files. */
        TAR,
        /** An overlay diff directory: whiteouts as char 0/0, opaque directories by xattr. */
        OVERLAY,
        /** A vfs directory: the file system of the layer and all below it, whiteouts applied. */
        VFS
    }

    /** Layer {@code n} (1 to 3) below {@code at}, as {@code style} keeps it. */
    private static void layer(TreeNormalizerExporter t, String at, int n, Style style) {
        String p = at.isEmpty() ? "" : at + "/";
        boolean vfs = style == Style.VFS;
        t.mtime(IMAGE_TIME);
        if (n == 1 || vfs) {
            t.dir(p + "bin");
            t.file(p + "bin/capped", "#!fake capped\n").mode(0755).xattr("security.capability", CAPABILITY);
            t.file(p + "bin/hard", "#!fake sh\n");
            t.hardlink(p + "bin/sh", p + "bin/hard");
            t.dir(p + "etc");
            t.file(p + "etc/caf\u00e9", "latin-1 name\n"); // the byte 0xe9: not UTF-8
            if (n == 1) {
                t.file(p + "etc/gone", "x\n");
            }
            t.file(p + "etc/os", "base\n");
            t.file(p + "etc/" + utf8("\u00fcn\u00efc\u00f6d\u00e9"), "utf-8 name\n");
            t.dir(p + "home");
            t.dir(p + "home/userns").owner(3000000, 3000000);
            t.file(p + "home/userns/big", "big ids\n").owner(3000000, 3000000);
            t.symlink(p + "lnk", "bin/sh");
            t.file(p + "usr/share/doc/" + "long-package-name-".repeat(4) + "x/copyright", "long path\n");
            t.file(p + "usr/share/doc/" + "a-file-name-longer-than-a-ustar-name-field-".repeat(3), "long name\n");
        }
        if (n == 2 || vfs && n > 2) { // vfs: the layer on top of its parents
            t.dir(p + "etc");
            t.file(p + "etc/one", "one\n");
            if (style == Style.TAR) {
                t.file(p + "etc/.wh.gone", "");
            } else if (style == Style.OVERLAY) {
                // Made by the driver when it unpacked the layer: the clock, clamped.
                t.device(p + "etc/gone", '3', 0, 0).mode(0).mtime(CLAMP);
            }
        }
        if (n == 3) {
            Node opt = t.dir(p + "opt");
            if (style == Style.TAR) {
                t.file(p + "opt/.wh..wh..opq", "");
            } else if (style == Style.OVERLAY) {
                opt.xattr("trusted.overlay.opaque", "y");
            }
            t.dir(p + "opt/deep");
            t.file(p + "opt/deep/three", "3\n");
            t.file(p + "opt/two", "two\n");
        }
        t.mtime(CLAMP);
    }

    /** Everything about the images that follows from their content. */
    private static final class Images {
        final byte[][] tars = new byte[3][];
        final String[] diffIds = new String[3];
        final String[] chainIds = new String[3];
        final String[] podmanIds = new String[3];
        /** Digests and sizes of the gzipped layers a registry holds after the push. */
        final String[] blobs = new String[2];
        final int[] blobSizes = new int[2];
        final byte[][] tarSplits = new byte[3][];
        final long[][] sizes = new long[3][];
        final String configA;
        final String configB;
        final String idA;
        final String idB;
        /** a and b as loaded from docker-archives (layers uncompressed), a as pulled back. */
        final String manifestA;
        final String manifestB;
        final String manifestPulled;

        Images() {
            for (int i = 0; i < 3; i++) {
                TreeNormalizerExporter t = new TreeNormalizerExporter();
                t.root().mtime(IMAGE_TIME);
                layer(t, "", i + 1, Style.TAR);
                tars[i] = t.toTar();
                diffIds[i] = sha256Hex(tars[i]);
                chainIds[i] = i == 0 ? diffIds[0] : sha256Hex("sha256:" + chainIds[i - 1] + " sha256:" + diffIds[i]);
                podmanIds[i] = i == 0 ? diffIds[0] : sha256Hex(podmanIds[i - 1] + "+" + diffIds[i]);
                tarSplits[i] = tarSplit(t);
                sizes[i] = sizes(t);
                if (i < 2) {
                    byte[] blob = gzip(tars[i]);
                    blobs[i] = sha256Hex(blob);
                    blobSizes[i] = blob.length;
                }
            }
            configA = config(2);
            configB = config(3);
            idA = sha256Hex(configA);
            idB = sha256Hex(configB);
            manifestA = manifest(configA, List.of(layerRef(tars[0].length, diffIds[0]), layerRef(tars[1].length, diffIds[1])));
            manifestB = manifest(configB, List.of(layerRef(tars[0].length, diffIds[0]), layerRef(tars[1].length, diffIds[1]),
                    layerRef(tars[2].length, diffIds[2])));
            manifestPulled = manifest(configA, List.of(layerRef(blobSizes[0], blobs[0]), layerRef(blobSizes[1], blobs[1])));
        }

        private String config(int layers) {
            StringBuilder diffs = new StringBuilder();
            StringBuilder history = new StringBuilder();
            for (int i = 0; i < layers; i++) {
                diffs.append(i > 0 ? "," : "").append("\"sha256:").append(diffIds[i]).append('"');
                history.append(i > 0 ? "," : "").append("{\"created\":\"" + CREATED + "\"}");
            }
            return "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"" + CREATED + "\","
                    + "\"config\":{\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[" + diffs + "]},\"history\":[" + history + "]}";
        }

        private static String layerRef(long size, String digest) {
            return "{\"mediaType\":\"" + LAYER_TYPE + "\",\"size\":" + size + ",\"digest\":\"sha256:" + digest + "\"}";
        }

        private static String manifest(String config, List<String> layers) {
            return "{\"schemaVersion\":2,\"mediaType\":\"" + MANIFEST_TYPE + "\",\"config\":{\"mediaType\":\"" + CONFIG_TYPE
                    + "\",\"size\":" + config.length() + ",\"digest\":\"sha256:" + sha256Hex(config) + "\"},\"layers\":["
                    + String.join(",", layers) + "]}";
        }

        /** A stand-in for the layer's tar-split: a line per entry, gzipped without a timestamp as both engines do. */
        private static byte[] tarSplit(TreeNormalizerExporter layer) {
            StringBuilder lines = new StringBuilder();
            int position = 0;
            for (String path : layer.walkOrder()) {
                ObjectNode line = JSON.createObjectNode().put("type", 1).put("name", path.isEmpty() ? "./" : path)
                        .put("size", layer.node(path).content.length).putNull("payload").put("position", position++);
                lines.append(line).append('\n');
            }
            return gzip(lines.toString().getBytes(StandardCharsets.UTF_8));
        }

        /** What docker's layerdb "size" holds: {overlay2 (symlinks count), vfs}. */
        private static long[] sizes(TreeNormalizerExporter layer) {
            long files = 0;
            long links = 0;
            Set<Node> seen = Collections.newSetFromMap(new IdentityHashMap<>());
            for (String path : layer.walkOrder()) {
                Node n = layer.node(path);
                if (seen.add(n)) {
                    files += n.type == '0' ? n.content.length : 0;
                    links += n.type == '2' ? n.target.length() : 0;
                }
            }
            return new long[] {files + links, files};
        }
    }

    // ---- docker ----

    private static TreeNormalizerExporter docker(StoreKind kind, Random rnd) {
        Images im = IMAGES;
        String driver = kind.driver();
        String img = "image/" + driver;
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.root().mode(0710);
        t.dir("containers", 0710);
        t.dir("image", 0700);
        t.dir(img, 0700);
        t.dir(img + "/distribution", 0700);
        for (String d : List.of("diffid-by-digest", "v2metadata-by-diffid")) {
            t.dir(img + "/distribution/" + d, 0755);
            t.dir(img + "/distribution/" + d + "/sha256", 0755);
        }
        for (int i = 0; i < 2; i++) { // a's layers, pushed and pulled back
            t.file(img + "/distribution/diffid-by-digest/sha256/" + im.blobs[i], "sha256:" + im.diffIds[i]);
            t.file(img + "/distribution/v2metadata-by-diffid/sha256/" + im.diffIds[i], "[{\"Digest\":\"sha256:" + im.blobs[i]
                    + "\",\"SourceRepository\":\"" + PUSHED_TO + "\",\"HMAC\":\"" + sha256Hex("hmac:" + im.blobs[i]) + "\"}]");
        }
        for (String d : List.of("imagedb", "imagedb/content", "imagedb/content/sha256", "imagedb/metadata",
                "imagedb/metadata/sha256", "layerdb")) {
            t.dir(img + "/" + d, 0700);
        }
        for (String[] image : new String[][] {{im.idA, im.configA}, {im.idB, im.configB}}) {
            t.file(img + "/imagedb/content/sha256/" + image[0], image[1]).mode(0600);
            t.dir(img + "/imagedb/metadata/sha256/" + image[0], 0700);
            // When the image was last tagged: the clock.
            t.file(img + "/imagedb/metadata/sha256/" + image[0] + "/lastUpdated", clock(rnd)).mode(0600);
        }
        String[] cacheIds = new String[3];
        t.dir(img + "/layerdb/sha256", 0755);
        for (int i = 0; i < 3; i++) {
            cacheIds[i] = HexFormat.of().formatHex(randomBytes(rnd, 32));
            String layer = img + "/layerdb/sha256/" + im.chainIds[i];
            t.dir(layer, 0700);
            t.file(layer + "/cache-id", cacheIds[i]);
            t.file(layer + "/diff", "sha256:" + im.diffIds[i]);
            if (i > 0) {
                t.file(layer + "/parent", "sha256:" + im.chainIds[i - 1]);
            }
            t.file(layer + "/size", Long.toString(im.sizes[i][kind.overlay() ? 0 : 1]));
            t.file(layer + "/tar-split.json.gz", im.tarSplits[i]);
        }
        t.dir(img + "/layerdb/tmp", 0755);
        t.file(img + "/repositories.json", "{\"Repositories\":{\"" + PUSHED_TO + "\":{\"" + PUSHED_TO + ":v1\":\"sha256:" + im.idA
                + "\",\"" + PUSHED_TO + "@sha256:" + sha256Hex(im.manifestPulled) + "\":\"sha256:" + im.idA + "\"},"
                + "\"example.test/a\":{\"example.test/a:latest\":\"sha256:" + im.idA + "\"},"
                + "\"example.test/b\":{\"example.test/b:latest\":\"sha256:" + im.idB + "\",\"example.test/b:tagged\":\"sha256:"
                + im.idB + "\"}}}").mode(0600);
        if (kind.overlay()) {
            String[] links = links(rnd);
            t.dir("overlay2", 0710);
            for (int i = 0; i < 3; i++) {
                String dir = "overlay2/" + cacheIds[i];
                t.dir(dir, 0710);
                if (i < 2) {
                    t.file(dir + "/committed", "").mode(0600); // a layer others sit on
                }
                t.dir(dir + "/diff", 0755);
                layer(t, dir + "/diff", i + 1, Style.OVERLAY);
                t.file(dir + "/link", links[i]);
                if (i > 0) {
                    t.file(dir + "/lower", lower(links, i));
                    t.dir(dir + "/work", 0700);
                }
            }
            t.dir("overlay2/l", 0700);
            for (int i = 0; i < 3; i++) {
                t.symlink("overlay2/l/" + links[i], "../" + cacheIds[i] + "/diff");
            }
        } else {
            t.dir("vfs", 0710);
            t.dir("vfs/dir", 0710);
            for (int i = 0; i < 3; i++) {
                t.dir("vfs/dir/" + cacheIds[i], 0755);
                layer(t, "vfs/dir/" + cacheIds[i], i + 1, Style.VFS);
            }
        }
        t.dir("plugins", 0700);
        t.dir("plugins/storage", 0755);
        t.dir("plugins/storage/ingest", 0755);
        t.dir("plugins/tmp", 0700);
        t.dir("trust", 0700);
        t.dir("volumes", 0701);
        t.device("volumes/backingFsBlockDev", '4', 254, 0).mode(0600);
        // A stand-in for the volumes' bolt database: 8 pages, the same in every bake.
        byte[] bolt = new byte[32768];
        System.arraycopy(HexFormat.of().parseHex("edda0ced0200000000100000"), 0, bolt, 16, 12);
        t.file("volumes/metadata.db", bolt).mode(0600);
        return t;
    }

    // ---- podman ----

    private static TreeNormalizerExporter podman(StoreKind kind, Random rnd) {
        Images im = IMAGES;
        String driver = kind.driver();
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.dir("libpod", 0700);
        t.dir("mounts", 0700);
        if (kind.overlay()) {
            String[] links = links(rnd);
            t.dir("overlay", 0700);
            t.file("overlay/.has-mount-program", "false").mode(0600);
            for (int i = 0; i < 3; i++) {
                String dir = "overlay/" + im.podmanIds[i];
                t.dir(dir, 0700);
                t.dir(dir + "/diff", 0555);
                layer(t, dir + "/diff", i + 1, Style.OVERLAY);
                if (i == 0) {
                    t.dir(dir + "/empty", 0700);
                }
                t.file(dir + "/link", links[i]);
                if (i > 0) {
                    t.file(dir + "/lower", lower(links, i));
                }
                t.dir(dir + "/merged", 0700);
                t.dir(dir + "/work", 0700);
            }
            t.dir("overlay/l", 0755);
            for (int i = 0; i < 3; i++) {
                t.symlink("overlay/l/" + links[i], "../" + im.podmanIds[i] + "/diff");
            }
        } else {
            t.dir("vfs", 0700);
            t.dir("vfs/dir", 0700);
            for (int i = 0; i < 3; i++) {
                t.dir("vfs/dir/" + im.podmanIds[i], 0555);
                layer(t, "vfs/dir/" + im.podmanIds[i], i + 1, Style.VFS);
            }
        }
        t.dir(driver + "-containers", 0700);
        t.file(driver + "-containers/containers.lock", "");

        // a: loaded (manifest A), then pulled back (manifest P, now "manifest"); b: loaded, then tagged.
        String digestA = sha256Hex(im.manifestA);
        String digestB = sha256Hex(im.manifestB);
        String digestP = sha256Hex(im.manifestPulled);
        Map<String, String> bigA = new LinkedHashMap<>();
        bigA.put("sha256:" + im.idA, im.configA);
        bigA.put("manifest-sha256:" + digestA, im.manifestA);
        bigA.put("manifest", im.manifestPulled);
        bigA.put("signature-" + digestA, "");
        bigA.put("manifest-sha256:" + digestP, im.manifestPulled);
        bigA.put("signature-" + digestP, "");
        Map<String, String> bigB = new LinkedHashMap<>();
        bigB.put("sha256:" + im.idB, im.configB);
        bigB.put("manifest-sha256:" + digestB, im.manifestB);
        bigB.put("manifest", im.manifestB);
        bigB.put("signature-" + digestB, "");
        t.dir(driver + "-images", 0700);
        for (Object[] image : new Object[][] {{im.idA, bigA}, {im.idB, bigB}}) {
            String dir = driver + "-images/" + image[0];
            t.dir(dir, 0700);
            @SuppressWarnings("unchecked")
            Map<String, String> big = (Map<String, String>) image[1];
            for (Map.Entry<String, String> b : big.entrySet()) {
                String name = b.getKey().equals("manifest") ? "manifest"
                        : "=" + Base64.getEncoder().encodeToString(b.getKey().getBytes(StandardCharsets.UTF_8));
                t.file(dir + "/" + name, b.getValue()).mode(0600);
            }
        }
        String images = "[" + imageJson(im.idA, digestA, List.of("127.0.0.1:5055/x/pa:v1", "example.test/a:latest"),
                List.of("example.test/a:latest", "127.0.0.1:5055/x/pa:v1"), im.podmanIds[1], digestP, bigA) + ","
                + imageJson(im.idB, digestB, List.of("example.test/b:latest", "example.test/b:tagged"),
                        List.of("example.test/b:tagged", "example.test/b:latest"), im.podmanIds[2], digestB, bigB) + "]";
        t.file(driver + "-images/images.json", images).mode(0600);
        t.file(driver + "-images/images.lock", randomBytes(rnd, 64));

        t.dir(driver + "-layers", 0700);
        StringBuilder layers = new StringBuilder("[");
        for (int i = 0; i < 3; i++) {
            t.file(driver + "-layers/" + im.podmanIds[i] + ".tar-split.gz", im.tarSplits[i]).mode(0600);
            ObjectNode l = JSON.createObjectNode().put("id", im.podmanIds[i]);
            if (i > 0) {
                l.put("parent", im.podmanIds[i - 1]);
            }
            l.put("created", clock(rnd)) // when it was unpacked
                    .put("compressed-diff-digest", "sha256:" + im.diffIds[i]).put("compressed-size", im.tars[i].length)
                    .put("diff-digest", "sha256:" + im.diffIds[i]).put("diff-size", im.tars[i].length);
            ArrayNode uids = l.putArray("uidset").add(0);
            ArrayNode gids = l.putArray("gidset").add(0);
            if (i == 0) { // home/userns
                uids.add(3000000);
                gids.add(3000000);
            }
            layers.append(i > 0 ? "," : "").append(l);
        }
        t.file(driver + "-layers/layers.json", layers.append(']').toString()).mode(0600);
        t.file(driver + "-layers/layers.lock", randomBytes(rnd, 64));
        t.file("storage.lock", randomBytes(rnd, 64));
        t.file("userns.lock", "");
        return t;
    }

    /** An images.json entry; {@code latest} is the digest of the manifest pulled last. */
    private static String imageJson(String id, String digest, List<String> names, List<String> history, String layer,
            String latest, Map<String, String> big) {
        ObjectNode image = JSON.createObjectNode().put("id", id).put("digest", "sha256:" + digest);
        names.forEach(image.putArray("names")::add);
        history.forEach(image.putArray("names-history")::add);
        image.put("layer", layer);
        image.put("metadata", "{\"signatures-sizes\":{\"sha256:" + latest + "\":[]}}");
        big.keySet().forEach(image.putArray("big-data-names")::add);
        ObjectNode sizes = image.putObject("big-data-sizes");
        ObjectNode digests = image.putObject("big-data-digests");
        for (String key : new TreeMap<>(big).keySet()) { // Go writes a map's keys sorted
            sizes.put(key, big.get(key).length());
            digests.put(key, "sha256:" + (key.startsWith("sha256:") ? id : sha256Hex(big.get(key))));
        }
        return image.put("created", CREATED).toString();
    }

    // ---- the engines' randomness and clock ----

    /** Short links: 26 characters of base32. */
    private static String[] links(Random rnd) {
        String[] links = new String[3];
        for (int i = 0; i < 3; i++) {
            links[i] = TreeNormalizer.base32(randomBytes(rnd, 17)).substring(0, 26);
        }
        return links;
    }

    /** A lower file: the layers below, nearest first. */
    private static String lower(String[] links, int layer) {
        StringBuilder sb = new StringBuilder();
        for (int i = layer - 1; i >= 0; i--) {
            sb.append(sb.length() > 0 ? ":" : "").append("l/").append(links[i]);
        }
        return sb.toString();
    }

    /** A time during the bake, as Go's RFC3339Nano writes it. */
    private static String clock(Random rnd) {
        Instant t = Instant.parse("2026-11-23T19:22:37Z").plusSeconds(rnd.nextInt(3600)).plusNanos(rnd.nextInt(1_000_000_000));
        return TreeNormalizer.rfc3339(t);
    }

    private static byte[] randomBytes(Random rnd, int n) {
        byte[] b = new byte[n];
        rnd.nextBytes(b);
        return b;
    }

    private static byte[] gzip(byte[] data) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(data);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static String sha256Hex(String s) {
        return sha256Hex(s.getBytes(StandardCharsets.UTF_8));
    }

    static String sha256Hex(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
