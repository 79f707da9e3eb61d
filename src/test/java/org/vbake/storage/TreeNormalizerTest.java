package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.vbake.api.BadInputException;
import org.vbake.storage.TreeNormalizer.Result;
import org.vbake.storage.TreeNormalizerTar.Entry;

class TreeNormalizerTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String EPOCH = "1970-01-01T00:00:00Z";
    /** The SHA-256 of the tar vbake-agent export-tree wrote for {@link #edgeCases()}. */
    private static final String GO_EXPORTER_EDGE_CASES_SHA256 =
            "cabd3fbf4514b50686c3a9ef77e048b96897ab65d54fbae63332e6d3d6bf4c44";

    @TempDir
    Path dir;

    // ---- stores as the engines leave them (see TreeNormalizerStores) ----

    @ParameterizedTest
    @EnumSource(StoreKind.class)
    void twoBakesOfTheSameImagesBecomeByteIdentical(StoreKind kind) throws Exception {
        Path one = bake(kind, 1);
        Path two = bake(kind, 2);
        assertThat(Files.readAllBytes(one)).isNotEqualTo(Files.readAllBytes(two));
        assertThat(TreeNormalizer.detect(one)).isEqualTo(kind);

        byte[] a = normalize(one, kind);
        byte[] b = normalize(two, kind);
        assertThat(a).isEqualTo(b);
        // Normalizing again changes nothing: the output is a fixed point.
        Path again = Files.write(dir.resolve("again.tar"), a);
        assertThat(normalize(again, kind)).isEqualTo(a);
    }

    @ParameterizedTest
    @EnumSource(StoreKind.class)
    void outputIsSortedDepthFirstAndReadableByAnotherTarReader(StoreKind kind) throws Exception {
        byte[] out = normalize(bake(kind, 1), kind);
        List<String> names = new ArrayList<>();
        try (TarArchiveInputStream tar = new TarArchiveInputStream(new java.io.ByteArrayInputStream(out))) {
            for (TarArchiveEntry e; (e = tar.getNextEntry()) != null; ) {
                names.add(e.getName());
                assertThat(e.getName()).startsWith("./");
                if (e.isDirectory()) {
                    assertThat(e.getName()).endsWith("/");
                }
            }
        }
        assertThat(names.get(0)).isEqualTo("./");
        List<String> sorted = new ArrayList<>(names);
        sorted.sort((x, y) -> TreeNormalizer.TREE_ORDER.compare(strip(x), strip(y)));
        assertThat(names).isEqualTo(sorted);
    }

    @Test
    void dockerOverlay2LayersAndLinksAreRenamedConsistentlyAndNothingElseChanges() throws Exception {
        Path in = bake(StoreKind.DOCKER_OVERLAY2, 1);
        Map<String, Item> before = read(in);
        // What the store holds besides ids, for the header checks below to mean something.
        assertThat(before.values())
                .anySatisfy(i -> assertThat(i.entry().type).isEqualTo((byte) '1'))
                .anySatisfy(i -> {
                    assertThat(i.entry().type).isEqualTo((byte) '3');
                    assertThat(i.entry().devMajor + i.entry().devMinor).isZero();
                })
                .anySatisfy(i -> assertThat(i.entry().records).containsEntry("SCHILY.xattr.security.capability",
                        latin1(TreeNormalizerStores.CAPABILITY)))
                .anySatisfy(i -> assertThat(i.entry().uid).isEqualTo(3000000))
                .anySatisfy(i -> assertThat(i.path()).endsWith("/etc/caf\u00e9"))
                .anySatisfy(i -> assertThat(i.path().substring(i.path().lastIndexOf('/') + 1)).hasSizeGreaterThan(100))
                .anySatisfy(i -> assertThat(i.path()).hasSizeGreaterThan(155));
        Instant time = Instant.ofEpochSecond(1700000000L);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Result result = TreeNormalizer.normalize(in, out, StoreKind.DOCKER_OVERLAY2, time);
        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), out.toByteArray()));
        assertThat(result.layersRenamed()).isEqualTo(3);
        assertThat(result.linksRenamed()).isEqualTo(3);
        assertThat(result.notes()).isEmpty();

        // The mapping, worked out here from the definition: cache-id from the chain id, link from the cache-id.
        Map<String, String> dirs = new TreeMap<>();
        Map<String, String> links = new TreeMap<>();
        String layerdb = "image/overlay2/layerdb/sha256/";
        for (Item i : before.values()) {
            if (i.path().startsWith(layerdb) && i.path().endsWith("/cache-id")) {
                String chain = i.path().substring(layerdb.length(), i.path().length() - "/cache-id".length());
                dirs.put(i.text(), sha256Hex("vbake-cache-id:sha256:" + chain));
            }
        }
        assertThat(dirs).hasSize(3);
        for (Map.Entry<String, String> d : dirs.entrySet()) {
            String oldLink = before.get("overlay2/" + d.getKey() + "/link").text();
            String newLink = TreeNormalizer.base32(MessageDigest.getInstance("SHA-256")
                    .digest(("vbake-link:" + d.getValue()).getBytes(StandardCharsets.UTF_8))).substring(0, 26);
            assertThat(newLink).matches("[A-Z2-7]{26}");
            links.put(oldLink, newLink);
        }

        assertThat(after).hasSameSizeAs(before);
        for (Item old : before.values()) {
            String path = renamed(old.path(), dirs, links);
            Item now = after.get(path);
            assertThat(now).as(path).isNotNull();
            assertSameHeader(old.entry(), now.entry(), path);
            if (old.path().endsWith("/cache-id")) {
                assertThat(now.text()).isEqualTo(dirs.get(old.text()));
            } else if (old.path().startsWith("overlay2/") && old.path().endsWith("/link")) {
                assertThat(now.text()).isEqualTo(links.get(old.text()));
            } else if (old.path().startsWith("overlay2/") && old.path().endsWith("/lower")) {
                StringBuilder want = new StringBuilder();
                for (String part : old.text().split(":")) {
                    want.append(want.length() > 0 ? ":" : "").append("l/").append(links.get(part.substring(2)));
                }
                assertThat(now.text()).isEqualTo(want.toString());
            } else if (old.path().endsWith("/lastUpdated")) {
                assertThat(old.text()).matches("\\d{4}-.*Z");
                assertThat(now.text()).isEqualTo("2023-11-14T22:13:20Z");
            } else if (old.path().startsWith("overlay2/l/")) {
                String oldDir = old.entry().linkname.split("/")[1];
                assertThat(now.entry().linkname).isEqualTo("../" + dirs.get(oldDir) + "/diff");
            } else if (old.path().endsWith("/tar-split.json.gz")) {
                // Re-encoded in the canonical form: the same entries, vbake's gzip.
                assertThat(now.content()).as(path).isEqualTo(TarSplit.canonical(old.content(), path));
            } else {
                assertThat(now.content()).as(path).isEqualTo(old.content());
                assertThat(now.entry().linkname).as(path).isEqualTo(renamed(old.entry().linkname, dirs, links));
            }
        }
        // Every lower entry names a link that exists, and every link leads to its layer.
        for (Item i : after.values()) {
            if (i.path().startsWith("overlay2/") && i.path().endsWith("/lower")) {
                for (String part : i.text().split(":")) {
                    assertThat(after).containsKey("overlay2/" + part);
                }
            }
            if (i.path().startsWith("overlay2/") && i.path().endsWith("/link")) {
                String layer = i.path().split("/")[1];
                assertThat(after.get("overlay2/l/" + i.text()).entry().linkname).isEqualTo("../" + layer + "/diff");
            }
        }
        // The opaque directory's xattr moved with its layer.
        assertThat(after.values()).anySatisfy(i -> {
            assertThat(i.path()).endsWith("/diff/opt");
            assertThat(i.entry().records).containsEntry("SCHILY.xattr.trusted.overlay.opaque", "y");
        });
    }

    @Test
    void dockerVfsLayerDirectoriesFollowTheirCacheIds() throws Exception {
        Path in = bake(StoreKind.DOCKER_VFS, 1);
        Map<String, Item> before = read(in);
        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), normalize(in, StoreKind.DOCKER_VFS)));
        String layerdb = "image/vfs/layerdb/sha256/";
        int layers = 0;
        for (Item i : after.values()) {
            if (i.path().startsWith(layerdb) && i.path().endsWith("/cache-id")) {
                String chain = i.path().substring(layerdb.length(), i.path().length() - "/cache-id".length());
                assertThat(i.text()).isEqualTo(sha256Hex("vbake-cache-id:sha256:" + chain));
                String old = before.get(i.path()).text();
                assertThat(after).containsKey("vfs/dir/" + i.text()).doesNotContainKey("vfs/dir/" + old);
                assertThat(after.get("vfs/dir/" + i.text() + "/etc/os").content())
                        .isEqualTo(before.get("vfs/dir/" + old + "/etc/os").content());
                // Each layer is a copy with its own inodes: the hardlink stays inside its directory.
                assertThat(after.get("vfs/dir/" + i.text() + "/bin/sh").entry().linkname)
                        .isEqualTo("vfs/dir/" + i.text() + "/bin/hard");
                layers++;
            }
        }
        assertThat(layers).isEqualTo(3);
        assertThat(after.values().stream().filter(i -> i.path().endsWith("/lastUpdated")))
                .isNotEmpty().allSatisfy(i -> assertThat(i.text()).isEqualTo(EPOCH));
    }

    @Test
    void podmanLayerTimesAndLockTokensAreFixedAndImageTimesFromTheConfigKept() throws Exception {
        Path in = bake(StoreKind.PODMAN_OVERLAY, 1);
        Map<String, Item> before = read(in);
        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), normalize(in, StoreKind.PODMAN_OVERLAY)));

        byte[] layersBefore = before.get("overlay-layers/layers.json").content();
        byte[] layersAfter = after.get("overlay-layers/layers.json").content();
        JsonNode layers = JSON.readTree(layersAfter);
        assertThat(layers).hasSize(3).allSatisfy(l -> assertThat(l.get("created").asText()).isEqualTo(EPOCH));
        // Only the values changed: same bytes once the old times are put back in place.
        String restored = new String(layersAfter, StandardCharsets.UTF_8);
        for (JsonNode l : JSON.readTree(layersBefore)) {
            restored = restored.replaceFirst("\"created\":\"" + EPOCH + "\"",
                    "\"created\":\"" + l.get("created").asText() + "\"");
        }
        assertThat(restored).isEqualTo(new String(layersBefore, StandardCharsets.UTF_8));
        // Layer ids stay: they are content already.
        assertThat(layers.findValuesAsText("id")).isEqualTo(JSON.readTree(layersBefore).findValuesAsText("id"));

        assertThat(after.get("overlay-images/images.json").content())
                .isEqualTo(before.get("overlay-images/images.json").content());
        for (String lock : List.of("storage.lock", "overlay-layers/layers.lock", "overlay-images/images.lock")) {
            assertThat(before.get(lock).content()).as(lock).hasSize(64);
            assertThat(after.get(lock).content()).as(lock).isEmpty();
        }
        // Layer directories keep their names; their short links are derived from them.
        for (Item i : after.values()) {
            if (i.path().startsWith("overlay/") && i.path().endsWith("/link")) {
                String layer = i.path().split("/")[1];
                assertThat(before).containsKey("overlay/" + layer);
                assertThat(i.text()).isEqualTo(TreeNormalizer.linkNameFor(layer));
            }
        }
    }

    // ---- the exporter's encoding ----

    @Test
    void exporterOutputWithNothingToChangeKeepsEveryByte() throws Exception {
        Path edge = edgeCases().write(dir.resolve("edge.tar"));
        byte[] original = Files.readAllBytes(edge);
        // vbake-agent export-tree (Go 1.19's archive/tar) wrote exactly these bytes for this tree on disk:
        // the tar it produced had this digest. So the codec below is held against Go's encoding.
        assertThat(TreeNormalizerStores.sha256Hex(original)).isEqualTo(GO_EXPORTER_EDGE_CASES_SHA256);
        // Straight through the codec...
        assertThat(throughCodec(edge)).isEqualTo(original);
        // ...and through the normalizer, which finds no engine paths in it.
        assertThat(normalize(edge, StoreKind.DOCKER_OVERLAY2)).isEqualTo(original);
        assertThat(normalize(edge, StoreKind.PODMAN_OVERLAY)).isEqualTo(original);

        Map<String, Item> items = read(edge);
        assertThat(items.get("capped").entry().records)
                .containsEntry("SCHILY.xattr.security.capability",
                        latin1(HexFormat.of().parseHex("0100000200200000000000000000000000000000")))
                .containsEntry("SCHILY.xattr.user.bin", latin1(HexFormat.of().parseHex("00ff80fe0a3d")));
        assertThat(items.get("bigid").entry().uid).isEqualTo(3000000);
        assertThat(items).containsKey("caf\u00e9"); // the byte 0xe9, not UTF-8
        assertThat(items.get("wh").entry().type).isEqualTo((byte) '3');
        assertThat(items.get("h1").entry().linkname).isEqualTo("d".repeat(60) + "/h3");
    }

    @ParameterizedTest
    @EnumSource(StoreKind.class)
    void storesGoThroughTheCodecUnchanged(StoreKind kind) throws Exception {
        // Every header rule the stores hit (PAX paths, xattrs, big ids, USTAR prefixes) read and written back.
        Path in = bake(kind, 1);
        assertThat(throughCodec(in)).isEqualTo(Files.readAllBytes(in));
    }

    // ---- synthetic trees ----

    @Test
    void aHardlinkThatSortsFirstAfterRenamingTakesTheContent() throws Exception {
        // Two layers whose order flips once renamed; a file of the second is a hardlink to one of the first.
        String chainA = "sha256:" + "a".repeat(64);
        String chainB = "sha256:" + "b".repeat(64);
        String newA = TreeNormalizer.cacheIdFor(chainA);
        String newB = TreeNormalizer.cacheIdFor(chainB);
        boolean flip = newB.compareTo(newA) < 0;
        String oldA = flip ? "1111" : "2222";
        String oldB = flip ? "2222" : "1111";
        String cap = latin1(HexFormat.of().parseHex("0100000200200000000000000000000000000000"));
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("image/vfs/layerdb/sha256/" + "a".repeat(64) + "/cache-id", oldA);
        t.file("image/vfs/layerdb/sha256/" + "b".repeat(64) + "/cache-id", oldB);
        t.dir("vfs/dir/" + oldA);
        t.dir("vfs/dir/" + oldB);
        // In the walk the first path of the inode is in oldA's directory, which sorts first.
        String first = "vfs/dir/1111/bin";
        String second = "vfs/dir/2222/bin";
        t.file(first, "#!binary\n").mode(04755).xattr("security.capability", cap);
        t.hardlink(second, first);
        Path in = t.write(dir.resolve("in.tar"));
        assertThat(read(in).get(second).entry().type).isEqualTo((byte) '1');

        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), normalize(in, StoreKind.DOCKER_VFS)));
        String newFirst = "vfs/dir/" + (flip ? newB : newA) + "/bin";
        String newSecond = "vfs/dir/" + (flip ? newA : newB) + "/bin";
        List<String> order = new ArrayList<>(after.keySet());
        assertThat(order.indexOf(newFirst)).isLessThan(order.indexOf(newSecond));
        Entry carrier = after.get(newFirst).entry();
        assertThat(carrier.type).isEqualTo((byte) '0');
        assertThat(carrier.mode).isEqualTo(04755);
        assertThat(after.get(newFirst).text()).isEqualTo("#!binary");
        assertThat(carrier.records).containsEntry("SCHILY.xattr.security.capability", cap);
        Entry link = after.get(newSecond).entry();
        assertThat(link.type).isEqualTo((byte) '1');
        assertThat(link.linkname).isEqualTo(newFirst);
        assertThat(link.records).isNull();
    }

    @Test
    void podmanImageTimeFromTheClockIsFixedOneFromTheConfigKept() throws Exception {
        String fromConfig = "c".repeat(64);
        String fromClock = "d".repeat(64);
        String images = "[{\"id\":\"" + fromConfig + "\",\"names\":[\"x\\u003cy\"],\"created\":\"2025-01-01T01:00:00+01:00\","
                + "\"metadata\":\"{\\\"created\\\":\\\"keep\\\"}\"},"
                + "{\"id\":\"" + fromClock + "\",\"created\":\"2026-11-23T19:13:57.086422289Z\"}]";
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("vfs-images/" + fromConfig + "/" + bigDataName("sha256:" + fromConfig),
                "{\"created\":\"2025-01-01T00:00:00Z\",\"architecture\":\"amd64\"}");
        t.file("vfs-images/" + fromClock + "/" + bigDataName("sha256:" + fromClock), "{\"architecture\":\"amd64\"}");
        t.file("vfs-images/images.json", images);
        t.file("vfs-images/images.lock", "x".repeat(64));
        t.file("vfs-layers/layers.json", "[]");
        Path in = t.write(dir.resolve("in.tar"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TreeNormalizer.normalize(in, out, StoreKind.PODMAN_VFS, Instant.parse("2024-02-03T04:05:06.5Z"));
        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), out.toByteArray()));
        assertThat(after.get("vfs-images/images.json").text()).isEqualTo(images.replace(
                "2026-11-23T19:13:57.086422289Z", "2024-02-03T04:05:06.5Z"));
        assertThat(after.get("vfs-images/images.lock").content()).isEmpty();
    }

    @Test
    void containerLayersAndUnknownLinksAreLeftAndReported() throws Exception {
        String chain = "e".repeat(64);
        String container = "f".repeat(64);
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("image/overlay2/layerdb/sha256/" + chain + "/cache-id", "1234");
        t.file("image/overlay2/layerdb/mounts/c1/mount-id", container);
        t.file("image/overlay2/layerdb/mounts/c1/init-id", container + "-init");
        t.dir("overlay2/1234/diff");
        t.file("overlay2/1234/link", "AAAAAAAAAAAAAAAAAAAAAAAAAA");
        t.dir("overlay2/" + container + "/diff");
        t.file("overlay2/" + container + "/link", "CCCCCCCCCCCCCCCCCCCCCCCCCC");
        t.file("overlay2/" + container + "/lower", "l/AAAAAAAAAAAAAAAAAAAAAAAAAA:l/ZZZZZZZZZZZZZZZZZZZZZZZZZZ");
        t.dir("overlay2/9999/diff");
        t.symlink("overlay2/l/AAAAAAAAAAAAAAAAAAAAAAAAAA", "../1234/diff");
        t.symlink("overlay2/l/CCCCCCCCCCCCCCCCCCCCCCCCCC", "../" + container + "/diff");
        Path in = t.write(dir.resolve("in.tar"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Result result = TreeNormalizer.normalize(in, out, StoreKind.DOCKER_OVERLAY2);
        Map<String, Item> after = read(Files.write(dir.resolve("out.tar"), out.toByteArray()));

        String image = TreeNormalizer.cacheIdFor("sha256:" + chain);
        String imageLink = TreeNormalizer.linkNameFor(image);
        String containerLink = TreeNormalizer.linkNameFor(container);
        assertThat(after).containsKeys("overlay2/" + image + "/diff", "overlay2/" + container + "/diff",
                "overlay2/9999/diff", "overlay2/l/" + imageLink, "overlay2/l/" + containerLink);
        assertThat(after.get("overlay2/" + container + "/lower").text())
                .isEqualTo("l/" + imageLink + ":l/ZZZZZZZZZZZZZZZZZZZZZZZZZZ");
        assertThat(result.notes()).hasSize(3)
                .anyMatch(n -> n.contains("container layer(s) keep their random ids"))
                .anyMatch(n -> n.contains("overlay2/9999 is named by no layerdb cache-id"))
                .anyMatch(n -> n.contains("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    }

    @Test
    void namesThatClashAfterRenamingAreRefused() throws Exception {
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("image/vfs/layerdb/sha256/" + "1".repeat(64) + "/cache-id", "x");
        t.file("image/vfs/layerdb/sha256/" + "2".repeat(64) + "/cache-id", "x");
        Path in = t.write(dir.resolve("in.tar"));
        assertThatThrownBy(() -> normalize(in, StoreKind.DOCKER_VFS)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("share the cache-id x");
    }

    // ---- detection and bad input ----

    @Test
    void detectionNeedsExactlyOneStore() throws Exception {
        TreeNormalizerExporter plain = new TreeNormalizerExporter();
        plain.file("etc/os", "x");
        Path none = plain.write(dir.resolve("none.tar"));
        assertThatThrownBy(() -> TreeNormalizer.detect(none)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("not a docker or podman storage tree");
        TreeNormalizerExporter two = new TreeNormalizerExporter();
        two.dir("image/overlay2/layerdb");
        two.dir("image/vfs/layerdb");
        Path both = two.write(dir.resolve("both.tar"));
        assertThatThrownBy(() -> TreeNormalizer.detect(both)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("more than one");
        TreeNormalizerExporter layers = new TreeNormalizerExporter();
        layers.file("overlay-layers/layers.json", "[]");
        Path podman = layers.write(dir.resolve("podman.tar"));
        assertThat(TreeNormalizer.detect(podman)).isEqualTo(StoreKind.PODMAN_OVERLAY);
        assertThatThrownBy(() -> normalize(podman, StoreKind.DOCKER_OVERLAY2)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("looks like [podman/overlay], not docker/overlay2");
    }

    @Test
    void compressedTruncatedAndCorruptInputIsRefused() throws Exception {
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("etc/os", "x".repeat(2000));
        Path good = t.write(dir.resolve("good.tar")); // ./, ./etc/, ./etc/os and its 2000 bytes
        byte[] bytes = Files.readAllBytes(good);

        Path gz = dir.resolve("in.tar.gz");
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(gz))) {
            o.write(bytes);
        }
        assertThatThrownBy(() -> TreeNormalizer.detect(gz)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("compressed");

        Path cut = Files.write(dir.resolve("cut.tar"), java.util.Arrays.copyOf(bytes, 3 * 512 + 100));
        assertThatThrownBy(() -> normalize(cut, StoreKind.DOCKER_VFS)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("truncated");

        byte[] corrupt = bytes.clone();
        corrupt[512 + 10] ^= 1;
        Path bad = Files.write(dir.resolve("bad.tar"), corrupt);
        assertThatThrownBy(() -> normalize(bad, StoreKind.DOCKER_VFS)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("checksum");

        TreeNormalizerExporter hostile = new TreeNormalizerExporter();
        hostile.file("../evil", "x");
        Path escape = hostile.write(dir.resolve("escape.tar"));
        assertThatThrownBy(() -> normalize(escape, StoreKind.DOCKER_VFS)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("not a clean path");
    }

    // ---- the building blocks ----

    @Test
    void treeOrderSortsByComponentsBytewise() {
        List<String> paths = new ArrayList<>(List.of("a-b", "a/x", "ab", "a", "", "a.b", "a/x/y", "B", "\u00e9"));
        paths.sort(TreeNormalizer.TREE_ORDER);
        assertThat(paths).containsExactly("", "B", "a", "a/x", "a/x/y", "a-b", "a.b", "ab", "\u00e9");
    }

    @Test
    void derivedNamesLookLikeTheEnginesOwn() throws Exception {
        // RFC 4648 test vectors.
        assertThat(TreeNormalizer.base32("foobar".getBytes(StandardCharsets.US_ASCII))).isEqualTo("MZXW6YTBOI");
        assertThat(TreeNormalizer.base32("f".getBytes(StandardCharsets.US_ASCII))).isEqualTo("MY");
        assertThat(TreeNormalizer.linkNameFor("x")).matches("[A-Z2-7]{26}");
        assertThat(TreeNormalizer.cacheIdFor("sha256:00")).matches("[0-9a-f]{64}")
                .isEqualTo(sha256Hex("vbake-cache-id:sha256:00"));
        assertThat(TreeNormalizer.rfc3339(Instant.EPOCH)).isEqualTo(EPOCH);
        assertThat(TreeNormalizer.rfc3339(Instant.ofEpochSecond(1700000000L, 120000000))).isEqualTo("2023-11-14T22:13:20.12Z");
    }

    @Test
    void jsonSpliceTouchesOnlyTheNamedTopLevelMembers() throws Exception {
        String json = "[{\"a\":\"\\u003c\\\"\",\"created\":\"old\",\"n\":{\"created\":\"nested\"}},7,{\"created\":\"x\\\"y\"}]";
        byte[] out = TreeNormalizer.replaceMemberStrings(json.getBytes(StandardCharsets.UTF_8), "created",
                (i, old) -> i == 0 ? "new" : old + "!");
        assertThat(new String(out, StandardCharsets.UTF_8))
                .isEqualTo("[{\"a\":\"\\u003c\\\"\",\"created\":\"new\",\"n\":{\"created\":\"nested\"}},7,{\"created\":\"x\\\"y!\"}]");
    }

    // ---- helpers ----

    /** An entry read back, with its content. */
    record Item(String path, Entry entry, byte[] content) {
        String text() {
            return new String(content, StandardCharsets.ISO_8859_1).strip();
        }
    }

    private byte[] normalize(Path in, StoreKind kind) throws IOException, BadInputException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TreeNormalizer.normalize(in, out, kind);
        return out.toByteArray();
    }

    /** Every header read and written back, with its content. */
    private static byte[] throughCodec(Path tar) throws IOException, BadInputException {
        ByteArrayOutputStream copy = new ByteArrayOutputStream();
        try (FileChannel ch = FileChannel.open(tar)) {
            TreeNormalizerTar.Reader r = new TreeNormalizerTar.Reader(ch, tar.toString());
            TreeNormalizerTar.Writer w = new TreeNormalizerTar.Writer(copy);
            for (Entry e; (e = r.next()) != null; ) {
                w.writeHeader(e);
                if (e.hasData()) {
                    w.write(r.read(e.dataOffset, (int) e.size));
                    w.pad(e.size);
                }
            }
            w.close();
        }
        return copy.toByteArray();
    }

    /** Every entry by path, in archive order. */
    private static Map<String, Item> read(Path tar) throws IOException, BadInputException {
        Map<String, Item> items = new LinkedHashMap<>();
        try (FileChannel ch = FileChannel.open(tar)) {
            TreeNormalizerTar.Reader r = new TreeNormalizerTar.Reader(ch, tar.toString());
            for (Entry e; (e = r.next()) != null; ) {
                items.put(e.path, new Item(e.path, e, e.hasData() ? r.read(e.dataOffset, (int) e.size) : new byte[0]));
            }
        }
        return items;
    }

    /** Bake {@code n} of the images into a fresh store of that kind, as the exporter writes it. */
    private Path bake(StoreKind kind, int n) throws IOException {
        return TreeNormalizerStores.bake(kind, n).write(dir.resolve(kind.name().toLowerCase() + "-" + n + ".tar"));
    }

    /**
     * A directory made to hit every header rule of the exporter: a path over 100 bytes that USTAR
     * can split and one it cannot, a single 101-byte name, a name that is not UTF-8 and one that
     * is, a 187-byte symlink target and a UTF-8 one, three hardlinks, a whiteout char device 0/0, a
     * block device, a FIFO, a binary security.capability and user.bin xattr, trusted.overlay.opaque,
     * uid/gid 3000000/3000001 (too big for the octal field), a setuid file, an empty file and a
     * 513-byte one.
     */
    private static TreeNormalizerExporter edgeCases() {
        String d = "d".repeat(60);
        String e = "e".repeat(60);
        String unicode = TreeNormalizerExporter.utf8("\u00fcn\u00efc\u00f6d\u00e9");
        TreeNormalizerExporter t = new TreeNormalizerExporter();
        t.file("bigid", "big\n").owner(3000000, 3000001);
        t.device("blk", '4', 7, 0);
        t.file("caf\u00e9", "x");
        t.file("capped", "cap\n")
                .xattr("security.capability", HexFormat.of().parseHex("0100000200200000000000000000000000000000"))
                .xattr("user.bin", HexFormat.of().parseHex("00ff80fe0a3d"));
        t.file(d + "/" + e + "/" + d + "/file", "deep\n");
        t.file(d + "/" + e + "/short/f", "s\n");
        t.file(d + "/h3", "hard\n").mtime(1700000000L);
        t.file("empty", "");
        t.file("f513", "z".repeat(513));
        t.fifo("fifo");
        t.hardlink("h1", d + "/h3");
        t.hardlink("h2", d + "/h3");
        t.symlink("longlink", d + "/" + e + "/" + d + "/file");
        t.file("n".repeat(101), "long\n");
        t.dir("opq").xattr("trusted.overlay.opaque", "y");
        t.file("suid", "suid\n").mode(04755);
        t.symlink("utf8link", unicode);
        t.device("wh", '3', 0, 0);
        t.file(unicode, "u\n");
        return t;
    }

    private static void assertSameHeader(Entry a, Entry b, String what) {
        assertThat(b.type).as(what).isEqualTo(a.type);
        assertThat(b.mode).as(what).isEqualTo(a.mode);
        assertThat(b.uid).as(what).isEqualTo(a.uid);
        assertThat(b.gid).as(what).isEqualTo(a.gid);
        assertThat(b.mtime).as(what).isEqualTo(a.mtime);
        assertThat(b.devMajor).as(what).isEqualTo(a.devMajor);
        assertThat(b.devMinor).as(what).isEqualTo(a.devMinor);
        assertThat(b.records).as(what).isEqualTo(a.records);
    }

    private static String renamed(String path, Map<String, String> dirs, Map<String, String> links) {
        String[] c = path.split("/", -1);
        if (c.length >= 3 && c[0].equals("overlay2") && c[1].equals("l") && links.containsKey(c[2])) {
            c[2] = links.get(c[2]);
        } else if (c.length >= 2 && c[0].equals("overlay2") && dirs.containsKey(c[1])) {
            c[1] = dirs.get(c[1]);
        }
        return String.join("/", c);
    }

    private static String strip(String name) {
        String n = name.substring(2);
        return n.endsWith("/") ? n.substring(0, n.length() - 1) : n;
    }

    private static String sha256Hex(String s) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
    }

    private static String bigDataName(String key) {
        return "=" + Base64.getEncoder().encodeToString(key.getBytes(StandardCharsets.UTF_8));
    }

    private static String latin1(byte[] b) {
        return new String(b, StandardCharsets.ISO_8859_1);
    }
}
