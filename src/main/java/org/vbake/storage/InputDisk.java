package org.vbake.storage;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.vbake.api.GuestException;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;
import org.vbake.process.ProcessRunner;

/**
 * Files handed to a guest on a read-only ext4 disk (serial {@code vbake-input}), made on the host
 * by {@code mke2fs -d} without root: the guest reads image archives and OCI layouts straight from
 * it instead of receiving them over the much slower agent channel.
 */
public final class InputDisk implements AutoCloseable {

    /** Where the guest mounts it. */
    public static final String GUEST_MOUNT = "/run/vbake/input";

    /** Free space a staging area leaves on the host's disk. */
    private static final long RESERVE = 1L << 30;

    /** Staging directories are {@code input-<owner>}; see {@link Scratch}. */
    private static final String PREFIX = "input-";

    private final Path dir;
    private final Path files;
    private final String guestRoot;

    private InputDisk(Path dir, String guestRoot) throws IOException {
        this.dir = dir;
        this.files = Files.createDirectories(dir.resolve("files"));
        this.guestRoot = guestRoot;
    }

    /**
     * Removes staging areas under {@code parent} that commands killed before they could clean up
     * left behind (their process is gone).
     */
    public static Scratch.Swept sweep(Path parent) {
        return Scratch.sweep(parent, PREFIX, "");
    }

    /** A new, empty staging area under {@code parent} (on the same filesystem as the blob cache, for hardlinks). */
    public static InputDisk create(Path parent) throws IOException {
        return create(parent, GUEST_MOUNT);
    }

    /**
     * A staging area whose files the guest will see under {@code guestRoot} instead of the input
     * disk's mount point: a resident guest gets them streamed there ({@link #writeTar}).
     */
    public static InputDisk create(Path parent, String guestRoot) throws IOException {
        Files.createDirectories(parent);
        return new InputDisk(Scratch.newPrivateDirectory(parent, PREFIX), guestRoot);
    }

    /** Where the guest finds the staged files. */
    public String guestRoot() {
        return guestRoot;
    }

    /** Writes the staged files as a tar, for a guest that is already running. */
    public void writeTar(OutputStream out) throws IOException {
        HostTrees.writeTar(files, out);
    }

    /** A host path inside the staging area for {@code name} (a file or directory to be created). */
    public Path file(String name) {
        return files.resolve(name);
    }

    /** The same path as the guest sees it. */
    public String guestPath(String name) {
        return guestRoot + "/" + name;
    }

    /** Writes a file through {@code writer}. */
    public Path write(String name, IoWriter writer) throws IOException, org.vbake.api.VbakeException {
        Path p = file(name);
        try (OutputStream out = new java.io.BufferedOutputStream(Files.newOutputStream(p), 1 << 20)) {
            writer.write(out);
        }
        return p;
    }

    /** Puts a host file on the disk: a hardlink when possible, otherwise a copy. */
    public Path add(Path source, String name) throws IOException {
        Path p = file(name);
        try {
            Files.createLink(p, source.toRealPath());
        } catch (IOException | UnsupportedOperationException e) {
            Files.copy(source, p);
        }
        return p;
    }

    /**
     * Refuses to stage {@code bytes} more when they, and the disk image made of them later, would
     * leave less than a reserve free on the host's disk.
     */
    public void ensureRoom(long bytes, String what) throws IOException, org.vbake.api.BadInputException {
        long free = Files.getFileStore(dir).getUsableSpace();
        long needed = 2 * bytes + RESERVE;
        if (free < needed) {
            throw new org.vbake.api.BadInputException(String.format(java.util.Locale.ROOT,
                    "%s needs %.1f GB free in %s to be staged (its layers and the input disk made of them), "
                            + "only %.1f GB are", what, needed / 1e9, dir.getParent(), free / 1e9),
                    "free space there, or point VBAKE_CACHE_DIR at a larger disk");
        }
    }

    /** Whether anything was staged (no disk is attached otherwise). */
    public boolean hasFiles() throws IOException {
        try (Stream<Path> s = Files.list(files)) {
            return s.findAny().isPresent();
        }
    }

    /** Makes the disk image from the staged files. */
    public Path build(ProcessRunner runner) throws IOException, GuestException, InterruptedException {
        long bytes = usage(files);
        // ext4 metadata, one inode and block rounding per file, and room to spare.
        long sizeMb = Math.max(16, bytes / (1 << 20) * 11 / 10 + 32);
        long free = Files.getFileStore(dir).getUsableSpace();
        if (free < (sizeMb << 20) + RESERVE) {
            throw new GuestException(String.format(java.util.Locale.ROOT, "not enough free space in %s for the "
                    + "input disk (%d MB needed, %d MB free)", dir.getParent(), sizeMb + (RESERVE >> 20), free >> 20),
                    null, null);
        }
        Path image = dir.resolve("input.ext4");
        List<String> argv = List.of(mke2fs(), "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0",
                "-O", "^has_journal", "-L", "vbake-input", "-E", "root_owner=0:0", "-d", files.toString(),
                image.toString(), sizeMb + "M");
        ProcessRunner.Result r = runner.run(argv, Map.of(), Duration.ofMinutes(30), line -> { });
        if (!r.ok()) {
            throw new GuestException("mke2fs could not make the input disk: " + String.join(" / ", r.tail()),
                    null, null);
        }
        return image;
    }

    private static long usage(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            return s.mapToLong(p -> {
                try {
                    long size = Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) ? Files.size(p) : 0;
                    return (size + 4095) / 4096 * 4096 + 4096;
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }).sum();
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    static String mke2fs() {
        for (String p : List.of("/usr/sbin/mke2fs", "/sbin/mke2fs")) {
            if (Files.isExecutable(Path.of(p))) {
                return p;
            }
        }
        return "mke2fs";
    }

    @Override
    public void close() {
        try {
            Trees.deleteTree(dir);
        } catch (IOException ignored) {
            // a leftover staging dir in the cache is harmless
        }
    }

    /** Writes content to a stream. */
    @FunctionalInterface
    public interface IoWriter {
        void write(OutputStream out) throws IOException, org.vbake.api.VbakeException;
    }
}
