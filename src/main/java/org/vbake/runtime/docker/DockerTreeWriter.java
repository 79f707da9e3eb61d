package org.vbake.runtime.docker;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.image.LayerBlobs;
import org.vbake.image.LayerScan;
import org.vbake.image.MediaTypes;
import org.vbake.image.ResolvedImage;
import org.vbake.image.registry.ImageRef;
import org.vbake.runtime.HostTreeWriter;
import org.vbake.storage.FsTree;
import org.vbake.storage.LayerSpool;
import org.vbake.storage.NotMirroredException;
import org.vbake.storage.TreeNormalizer;
import org.vbake.storage.UnpackReplay;

/**
 * dockerd's {@code /var/lib/docker} after {@code docker load} of the bake's images, {@code docker
 * tag} of their names and vbake's normalisation, written on the host. What dockerd writes, per
 * layer (moby {@code layer/layer_store.go}, {@code daemon/graphdriver/overlay2}, {@code vfs}):
 * {@code image/DRIVER/layerdb/sha256/CHAIN/} with diff, size, cache-id, parent and tar-split;
 * the driver's directory for the layer (overlay2: {@code diff/}, {@code link}, {@code lower},
 * {@code work/}, {@code committed} in the parent, the {@code l/} symlink; vfs: a full copy of the
 * layer below with the layer applied); per image the config in {@code imagedb/content} and, once
 * tagged, {@code lastUpdated}; {@code repositories.json} with the tags and RepoDigests. Ids that
 * dockerd draws at random are the normaliser's derived ones, and the clock is SOURCE_DATE_EPOCH.
 */
final class DockerTreeWriter implements HostTreeWriter {

    /** The engine versions of the guest suites, which differ in a few places. */
    enum Version {
        /** bookworm's docker.io 20.10.24 (tar-split 0.11.2, Go 1.19). */
        V20_10("20.10"),
        /** trixie's docker.io 26.1.5 (tar-split 0.11.6, Go 1.24). */
        V26_1("26.1");

        final String label;

        Version(String label) {
            this.label = label;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Set<String> LAYER_TYPES = Set.of(MediaTypes.OCI_LAYER, MediaTypes.OCI_LAYER_GZIP,
            MediaTypes.OCI_LAYER_ZSTD, MediaTypes.DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar");

    private final Version version;
    private final String driver;

    DockerTreeWriter(Version version, String driver) {
        this.version = version;
        this.driver = driver;
    }

    static HostTreeWriter forSuite(String suite, String driver) {
        return switch (suite) {
            case "trixie" -> new DockerTreeWriter(Version.V26_1, driver);
            case "bookworm" -> new DockerTreeWriter(Version.V20_10, driver);
            default -> null;
        };
    }

    @Override
    public String describe() {
        return "docker " + version.label + " " + driver;
    }

    /** Go's pkg/archive as this docker version has it (dockerd runs with umask 022). */
    private UnpackReplay.Rules unpackRules(boolean overlay) {
        if (overlay) {
            return new UnpackReplay.Rules(022, 0755, true, true, false, Set.of(), false);
        }
        // UnpackLayer runs with umask 0; 20.10 makes implied directories 0600, 26.1 0755.
        return new UnpackReplay.Rules(0, version == Version.V20_10 ? 0600 : 0755, version != Version.V20_10, false,
                false, Set.of(), false);
    }

    /** One layer as the store holds it. */
    private record Layer(String chainId, String cacheId, String link, String lower, FsTree vfsRoot) {
    }

    @Override
    public Tree prepare(List<Image> images, Path spoolDir, long epoch, LayerScan.Rules limits, LayerObserver observer,
            EventListener events)
            throws IOException, NotMirroredException, BadInputException {
        String fixedTime = TreeNormalizer.rfc3339(Instant.ofEpochSecond(epoch));
        FsTree root = DockerSkeleton.tree(driver, version == Version.V20_10);
        String imageDir = "image/" + driver;
        String layerdb = imageDir + "/layerdb/sha256";
        boolean overlay = driver.equals("overlay2");
        LayerSpool spool = new LayerSpool(spoolDir);
        boolean done = false;
        try {
            Map<String, Layer> layers = new HashMap<>();
            Map<String, Map<String, String>> repositories = new TreeMap<>();
            for (Image img : images) {
                ResolvedImage image = img.image();
                Layer parent = null;
                for (ResolvedImage.Layer l : image.layers()) {
                    if (!LAYER_TYPES.contains(l.mediaType())) {
                        throw new NotMirroredException("a layer of media type " + l.mediaType());
                    }
                    String chain = parent == null ? l.diffId().toString()
                            : "sha256:" + org.vbake.image.Digest.of((parent.chainId() + " " + l.diffId()).getBytes(StandardCharsets.UTF_8)).hex();
                    Layer layer = layers.get(chain);
                    if (layer == null) {
                        layer = addLayer(root, spool, l, chain, parent, overlay, layerdb, image.source(), limits, observer, events);
                        layers.put(chain, layer);
                    }
                    parent = layer;
                }
                String id = image.configDigest().hex();
                String content = imageDir + "/imagedb/content/sha256/" + id;
                if (root.lstat(content) == null) {
                    file(root, content, 0600, image.configBytes());
                }
                if (!img.tags().isEmpty()) {
                    String meta = imageDir + "/imagedb/metadata/sha256/" + id;
                    if (root.lstat(meta) == null) {
                        root.mkdir(meta, 0700, 0, 0);
                    }
                    root.removeAll(meta + "/lastUpdated");
                    file(root, meta + "/lastUpdated", 0600, fixedTime.getBytes(StandardCharsets.US_ASCII));
                }
                for (String tag : img.tags()) {
                    ImageRef ref = parse(tag);
                    String repo = DockerRuntime.familiar(ref);
                    // A name moves to the image loaded last, as load and tag move it.
                    for (Map<String, String> refs : repositories.values()) {
                        refs.remove(repo + ":" + ref.tag());
                    }
                    repositories.computeIfAbsent(repo, k -> new TreeMap<>()).put(repo + ":" + ref.tag(),
                            image.configDigest().toString());
                }
                if (img.repoDigest() != null && image.repository() != null) {
                    String repo = DockerRuntime.familiar(parse(image.repository()));
                    repositories.computeIfAbsent(repo, k -> new TreeMap<>()).put(repo + "@" + img.repoDigest(),
                            image.configDigest().toString());
                }
            }
            repositories.values().removeIf(Map::isEmpty);
            Map<String, Object> store = Map.of("Repositories", repositories);
            String repoFile = imageDir + "/repositories.json";
            root.removeAll(repoFile);
            file(root, repoFile, 0600, JSON.writeValueAsBytes(store));
            done = true;
            return new org.vbake.runtime.SpooledTree(root, spool, epoch);
        } finally {
            if (!done) {
                spool.close();
            }
        }
    }

    private Layer addLayer(FsTree root, LayerSpool spool, ResolvedImage.Layer l, String chain, Layer parent,
            boolean overlay, String layerdb, String source, LayerScan.Rules limits,
            LayerObserver observer, EventListener events) throws IOException, NotMirroredException, BadInputException {
        String cacheId = TreeNormalizer.cacheIdFor(chain);
        long t0 = System.nanoTime();
        FsTree diff;
        UnpackReplay replay;
        if (overlay) {
            diff = new FsTree(0755, 0, 0);
            replay = UnpackReplay.overlay(diff, unpackRules(true));
        } else {
            diff = new FsTree(0755, 0, 0);
            if (parent != null) {
                // copy.DirCopy without the opaque xattrs: of the attributes only capabilities survive.
                diff.copyFrom(parent.vfsRoot(), FsTree.CAPABILITY::equals);
            }
            if (version == Version.V26_1) {
                // The unpack pivots into the layer root through a .pivot_root temp dir made there.
                diff.touch("");
            }
            replay = UnpackReplay.full(diff, unpackRules(false));
        }
        LayerSpool.Read read;
        String what = source + ": layer " + l.digest();
        try (InputStream in = LayerBlobs.open(l, what)) {
            LayerSpool.Applier seen = observer.observe(l);
            read = spool.read(in, seen == null ? replay : (h, content) -> {
                replay.entry(h, content);
                seen.entry(h, content);
            }, limits.maxBytes());
        } catch (LayerSpool.TooLarge e) {
            throw LayerScan.tooLarge(what, limits);
        }
        replay.finish();
        if (!read.diffId().equals(l.diffId().toString())) {
            throw new IOException(what + " changed while it was read: its content is " + read.diffId()
                    + ", the config says " + l.diffId());
        }
        long size;
        if (overlay) {
            size = directorySize(diff);
            String dir = "overlay2/" + cacheId;
            root.mkdir(dir, 0710, 0, 0);
            root.graft(dir + "/diff", diff);
            String link = TreeNormalizer.linkNameFor(cacheId);
            root.symlink("overlay2/l/" + link, "../" + cacheId + "/diff");
            file(root, dir + "/link", 0644, link.getBytes(StandardCharsets.US_ASCII));
            String lower = null;
            if (parent != null) {
                root.mkdir(dir + "/work", 0700, 0, 0);
                String committed = "overlay2/" + parent.cacheId() + "/committed";
                if (root.lstat(committed) == null) {
                    file(root, committed, 0600, new byte[0]);
                }
                lower = "l/" + parent.link() + (parent.lower() != null ? ":" + parent.lower() : "");
                file(root, dir + "/lower", 0644, lower.getBytes(StandardCharsets.US_ASCII));
            }
            addLayerdb(root, layerdb, chain, cacheId, l.diffId().toString(), parent, size, read.tarSplitGz());
            events.on(new Event.Debug("host writer: layer " + l.diffId().shortId() + " (" + read.entries()
                    + " entries) in " + (System.nanoTime() - t0) / 1_000_000 + " ms"));
            return new Layer(chain, cacheId, link, lower, null);
        }
        size = replay.headerSizes();
        if (root.lstat("vfs") == null) {
            root.mkdir("vfs", 0710, 0, 0);
            root.mkdir("vfs/dir", 0710, 0, 0);
        }
        if (version == Version.V20_10) {
            // docker-applyLayer makes and removes a temp directory in the layer root: its mtime is the clock.
            diff.touch("");
        }
        root.graft("vfs/dir/" + cacheId, diff);
        addLayerdb(root, layerdb, chain, cacheId, l.diffId().toString(), parent, size, read.tarSplitGz());
        events.on(new Event.Debug("host writer: layer " + l.diffId().shortId() + " (" + read.entries()
                + " entries) in " + (System.nanoTime() - t0) / 1_000_000 + " ms"));
        return new Layer(chain, cacheId, null, null, diff);
    }

    private static void addLayerdb(FsTree root, String layerdb, String chain, String cacheId, String diffId,
            Layer parent, long size, byte[] tarSplit) throws NotMirroredException {
        String dir = layerdb + "/" + chain.substring("sha256:".length());
        root.mkdir(dir, 0700, 0, 0);
        file(root, dir + "/cache-id", 0644, cacheId.getBytes(StandardCharsets.US_ASCII));
        file(root, dir + "/diff", 0644, diffId.getBytes(StandardCharsets.US_ASCII));
        if (parent != null) {
            file(root, dir + "/parent", 0644, parent.chainId().getBytes(StandardCharsets.US_ASCII));
        }
        file(root, dir + "/size", 0644, Long.toString(size).getBytes(StandardCharsets.US_ASCII));
        file(root, dir + "/tar-split.json.gz", 0644, tarSplit);
    }

    /** moby's directory.Size: the sizes of all non-directories, each inode once, zero sizes skipped. */
    static long directorySize(FsTree tree) {
        Map<FsTree.Inode, Boolean> seen = new IdentityHashMap<>();
        long[] sum = {0};
        tree.visit(inode -> {
            if (inode.type() == FsTree.Type.DIR) {
                return;
            }
            long s = switch (inode.type()) {
                case FILE -> inode.content() == null ? 0 : inode.content().size();
                case SYMLINK -> inode.target().length();
                default -> 0;
            };
            if (s > 0 && seen.put(inode, Boolean.TRUE) == null) {
                sum[0] += s;
            }
        });
        return sum[0];
    }

    static void file(FsTree root, String path, int mode, byte[] content) throws NotMirroredException {
        root.create(path, FsTree.Type.FILE, mode, 0, 0);
        root.write(path, FsTree.Content.of(content));
    }

    private static ImageRef parse(String ref) throws NotMirroredException {
        try {
            return ImageRef.parse(ref);
        } catch (BadInputException e) {
            throw new NotMirroredException("an image name docker would read differently (" + ref + ")");
        }
    }

}
