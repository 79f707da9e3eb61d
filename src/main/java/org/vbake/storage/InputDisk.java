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

    private final Path dir;
    private final Path files;
    private final String guestRoot;

    private InputDisk(Path dir, String guestRoot) throws IOException {
        this.dir = dir;
        this.files = Files.createDirectories(dir.resolve("files"));
        this.guestRoot = guestRoot;
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
        return new InputDisk(uniqueDirectory(parent, "input-"), guestRoot);
    }

    private static final java.util.concurrent.atomic.AtomicLong COUNTER = new java.util.concurrent.atomic.AtomicLong();

    /**
     * A new private directory named after this process and the clock. Not
     * {@code Files.createTempDirectory}: its SecureRandom costs tens of milliseconds at start-up,
     * which every command against a resident guest would pay.
     */
    static Path uniqueDirectory(Path parent, String prefix) throws IOException {
        java.nio.file.attribute.FileAttribute<?> owner = java.nio.file.attribute.PosixFilePermissions
                .asFileAttribute(java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
        while (true) {
            Path p = parent.resolve(prefix + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime())
                    + "-" + COUNTER.incrementAndGet());
            try {
                return Files.createDirectory(p, owner);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                // another process had the same pid and clock reading: try the next name
            }
        }
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
