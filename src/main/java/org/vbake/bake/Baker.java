package org.vbake.bake;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.BlobCache;
import org.vbake.image.Digest;
import org.vbake.image.LocalImageSource;
import org.vbake.image.ResolvedImage;
import org.vbake.image.RootfsImage;
import org.vbake.image.registry.ImageRef;
import org.vbake.image.registry.RegistryAuth;
import org.vbake.image.registry.RegistryClient;
import org.vbake.instance.Trees;
import org.vbake.process.ProcessRunner;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.runtime.HostTreeWriter;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;
import org.vbake.session.ImageLoader;
import org.vbake.storage.InputDisk;
import org.vbake.storage.NotMirroredException;
import org.vbake.storage.StorageFile;
import org.vbake.storage.TreeNormalizer;

/**
 * {@code vbake bake}: a manifest in, a reproducible storage tree and its bill of materials out.
 *
 * <p>Every image is resolved and verified on the host first (a registry pull pinned by digest, a
 * local layout or archive), then one guest boot loads what the bake's own state disk does not
 * hold yet, drops what the manifest no longer names, and exports the tree. Random ids the engine
 * chose are replaced by ones derived from content, so the same manifest gives the same bytes.
 * Everything is written into a temporary directory beside the output, which replaces the output
 * only when complete.
 */
public final class Baker {

    /** What a bake needs besides the manifest. */
    public record Options(Path manifest, Path outDir, Path cacheRoot, Path stateRoot, boolean offline, boolean fresh,
            Set<String> insecureRegistries, Path authFile, Long sourceDateEpoch, Map<String, String> env,
            int memoryMb, int cpus, boolean resume, Writer writer, boolean noCache, String cacheRegistry) {
    }

    /** Who writes the storage tree. */
    public enum Writer {
        /** The host writer where it mirrors the engine for these inputs, else the guest's engine. */
        AUTO,
        /** The host writer, or an error saying why not. */
        HOST,
        /** The engine in a target-arch guest. */
        GUEST;

        public static Writer parse(String s) throws BadInputException {
            for (Writer w : values()) {
                if (w.name().equalsIgnoreCase(s)) {
                    return w;
                }
            }
            throw new BadInputException("--writer " + s + ": choose host, guest or auto");
        }
    }

    /**
     * What a bake produced.
     *
     * @param writer who wrote the tree: {@code host (docker 26.1 overlay2)} or {@code guest (...)}
     */
    public record Result(Path outDir, List<Path> files, int loaded, int reused, Duration took, String writer,
            Reuse reuse) {
    }

    /** Whether a bake reused an earlier one's output. */
    public enum Reuse {
        /** It baked. */
        NONE,
        /** {@code -o} already held the output for the same inputs: nothing was written. */
        UP_TO_DATE,
        /** The output came from the bake cache. */
        CACHED,
        /** The output came from the bake cache shared through a registry. */
        DOWNLOADED
    }

    /** The name of the listing. */
    public static final String LISTING = "listing.json";

    private final ProcessRunner runner;
    private final EventListener events;

    public Baker(ProcessRunner runner, EventListener events) {
        this.runner = runner;
        this.events = events;
    }

    private record Planned(BakeManifest.Image entry, ResolvedImage image, Digest repoDigest, List<String> tags) {
    }

    public Result bake(Options o) throws VbakeException, InterruptedException, IOException {
        long t0 = System.nanoTime();
        BakeManifest manifest = BakeManifestReader.read(o.manifest());
        byte[] manifestBytes = Files.readAllBytes(o.manifest());
        BakeOutput.check(o.outDir());
        ContainerRuntime runtime = ContainerRuntime.of(manifest.runtime(), manifest.driver());
        long epoch = o.sourceDateEpoch() != null ? o.sourceDateEpoch() : 0L;
        BlobCache cache = new BlobCache(o.cacheRoot());

        List<Planned> planned = resolve(manifest, o, cache, epoch);
        HostTreeWriter hostWriter = chooseWriter(manifest, runtime, o);
        String writerId = hostWriter == null ? "guest: " + runtime.kind().id() + " " + manifest.suite() + " "
                + runtime.driver() : o.writer().name().toLowerCase(java.util.Locale.ROOT) + ": " + hostWriter.describe();
        List<BakeCache.Input> inputs = new ArrayList<>();
        Map<String, byte[]> customUnits = new java.util.TreeMap<>();
        for (Planned p : planned) {
            inputs.add(new BakeCache.Input(p.image(), p.tags(), p.repoDigest()));
            if (p.entry().unit() != null) {
                String file = runtime.unitDirName() + "/" + p.entry().unit().getFileName();
                if (customUnits.put(file, CustomUnits.read(p.entry(), manifest.runtime(), runtime, p.tags(),
                        p.image().configDigest())) != null) {
                    throw new BadInputException(p.entry().describe() + ": unit " + file + " is another image's too",
                            "give each image's unit its own file name");
                }
            }
        }
        Map<String, String> unitDigests = new java.util.TreeMap<>();
        customUnits.forEach((f, b) -> unitDigests.put(f, Digest.of(b).toString()));
        for (ComposeStack stack : manifest.stacks()) {
            unitDigests.put("compose " + stack.project(), Digest.of(stack.content()).toString());
        }
        String key = BakeCache.key(manifestBytes, manifest, inputs, writerId + " units " + unitDigests, epoch);
        BakeCache results = new BakeCache(o.cacheRoot());
        if (!o.fresh() && !o.noCache() && BakeCache.upToDate(o.outDir(), key)) {
            events.on(new Event.Progress(o.outDir() + " is up to date (same inputs as its bake)"));
            return reused(o, planned, t0, Reuse.UP_TO_DATE);
        }

        Path work = BakeOutput.newWorkDir(o.outDir());
        int loaded;
        try {
            if (!o.fresh() && !o.noCache() && results.restore(key, work)) {
                events.on(new Event.Progress("reusing the output of an earlier bake of the same inputs (bake cache)"));
                BakeOutput.replace(work, o.outDir());
                return reused(o, planned, t0, Reuse.CACHED);
            }
            RegistryBakeCache shared = o.cacheRegistry() == null ? null : new RegistryBakeCache(
                    RegistryClient.create(o.insecureRegistries(), RegistryAuth.load(o.authFile(), o.env(), events), events,
                            null, false), RegistryBakeCache.checkRepository(o.cacheRegistry()), events);
            if (shared != null && !o.fresh() && !o.noCache() && shared.download(key, work)) {
                try {
                    results.store(key, work);
                } catch (IOException e) {
                    events.on(new Event.Debug("bake cache: cannot keep this bake (" + e.getMessage() + ")"));
                }
                BakeOutput.replace(work, o.outDir());
                return reused(o, planned, t0, Reuse.DOWNLOADED);
            }
            ImageLoader loader = new ImageLoader(runtime, events, ImageLoader.rules(runtime, o.cacheRoot(), o.env()));
            for (Planned p : planned) {
                loader.checkDepth(p.image());
            }
            Path tree = work.resolve("storage." + manifest.output().id());
            boolean ext4 = manifest.output() == BakeManifest.Output.EXT4;
            // An ext4 image is made from the tree as a plain tar.
            Path treeTar = ext4 ? work.resolve(".tree.tar") : tree;
            String writer = null;
            if (hostWriter != null) {
                // The host writer reads each layer once, bounded by the same limit; a layer its
                // replay refuses (a hostile entry) goes to the guest path, whose scan names it.
                loaded = writeOnHost(hostWriter, planned, o, work, treeTar, epoch, loader.rules());
                writer = loaded >= 0 ? "host (" + hostWriter.describe() + ")" : null;
            } else {
                loaded = -1;
            }
            if (writer == null) {
                Path rawTree = work.resolve(".raw-tree.tar");
                loaded = runGuest(manifest, runtime, planned, o, rawTree);
                normalize(rawTree, treeTar, epoch);
                Files.delete(rawTree);
                writer = "guest (" + runtime.kind().id() + " " + manifest.suite() + " " + runtime.driver() + ")";
            }
            com.fasterxml.jackson.databind.node.ObjectNode partition = null;
            if (ext4) {
                partition = packExt4(manifest, runtime, o, treeTar, tree, epoch);
                Files.delete(treeTar);
            }
            List<Path> files = writeOutputs(manifest, runtime, planned, o, work, tree, writer, customUnits, partition);
            long td = System.nanoTime();
            BakeOutput.writeMarker(work, digests(work, files), key);
            events.on(new Event.Phase("output digests", Duration.ofNanos(System.nanoTime() - td)));
            try {
                long ts = System.nanoTime();
                results.store(key, work);
                events.on(new Event.Phase("bake cache store", Duration.ofNanos(System.nanoTime() - ts)));
            } catch (IOException e) {
                events.on(new Event.Debug("bake cache: cannot keep this bake (" + e.getMessage() + ")"));
            }
            BakeOutput.replace(work, o.outDir());
            if (shared != null) {
                shared.upload(key, o.outDir());
            }
            List<Path> finalFiles = new ArrayList<>();
            for (Path f : files) {
                finalFiles.add(o.outDir().resolve(work.relativize(f)));
            }
            Duration took = Duration.ofNanos(System.nanoTime() - t0);
            events.on(new Event.Phase("bake", took));
            return new Result(o.outDir(), finalFiles, loaded, planned.size() - loaded, took, writer, Reuse.NONE);
        } finally {
            if (Files.exists(work)) {
                Trees.deleteTree(work);
            }
        }
    }

    /** The result of a bake whose output was already there or came from the cache. */
    private Result reused(Options o, List<Planned> planned, long t0, Reuse how) throws IOException {
        List<Path> files = new ArrayList<>();
        try (java.util.stream.Stream<Path> s = Files.walk(o.outDir())) {
            s.filter(Files::isRegularFile).filter(p -> !p.getFileName().toString().equals(BakeOutput.MARKER))
                    .sorted().forEach(files::add);
        }
        String writer = "";
        Path listing = o.outDir().resolve(LISTING);
        if (Files.isRegularFile(listing)) {
            writer = new com.fasterxml.jackson.databind.ObjectMapper().readTree(listing.toFile()).path("writer").asText("");
        }
        Duration took = Duration.ofNanos(System.nanoTime() - t0);
        events.on(new Event.Phase("bake", took));
        return new Result(o.outDir(), files, 0, planned.size(), took, writer, how);
    }

    /** The host writer to try, or null for the guest; {@code --writer host} without one is an error. */
    private HostTreeWriter chooseWriter(BakeManifest manifest, ContainerRuntime runtime, Options o)
            throws BadInputException {
        if (o.writer() == Writer.GUEST) {
            return null;
        }
        HostTreeWriter w = runtime.hostWriter(manifest.suite());
        if (w == null) {
            String why = "no host writer for " + runtime.kind().id() + " " + runtime.driver() + " in " + manifest.suite();
            if (o.writer() == Writer.HOST) {
                throw new BadInputException("--writer host: " + why, "use --writer guest (or auto)");
            }
            events.on(new Event.Progress(why + "; the " + manifest.arch() + " guest writes the tree"));
        }
        return w;
    }

    /**
     * Writes the tree on the host. Returns the number of images written, or -1 (after one line
     * saying why) when the writer cannot mirror the engine for these inputs and {@code --writer}
     * allows the guest.
     */
    private int writeOnHost(HostTreeWriter writer, List<Planned> planned, Options o, Path work, Path tree, long epoch,
            org.vbake.image.LayerScan.Rules limits) throws IOException, VbakeException {
        long t0 = System.nanoTime();
        List<HostTreeWriter.Image> images = new ArrayList<>();
        for (Planned p : planned) {
            images.add(new HostTreeWriter.Image(p.image(), p.tags(), p.repoDigest()));
        }
        events.on(new Event.Progress("writing the storage tree on the host (" + writer.describe() + ")"));
        HostTreeWriter.Tree prepared;
        try {
            prepared = writer.prepare(images, work, epoch, limits, packageRecorder, events);
        } catch (NotMirroredException e) {
            recordedLayers.clear(); // a layer may have been recorded in part
            if (o.writer() == Writer.HOST) {
                throw new BadInputException("--writer host: the host writer (" + writer.describe()
                        + ") does not mirror the engine for " + e.getMessage(), "use --writer guest (or auto)");
            }
            events.on(new Event.Progress("the host writer does not mirror the engine for " + e.getMessage()
                    + "; the guest writes the tree"));
            return -1;
        }
        events.on(new Event.Phase("host writer: layers read", Duration.ofNanos(System.nanoTime() - t0)));
        try (prepared; StorageFile sf = StorageFile.create(tree, "bake output")) {
            long tw = System.nanoTime();
            prepared.write(sf.stream());
            sf.commit();
            events.on(new Event.Phase("host writer: tree written", Duration.ofNanos(System.nanoTime() - tw)));
        }
        events.on(new Event.Phase("host writer", Duration.ofNanos(System.nanoTime() - t0)));
        return planned.size();
    }

    /** What the host writer's read of each layer recorded for the package listing, by diff ID. */
    private final Map<String, PackagesScanner.LayerOps> recordedLayers = new java.util.concurrent.ConcurrentHashMap<>();

    private final HostTreeWriter.LayerObserver packageRecorder = layer -> {
        PackagesScanner.Recorder r = new PackagesScanner.Recorder();
        recordedLayers.put(layer.diffId().toString(), r.ops);
        return (h, content) -> {
            char type = switch (h.type()) {
                case org.vbake.storage.LayerTar.DIR -> 'd';
                case org.vbake.storage.LayerTar.REG -> 'f';
                case org.vbake.storage.LayerTar.SYMLINK -> 's';
                case org.vbake.storage.LayerTar.LINK -> 'h';
                default -> 'o';
            };
            if (h.type() == org.vbake.storage.LayerTar.GLOBAL) {
                return;
            }
            try {
                // Names are the tar's bytes; the scanner works on text as commons-compress reads it.
                r.entry(new String(h.name().getBytes(java.nio.charset.StandardCharsets.ISO_8859_1),
                        java.nio.charset.StandardCharsets.UTF_8), type, h.linkname(), h.size(), () -> {
                            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
                            if (content != null) {
                                content.copyTo(b);
                            }
                            return b.toByteArray();
                        });
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        };
    };

    private void normalize(Path rawTree, Path tree, long epoch) throws IOException, VbakeException {
        events.on(new Event.Progress("normalising ids and writing " + tree.getFileName()));
        try (StorageFile sf = StorageFile.create(tree, "bake output")) {
            TreeNormalizer.Result n = TreeNormalizer.normalize(rawTree, sf.stream(), TreeNormalizer.detect(rawTree),
                    java.time.Instant.ofEpochSecond(epoch));
            for (String note : n.notes()) {
                events.on(new Event.Debug("normaliser: " + note));
            }
            sf.commit();
        }
    }

    private List<Planned> resolve(BakeManifest manifest, Options o, BlobCache cache, long epoch)
            throws VbakeException, IOException {
        RegistryClient client = null;
        List<Planned> planned = new ArrayList<>();
        for (BakeManifest.Image entry : manifest.images()) {
            try {
                ResolvedImage image;
                Digest repoDigest = null;
                List<String> tags = new ArrayList<>();
                switch (entry.kind()) {
                    case REF: {
                        if (client == null) {
                            client = new RegistryClient(o.insecureRegistries(),
                                    RegistryAuth.load(o.authFile(), o.env(), events), events);
                            if (o.offline()) {
                                client.offline();
                            }
                        }
                        ImageRef ref = ImageRef.parse(entry.ref());
                        RegistryClient.Result r = client.resolve(ref, manifest.arch(), false, cache);
                        image = r.image();
                        repoDigest = r.repoDigest();
                        if (ref.tag() != null) {
                            tags.add(ref.name() + ":" + ref.tag());
                        }
                        break;
                    }
                    case ROOTFS:
                        events.on(new Event.Progress("making a one-layer image of " + entry.path()));
                        image = RootfsImage.build(entry.path(), manifest.arch(), entry.command(), Map.of(), epoch, cache);
                        break;
                    default:
                        LocalImageSource.Spec spec = LocalImageSource.Spec.parse(entry.path().toString());
                        image = LocalImageSource.read(spec.path(), spec.select(), manifest.arch(), false, cache,
                                events);
                        tags.addAll(image.tags());
                }
                if (entry.name() != null) {
                    tags.add(0, ImageLoader.fullTag(entry.name()));
                }
                for (String t : entry.tags()) {
                    tags.add(ImageLoader.fullTag(t));
                }
                // Named as the manifest names it, not by host path: the listing stays the same on any checkout.
                image = image.withSource(entry.kind().key() + " " + entry.source());
                planned.add(new Planned(entry, image, repoDigest, dedupe(tags)));
            } catch (BadInputException e) {
                throw new BadInputException(entry.describe() + ": " + e.getMessage(), e.hint());
            }
        }
        return planned;
    }

    /** One boot: load what is missing, drop what is not wanted, export the raw tree. Returns how many were loaded. */
    private int runGuest(BakeManifest manifest, ContainerRuntime runtime, List<Planned> planned, Options o,
            Path rawTree) throws VbakeException, InterruptedException, IOException {
        GuestOptions options = guestOptions(manifest, runtime, o, manifest.suite());
        Path stateRoot = options.stateRoot();
        ImageLoader loader = new ImageLoader(runtime, events, ImageLoader.rules(runtime, o.cacheRoot(), o.env()));
        if (o.fresh() && Files.exists(stateRoot)) {
            events.on(new Event.Progress("--fresh: removing the previous bake's store " + stateRoot));
            Trees.deleteTree(stateRoot);
        }
        Set<String> present = presentImages(stateRoot, manifest.suite());
        InputDisk.sweep(o.cacheRoot().resolve("tmp"));
        // A resumed guest gets the images streamed in; a booted one (--no-resume) on an input disk.
        String transfer = runtime.storagePath() + "/" + ContainerRuntime.TRANSFER_DIR + "/bake-"
                + ProcessHandle.current().pid();
        try (InputDisk disk = options.resume() ? InputDisk.create(o.cacheRoot().resolve("tmp"), transfer)
                : InputDisk.create(o.cacheRoot().resolve("tmp"))) {
            List<ImageLoader.Staged> staged = new ArrayList<>();
            List<ImageLoader.Staged> all = new ArrayList<>();
            int i = 0;
            for (Planned p : planned) {
                boolean have = present.contains(p.image().configDigest().toString());
                ImageLoader.Staged s = have
                        ? new ImageLoader.Staged(p.image(), p.tags(), null, p.repoDigest())
                        : loader.stage(p.image(), p.tags(), p.repoDigest(), disk, "image-" + i);
                i++;
                all.add(s);
                if (!have) {
                    staged.add(s);
                }
            }
            boolean hasFiles = disk.hasFiles();
            if (hasFiles && !options.resume()) {
                options = options.withInputDisk(disk.build(runner));
            }
            events.on(new Event.Progress("starting the " + manifest.arch() + " " + runtime.kind().id() + " guest ("
                    + staged.size() + " image(s) to load, " + (planned.size() - staged.size()) + " already there)"));
            // Images loaded before keep the RepoDigests written then; only new ones need the engine stopped.
            GuestSession.Preparation prep = new GuestSession.Preparation(
                    hasFiles && options.resume() ? s -> s.upload(disk) : null,
                    loader.needsRepoDigests(staged) ? s -> loader.addRepoDigests(s, all) : null);
            try (GuestSession session = GuestSession.start(options, runner, events, prep)) {
                Map<String, List<String>> before = session.listImages();
                for (ImageLoader.Staged s : all) {
                    if (s.guestPath() == null && !before.containsKey(s.image().configDigest().toString())) {
                        throw new VbakeException(1, "the bake store " + stateRoot + " no longer holds "
                                + s.image().source(), "run again with --fresh", null);
                    }
                }
                for (ImageLoader.Staged s : staged) {
                    loader.load(session, s);
                }
                if (hasFiles && options.resume()) {
                    session.check(List.of("rm", "-rf", transfer), "remove the staged images");
                }
                reconcile(session, runtime, all, before);
                events.on(new Event.Progress("exporting the " + runtime.storagePath() + " tree"));
                try (StorageFile raw = StorageFile.create(rawTree, "bake")) {
                    // volumes/metadata.db is a bolt database whose bytes change on every open;
                    // dockerd recreates it, and a bake holds no volumes.
                    session.exportStorage(raw.stream(), List.of("volumes/metadata.db"), false,
                            o.sourceDateEpoch() != null ? o.sourceDateEpoch() : 0L);
                    raw.commit();
                }
                saveRecord(stateRoot, manifest.suite(), all);
            }
            return staged.size();
        }
    }

    /** Image IDs the bake state disk held after the last successful bake (a hint; checked in the guest). */
    private static Set<String> presentImages(Path stateRoot, String suite) throws IOException {
        Path record = stateRoot.resolve("images-" + suite + ".txt");
        if (!Files.isRegularFile(record)) {
            return Set.of();
        }
        return new HashSet<>(Files.readAllLines(record, StandardCharsets.UTF_8));
    }

    private static void saveRecord(Path stateRoot, String suite, List<ImageLoader.Staged> all)
            throws IOException {
        List<String> ids = all.stream().map(s -> s.image().configDigest().toString()).sorted().distinct().toList();
        Files.write(stateRoot.resolve("images-" + suite + ".txt"), ids, StandardCharsets.UTF_8);
    }


    /**
     * Makes the store hold exactly the manifest's images under exactly its names: images already
     * there are (re)tagged, images and names from earlier bakes that the manifest dropped are removed.
     */
    private void reconcile(GuestSession session, ContainerRuntime runtime, List<ImageLoader.Staged> all,
            Map<String, List<String>> before) throws VbakeException, InterruptedException {
        Set<String> wanted = new HashSet<>();
        for (ImageLoader.Staged s : all) {
            String id = s.image().configDigest().toString();
            wanted.add(id);
            for (String t : s.tags()) {
                session.engine(List.of("tag", id, runtime.localName(t)), "tag " + t);
            }
        }
        Map<String, List<String>> now = session.listImages();
        for (Map.Entry<String, List<String>> e : now.entrySet()) {
            if (!wanted.contains(e.getKey())) {
                events.on(new Event.Progress("removing " + e.getKey().substring(7, 19) + " (no longer in the manifest)"));
                session.engine(List.of("rmi", "-f", e.getKey()), "remove an image the manifest dropped");
                continue;
            }
            Set<String> tags = new HashSet<>();
            for (ImageLoader.Staged s : all) {
                if (s.image().configDigest().toString().equals(e.getKey())) {
                    for (String t : s.tags()) {
                        tags.add(normalName(t));
                    }
                }
            }
            for (String name : e.getValue()) {
                if (!tags.contains(normalName(name))) {
                    events.on(new Event.Progress("untagging " + name + " (no longer in the manifest)"));
                    session.engine(runtime.untagArgs(e.getKey(), name), "untag " + name);
                }
            }
        }
    }

    private static String normalName(String name) {
        try {
            return ImageLoader.fullTag(name);
        } catch (BadInputException e) {
            return name;
        }
    }

    /**
     * {@code output: ext4}: the tree tar made into a reproducible partition image in a trixie guest
     * of the bake's arch and runtime (its mke2fs sorts directories; bookworm's would need a newer
     * one). Returns what the listing says about it.
     */
    private com.fasterxml.jackson.databind.node.ObjectNode packExt4(BakeManifest manifest, ContainerRuntime runtime,
            Options o, Path treeTar, Path image, long epoch) throws VbakeException, InterruptedException, IOException {
        long unpacked = unpackedBytes(treeTar);
        String treeDigest;
        try (java.io.InputStream in = Files.newInputStream(treeTar)) {
            treeDigest = Digest.of(in).hex();
        }
        GuestOptions options = guestOptions(manifest, runtime, o, GuestOptions.DEFAULT_SUITE);
        org.vbake.session.Ext4Packer.Packed packed = new org.vbake.session.Ext4Packer(runner, events)
                .pack(treeTar, image, options, treeDigest, epoch, manifest.size());
        com.fasterxml.jackson.databind.node.ObjectNode n = new com.fasterxml.jackson.databind.ObjectMapper()
                .createObjectNode();
        n.put("file", image.getFileName().toString());
        n.put("unpackedBytes", unpacked);
        n.put("neededBytes", packed.minimumBytes());
        n.put("imageBytes", packed.imageBytes());
        n.put("margin", manifest.size() != null ? "size: " + manifest.size()
                : org.vbake.session.Ext4Packer.MARGIN_PERCENT + "% of needed, at least "
                        + (org.vbake.session.Ext4Packer.MIN_MARGIN >> 20) + " MiB");
        n.put("uuid", packed.uuid());
        return n;
    }

    /** The bytes of every regular file in a tree tar: what the tree holds once unpacked. */
    private static long unpackedBytes(Path tar) throws IOException {
        long total = 0;
        try (org.apache.commons.compress.archivers.tar.TarFile t = new org.apache.commons.compress.archivers.tar.TarFile(
                tar.toFile())) {
            for (org.apache.commons.compress.archivers.tar.TarArchiveEntry e : t.getEntries()) {
                if (e.isFile() && !e.isLink()) {
                    total += e.getSize();
                }
            }
        }
        return total;
    }

    private GuestOptions guestOptions(BakeManifest manifest, ContainerRuntime runtime, Options o, String suite) {
        Path stateRoot = o.stateRoot() != null ? o.stateRoot()
                : o.cacheRoot().resolve("bake").resolve(manifest.arch().id() + "-" + runtime.kind().id() + "-"
                        + runtime.driver());
        return GuestOptions.defaults(manifest.arch(), manifest.runtime())
                .withSuite(suite).withStateRoot(stateRoot).withCacheDir(o.cacheRoot()).withStorageDriver(manifest.driver())
                .withResources(o.memoryMb(), o.cpus()).withResume(o.resume());
    }

    private List<Path> writeOutputs(BakeManifest manifest, ContainerRuntime runtime, List<Planned> planned,
            Options o, Path work, Path tree, String writer, Map<String, byte[]> customUnits,
            com.fasterxml.jackson.databind.node.ObjectNode partition)
            throws IOException, VbakeException {
        List<Path> files = new ArrayList<>();
        files.add(tree);
        String conf = runtime.storageConf();
        if (conf != null) {
            files.add(Files.writeString(work.resolve("storage.conf"), conf, StandardCharsets.UTF_8));
        }

        long tl = System.nanoTime();
        List<ContentListing.Entry> entries = new ArrayList<>();
        for (Planned p : planned) {
            events.on(new Event.Progress("listing packages of " + p.image().source()));
            entries.add(ContentListing.Entry.of(p.tags(), p.image(), p.repoDigest(),
                    PackagesScanner.scan(p.image(), recordedLayers)));
        }
        com.fasterxml.jackson.databind.node.ObjectNode listing = ContentListing.listing(entries);
        listing.put("writer", writer);
        listing.put("suite", manifest.suite());
        if (partition != null) {
            listing.set("ext4", partition);
        }
        if (!manifest.stacks().isEmpty()) {
            com.fasterxml.jackson.databind.node.ArrayNode stacks = listing.putArray("stacks");
            for (ComposeStack stack : manifest.stacks()) {
                com.fasterxml.jackson.databind.node.ObjectNode st = stacks.addObject();
                st.put("project", stack.project());
                st.put("file", stack.file().getFileName().toString());
                st.put("sha256", Digest.of(stack.content()).toString());
                com.fasterxml.jackson.databind.node.ObjectNode services = st.putObject("services");
                stack.services().forEach(sv -> services.put(sv.name(), sv.image()));
            }
        }
        files.add(Files.write(work.resolve(LISTING), ContentListing.toBytes(listing)));
        files.add(Files.write(work.resolve("sbom.cdx.json"), SbomWriter.cycloneDx(entries, "vbake-storage",
                "vbake:" + Digest.of(ContentListing.toBytes(ContentListing.listing(entries))), o.sourceDateEpoch())));
        events.on(new Event.Phase("listing and SBOM", Duration.ofNanos(System.nanoTime() - tl)));

        Map<Integer, String> refs = new LinkedHashMap<>();
        for (int i = 0; i < planned.size(); i++) {
            Planned p = planned.get(i);
            refs.put(i, p.tags().isEmpty() ? p.image().configDigest().toString() : p.tags().get(0));
        }
        Map<String, String> units = AutostartUnits.generate(manifest, refs);
        Map<String, String> localRefs = new java.util.HashMap<>();
        for (Planned p : planned) {
            if (p.entry().ref() != null) {
                localRefs.put(p.entry().ref(), p.image().configDigest().toString());
            }
        }
        for (ComposeStack stack : manifest.stacks()) {
            for (Map.Entry<String, byte[]> f : ComposeUnits.generate(stack, manifest.runtime(), runtime.unitDirName(),
                    localRefs).entrySet()) {
                Path target = work.resolve(f.getKey());
                String name = target.getFileName().toString();
                if (Files.exists(target) || units.containsKey(name)
                        || customUnits.containsKey(runtime.unitDirName() + "/" + name)) {
                    throw new BadInputException(stack.file() + ": the stack's " + f.getKey() + " is also another "
                            + "stack's or image's unit", "give the stack another name:");
                }
                Files.createDirectories(target.getParent());
                files.add(Files.write(target, f.getValue()));
            }
        }
        if (!units.isEmpty() || !customUnits.isEmpty()) {
            Path unitDir = Files.createDirectories(work.resolve(runtime.unitDirName()));
            for (Map.Entry<String, String> u : units.entrySet()) {
                if (customUnits.containsKey(runtime.unitDirName() + "/" + u.getKey())) {
                    throw new BadInputException("unit " + u.getKey() + " is both a user's unit and one vbake makes for "
                            + "another image", "rename the user's unit");
                }
                files.add(Files.writeString(unitDir.resolve(u.getKey()), u.getValue(), StandardCharsets.UTF_8));
            }
            for (Map.Entry<String, byte[]> u : customUnits.entrySet()) {
                files.add(Files.write(work.resolve(u.getKey()), u.getValue()));
            }
        }
        return files;
    }

    /** sha256 of each output file, by its path relative to {@code work}, for the marker. */
    private static Map<String, String> digests(Path work, List<Path> files) throws IOException {
        Map<String, String> d = new LinkedHashMap<>();
        for (Path f : files) {
            try (java.io.InputStream in = Files.newInputStream(f)) {
                d.put(work.relativize(f).toString(), Digest.of(in).toString());
            }
        }
        return d;
    }

    private static List<String> dedupe(List<String> tags) {
        return new ArrayList<>(new java.util.LinkedHashSet<>(tags));
    }
}
