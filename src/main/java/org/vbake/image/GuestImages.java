package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;
import org.vbake.api.Arch;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;
import org.vbake.process.ProcessRunner;

/**
 * The guest images cache: builds kernel, initramfs and tools disk for a (suite, arch, runtime) on
 * first use with {@code vm-images/build.sh}, and again only when the recipe (package lists,
 * scripts, agent source, all carried in the jar) changes. The recipe's hash is the cache key.
 */
public final class GuestImages {

    static final String RECIPE_ROOT = "org/vbake/vm-images/";
    private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(30);

    private final Path cacheDir;
    private final ProcessRunner runner;
    private final EventListener events;

    public GuestImages(Path cacheDir, ProcessRunner runner, EventListener events) {
        this.cacheDir = cacheDir;
        this.runner = runner;
        this.events = events;
    }

    /** {@code $VBAKE_CACHE_DIR}, else {@code $XDG_CACHE_HOME/vbake}, else {@code ~/.cache/vbake}. */
    public static Path defaultCacheDir() {
        String explicit = System.getenv("VBAKE_CACHE_DIR");
        if (explicit != null && !explicit.isBlank()) {
            return Path.of(explicit);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("vbake");
    }

    public Path dirFor(String suite, Arch arch, RuntimeKind runtime) {
        return cacheDir.resolve("guest").resolve(suite + "-" + arch.id() + "-" + runtime.id());
    }

    /** Returns the cached image set, building it first if missing or built from another recipe. */
    public GuestImage ensure(String suite, Arch arch, RuntimeKind runtime, boolean forceRebuild)
            throws GuestException, InterruptedException {
        Map<String, byte[]> recipe = recipe();
        String key = key(recipe, suite, arch, runtime);
        Path dir = dirFor(suite, arch, runtime);
        GuestImage image = new GuestImage(dir, key);
        try {
            // A finished image is only read: no lock, so a build user can use a cache root built
            // (and owns the lock files of), and threads of one JVM do not trip over a file lock.
            if (!forceRebuild && isComplete(image)) {
                return image;
            }
            Files.createDirectories(dir.getParent());
            try (FileChannel ch = FileChannel.open(dir.getParent().resolve(dir.getFileName() + ".lock"),
                    StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                    FileLock ignored = ch.lock()) {
                if (!forceRebuild && isComplete(image)) {
                    return image;
                }
                build(image, recipe, suite, arch, runtime);
                return image;
            }
        } catch (IOException e) {
            throw new GuestException("cannot prepare the guest image for " + suite + "/" + arch + "/" + runtime
                    + ": " + e.getMessage(), image.buildLog(), e);
        }
    }

    private static boolean isComplete(GuestImage image) throws IOException {
        Path keyFile = image.dir().resolve("key");
        if (!Files.isRegularFile(keyFile)
                || !Files.readString(keyFile, StandardCharsets.UTF_8).trim().equals(image.key())) {
            return false;
        }
        for (Path p : List.of(image.kernel(), image.initrd(), image.toolsDisk(), image.manifest())) {
            if (!Files.isRegularFile(p)) {
                return false;
            }
        }
        return true;
    }

    private void build(GuestImage image, Map<String, byte[]> recipe, String suite, Arch arch, RuntimeKind runtime)
            throws IOException, GuestException, InterruptedException {
        events.on(new Event.Progress("building the " + suite + " " + arch + " " + runtime
                + " guest image from Debian packages (first use; takes a minute or two)"));
        Files.createDirectories(image.dir());
        Files.deleteIfExists(image.dir().resolve("key"));
        Scratch.sweep(cacheDir, "recipe-", "");
        Path recipeDir = Scratch.newPrivateDirectory(cacheDir, "recipe-");
        long started = System.nanoTime();
        try (PrintWriter log = new PrintWriter(Files.newBufferedWriter(image.buildLog(), StandardCharsets.UTF_8))) {
            for (Map.Entry<String, byte[]> e : recipe.entrySet()) {
                Path target = recipeDir.resolve(e.getKey());
                Files.createDirectories(target.getParent());
                Files.write(target, e.getValue());
            }
            List<String> argv = new ArrayList<>();
            String owner = unprivilegedOwner();
            if (owner != null) {
                // mmdebstrap --mode=root needs root: a user with sudo builds through it (as the
                // README's set-up leaves it: credentials cached, no prompt), and gets the files.
                argv.addAll(List.of("sudo", "-n", "--"));
            }
            argv.addAll(List.of("bash", recipeDir.resolve("build.sh").toString(),
                    "--suite", suite, "--arch", arch.id(), "--runtime", runtime.id(),
                    "--out", image.dir().toString()));
            if (owner != null) {
                argv.addAll(List.of("--owner", owner));
            }
            ProcessRunner.Result result = runner.run(argv, Map.of(), BUILD_TIMEOUT, line -> {
                synchronized (log) {
                    log.println(line);
                    log.flush();
                }
                if (line.startsWith("==> ")) {
                    events.on(new Event.Progress(line.substring(4)));
                }
            });
            if (!result.ok()) {
                String last = result.tail().isEmpty() ? "" : ": " + result.tail().get(result.tail().size() - 1);
                if (owner != null && last.contains("password is required")) {
                    throw new GuestException("building the guest image needs root, and sudo asks for a password: "
                            + "run 'sudo -v' first, then this command again", image.buildLog(), null);
                }
                if (result.exitCode() == 2) {
                    throw new GuestException("guest image build cannot start" + last, image.buildLog(), null);
                }
                throw new GuestException("guest image build failed (exit " + result.exitCode() + ")" + last,
                        image.buildLog(), null);
            }
        } finally {
            Trees.deleteTree(recipeDir);
        }
        Files.writeString(image.dir().resolve("key"), image.key() + "\n", StandardCharsets.UTF_8);
        events.on(new Event.Phase("image build", Duration.ofNanos(System.nanoTime() - started)));
    }

    /**
     * {@code UID:GID} of this process when it is not root and sudo is there to build with; null
     * as root, or without sudo (build.sh then says that it needs root).
     */
    private static String unprivilegedOwner() {
        try {
            int uid = (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
            int gid = (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:gid");
            if (uid == 0) {
                return null;
            }
            for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
                if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, "sudo"))) {
                    return uid + ":" + gid;
                }
            }
            return null;
        } catch (IOException | UnsupportedOperationException | ClassCastException e) {
            return null;
        }
    }

    static String key(Map<String, byte[]> recipe, String suite, Arch arch, RuntimeKind runtime) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update((suite + "\0" + arch.id() + "\0" + runtime.id() + "\0").getBytes(StandardCharsets.UTF_8));
            for (Map.Entry<String, byte[]> e : recipe.entrySet()) {
                md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
                md.update((byte) 0);
                md.update(Integer.toString(e.getValue().length).getBytes(StandardCharsets.UTF_8));
                md.update((byte) 0);
                md.update(e.getValue());
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Every file of the recipe carried on the classpath, by relative path, sorted. */
    static Map<String, byte[]> recipe() {
        URL marker = GuestImages.class.getClassLoader().getResource(RECIPE_ROOT + "build.sh");
        if (marker == null) {
            throw new IllegalStateException("the guest image recipe is missing from the classpath");
        }
        Map<String, byte[]> files = new TreeMap<>();
        try {
            if ("jar".equals(marker.getProtocol())) {
                String jarPath = marker.getPath().substring("file:".length(), marker.getPath().indexOf("!/"));
                try (JarFile jar = new JarFile(java.net.URLDecoder.decode(jarPath, StandardCharsets.UTF_8))) {
                    for (JarEntry entry : java.util.Collections.list(jar.entries())) {
                        String name = entry.getName();
                        if (!entry.isDirectory() && name.startsWith(RECIPE_ROOT) && keep(name)) {
                            try (InputStream in = jar.getInputStream(entry)) {
                                files.put(name.substring(RECIPE_ROOT.length()), in.readAllBytes());
                            }
                        }
                    }
                }
            } else {
                Path root = Path.of(marker.toURI()).getParent();
                List<Path> all = new ArrayList<>();
                try (Stream<Path> walk = Files.walk(root)) {
                    walk.filter(Files::isRegularFile).forEach(all::add);
                }
                for (Path p : all) {
                    String rel = root.relativize(p).toString().replace('\\', '/');
                    if (keep(rel)) {
                        files.put(rel, Files.readAllBytes(p));
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the guest image recipe", e);
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        return files;
    }

    /** A locally built agent binary is not part of the recipe. */
    private static boolean keep(String name) {
        return !name.endsWith("/vbake-agent") && !name.equals("agent/vbake-agent");
    }
}
