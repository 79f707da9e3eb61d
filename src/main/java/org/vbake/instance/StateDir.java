package org.vbake.instance;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/**
 * Owns every path of one guest instance: the persistent state disk, logs, sockets, pid and lock
 * files. Layout: {@code <root>/<suite>/} where root defaults to {@code ~/.vdkr/<arch>} (docker) or
 * {@code ~/.vpdmn/<arch>} (podman); the Debian suite is a level of its own so stores written by
 * different engine versions never mix.
 */
public final class StateDir {

    /** sun_path is 108 bytes including the terminating NUL. */
    static final int MAX_SOCKET_PATH = 107;

    /** Lock files this JVM holds; see {@link #tryLock(Path)}. */
    private static final Set<Path> HELD_IN_THIS_JVM = ConcurrentHashMap.newKeySet();

    private final Path root;
    private final Path dir;
    private final Arch arch;
    private final RuntimeKind runtime;
    private final String suite;

    private StateDir(Path root, Arch arch, RuntimeKind runtime, String suite) {
        this.root = root.toAbsolutePath().normalize();
        this.dir = this.root.resolve(suite);
        this.arch = arch;
        this.runtime = runtime;
        this.suite = suite;
    }

    /** The default root for a runtime and arch: {@code ~/.vdkr/aarch64}. */
    public static Path defaultRoot(RuntimeKind runtime, Arch arch) {
        String base = runtime == RuntimeKind.DOCKER ? ".vdkr" : ".vpdmn";
        return Path.of(System.getProperty("user.home"), base, arch.id());
    }

    public static StateDir of(Path rootOrNull, Arch arch, RuntimeKind runtime, String suite) {
        return new StateDir(rootOrNull != null ? rootOrNull : defaultRoot(runtime, arch), arch, runtime, suite);
    }

    public Path root() {
        return root;
    }

    /** The directory of this suite's instance; everything below is created by {@link #create()}. */
    public Path dir() {
        return dir;
    }

    public Arch arch() {
        return arch;
    }

    public RuntimeKind runtime() {
        return runtime;
    }

    public String suite() {
        return suite;
    }

    public Path stateDisk() {
        return dir.resolve("state.ext4");
    }

    /**
     * A saved guest (QEMU migration) to resume instead of booting: its RAM file, device state and
     * the record of what it is bound to. Only this state dir's guests use it.
     */
    public Path snapshotDir() {
        return dir.resolve("snapshot");
    }

    /** The guest RAM of every savable run: the guest's memory while it runs, its saved memory after. */
    public Path ramFile() {
        return snapshotDir().resolve("ram");
    }

    /** The saved guest's device state (the migration stream without RAM). */
    public Path savedDevices() {
        return snapshotDir().resolve("devices");
    }

    /** What the saved guest is bound to; written last, removed first. */
    public Path snapshotRecord() {
        return snapshotDir().resolve("snapshot.json");
    }

    /** The guest's serial console: kernel, init and engine messages of the last boot. */
    public Path consoleLog() {
        return dir.resolve("console.log");
    }

    /** QEMU's own stdout/stderr of the last boot. */
    public Path qemuLog() {
        return dir.resolve("qemu.log");
    }

    public Path lockFile() {
        return dir.resolve("lock");
    }

    /**
     * Directory for sockets and the pid file. Inside the state dir when the socket paths fit in
     * sun_path, otherwise a private directory under /tmp named after a hash of the state dir.
     */
    public Path runDir() {
        Path inside = dir.resolve("run");
        if (inside.resolve("daemon.sock").toString().getBytes(StandardCharsets.UTF_8).length <= MAX_SOCKET_PATH) {
            return inside;
        }
        String user = System.getProperty("user.name", "user");
        return Path.of(System.getProperty("java.io.tmpdir"), "vbake-" + user, shortHash(dir.toString()));
    }

    public Path agentSocket() {
        return runDir().resolve("agent.sock");
    }

    public Path qmpSocket() {
        return runDir().resolve("qmp.sock");
    }

    public Path pidFile() {
        return runDir().resolve("qemu.pid");
    }

    /** Where a resident guest's daemon takes its clients (vmemres). */
    public Path daemonSocket() {
        return runDir().resolve("daemon.sock");
    }

    /** The resident daemon's record of itself: pid, state, and why it ended if it did. */
    public Path daemonFile() {
        return runDir().resolve("daemon.json");
    }

    /** The resident daemon's own log (boot progress, clients, shutdown). */
    public Path daemonLog() {
        return dir.resolve("daemon.log");
    }

    /** Creates the directories, private to the user (0700). */
    public void create() throws IOException {
        Path run = runDir();
        // The /tmp fallback's parent is shared ground: it must be ours and private, or another
        // user could have made it first and watch our sockets.
        Path[] dirs = run.startsWith(dir) ? new Path[] {root, dir, run} : new Path[] {root, dir, run.getParent(), run};
        for (Path p : dirs) {
            if (!Files.isDirectory(p)) {
                Files.createDirectories(p);
            }
            if (!Files.getOwner(p).getName().equals(System.getProperty("user.name"))) {
                throw new IOException(p + " belongs to another user");
            }
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwx------"));
        }
    }

    /**
     * Takes the instance lock: one command at a time may use a state disk. Waits up to
     * {@code wait} (calling {@code onWait} once if it has to), then fails.
     */
    public Lock lock(Duration wait, Runnable onWait) throws IOException, InterruptedException {
        Path file = lockFile();
        long deadline = System.nanoTime() + wait.toNanos();
        boolean told = false;
        while (true) {
            Lock lock = tryLock(file);
            if (lock != null) {
                return lock;
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("another vbake command is using " + dir + " (lock " + file + ")");
            }
            if (!told) {
                onWait.run();
                told = true;
            }
            Thread.sleep(100);
        }
    }

    /**
     * Closing any channel on a file drops every POSIX lock this process holds on it, so a file
     * this JVM already holds is never opened again: a failed attempt would free the holder's
     * lock for other processes.
     */
    private static Lock tryLock(Path file) throws IOException {
        // Keyed by real path, so a symlinked state root does not get past the check.
        Path key = file.getParent().toRealPath().resolve(file.getFileName());
        if (!HELD_IN_THIS_JVM.add(key)) {
            return null;
        }
        FileChannel channel = null;
        try {
            channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
            FileLock lock = channel.tryLock();
            if (lock != null) {
                return new Lock(channel, lock, key);
            }
            channel.close();
            HELD_IN_THIS_JVM.remove(key);
            return null;
        } catch (IOException | RuntimeException e) {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException suppressed) {
                    e.addSuppressed(suppressed);
                }
            }
            HELD_IN_THIS_JVM.remove(key);
            throw e;
        }
    }

    /** A held instance lock. */
    public static final class Lock implements AutoCloseable {
        private final FileChannel channel;
        private final FileLock lock;
        private final Path key;

        Lock(FileChannel channel, FileLock lock, Path key) {
            this.channel = channel;
            this.lock = lock;
            this.key = key;
        }

        @Override
        public void close() throws IOException {
            if (!channel.isOpen()) {
                return;
            }
            try {
                lock.release();
            } finally {
                try {
                    channel.close();
                } finally {
                    HELD_IN_THIS_JVM.remove(key);
                }
            }
        }
    }

    static String shortHash(String s) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
            return HexFormat.of().formatHex(d, 0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
