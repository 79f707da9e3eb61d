package org.vbake.instance;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Scratch files and directories (staging areas, partial outputs, blobs on their way into the
 * cache) whose names say which process made them: {@code PREFIX<pid>-<start millis>-<n>SUFFIX}.
 * A command killed with SIGKILL cannot clean up after itself; the next command that uses the same
 * place {@linkplain #sweep sweeps} what belongs to processes that are gone. The process start time
 * in the name keeps a recycled pid from protecting a dead owner's leftovers.
 */
public final class Scratch {

    private static final AtomicLong COUNTER = new AtomicLong();
    private static final String TAG = "(\\d+)-(\\d+)-\\d+";
    /** Staging names of earlier versions: {@code input-<pid>-<hex nanos>-<n>}; owned while the pid lives. */
    private static final String LEGACY_TAG = "(\\d+)-[0-9a-f]+-\\d+";
    private static final FileAttribute<?> PRIVATE_DIR =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------"));

    private static volatile String self;

    private Scratch() {
    }

    /** What was removed by a {@link #sweep}. */
    public record Swept(int entries, long bytes) {
        public static final Swept NONE = new Swept(0, 0);

        public Swept plus(Swept other) {
            return new Swept(entries + other.entries, bytes + other.bytes);
        }

        /** For {@code --debug}: null when nothing was removed. */
        public String describe(Path where) {
            return entries == 0 ? null : String.format(java.util.Locale.ROOT,
                    "reclaimed %.1f MB from %d leftover(s) of killed commands in %s", bytes / 1e6, entries, where);
        }
    }

    /** This process's part of a scratch name: {@code <pid>-<start millis>-<n>}, unique within the process. */
    public static String tag() {
        String s = self;
        if (s == null) {
            ProcessHandle me = ProcessHandle.current();
            s = me.pid() + "-" + startMillis(me).orElse(0L);
            self = s;
        }
        return s + "-" + COUNTER.incrementAndGet();
    }

    /** A new directory {@code PREFIX<tag>} under {@code parent}, private to the user (0700). */
    public static Path newPrivateDirectory(Path parent, String prefix) throws IOException {
        return newDirectory(parent, prefix, PRIVATE_DIR);
    }

    /** A new directory {@code PREFIX<tag>} under {@code parent}, with the umask's permissions. */
    public static Path newDirectory(Path parent, String prefix) throws IOException {
        return newDirectory(parent, prefix, null);
    }

    private static Path newDirectory(Path parent, String prefix, FileAttribute<?> attr) throws IOException {
        Files.createDirectories(parent);
        while (true) {
            Path p = parent.resolve(prefix + tag());
            try {
                return attr != null ? Files.createDirectory(p, attr) : Files.createDirectory(p);
            } catch (FileAlreadyExistsException e) {
                // left by an earlier process with our pid and start time: impossible, but try the next
            }
        }
    }

    /** A new empty file {@code PREFIX<tag>SUFFIX} under {@code parent}, private to the user (0600). */
    public static Path newFile(Path parent, String prefix, String suffix) throws IOException {
        FileAttribute<?> attr = PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"));
        while (true) {
            Path p = parent.resolve(prefix + tag() + suffix);
            try {
                return Files.createFile(p, attr);
            } catch (FileAlreadyExistsException e) {
                // as above
            }
        }
    }

    /**
     * Removes the entries of {@code parent} named {@code PREFIX<tag>SUFFIX} whose owner process is
     * gone (files, or directories with everything in them). Anything else is left alone, and so is
     * everything a live process owns. Never fails: what cannot be removed stays for the next sweep.
     */
    public static Swept sweep(Path parent, String prefix, String suffix) {
        if (!Files.isDirectory(parent, LinkOption.NOFOLLOW_LINKS)) {
            return Swept.NONE;
        }
        Pattern current = Pattern.compile(Pattern.quote(prefix) + TAG + Pattern.quote(suffix));
        Pattern legacy = Pattern.compile(Pattern.quote(prefix) + LEGACY_TAG + Pattern.quote(suffix));
        List<Path> entries;
        try (Stream<Path> s = Files.list(parent)) {
            entries = s.toList();
        } catch (IOException e) {
            return Swept.NONE;
        }
        int removed = 0;
        long bytes = 0;
        for (Path p : entries) {
            String name = p.getFileName().toString();
            Matcher m = current.matcher(name);
            boolean gone;
            if (m.matches()) {
                gone = !alive(Long.parseLong(m.group(1)), Long.parseLong(m.group(2)));
            } else {
                Matcher l = legacy.matcher(name);
                if (!l.matches()) {
                    continue;
                }
                gone = ProcessHandle.of(Long.parseLong(l.group(1))).map(h -> !h.isAlive()).orElse(true);
            }
            if (!gone) {
                continue;
            }
            long size = usage(p);
            try {
                Trees.deleteTree(p);
                removed++;
                bytes += size;
            } catch (IOException e) {
                // another sweeper got there first, or it is not ours to remove: leave it
            }
        }
        return new Swept(removed, bytes);
    }

    /** True when the process {@code pid} runs and started at {@code startMillis} (0: any start). */
    static boolean alive(long pid, long startMillis) {
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty() || !h.get().isAlive()) {
            return false;
        }
        if (startMillis == 0) {
            return true;
        }
        // Start times are derived from clock ticks since boot: allow their rounding.
        return startMillis(h.get()).map(s -> Math.abs(s - startMillis) <= 1000).orElse(true);
    }

    private static Optional<Long> startMillis(ProcessHandle h) {
        return h.info().startInstant().map(Instant::toEpochMilli);
    }

    /** Bytes in {@code p}, a file or a tree (links not followed). */
    static long usage(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            return s.mapToLong(f -> {
                try {
                    BasicFileAttributes a = Files.readAttributes(f, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                    return a.isRegularFile() ? a.size() : 0;
                } catch (IOException e) {
                    return 0;
                }
            }).sum();
        } catch (IOException | java.io.UncheckedIOException e) {
            return 0;
        }
    }
}
