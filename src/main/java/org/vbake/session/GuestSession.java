package org.vbake.session;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.vbake.agent.AgentClient;
import org.vbake.agent.AgentProtocolException;
import org.vbake.agent.CommandHandle;
import org.vbake.agent.Protocol;
import org.vbake.agent.Protocol.EngineReady;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.agent.Protocol.Hello;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;
import org.vbake.image.GuestImages;
import org.vbake.instance.StateDir;
import org.vbake.process.ProcessRunner;
import org.vbake.runtime.ContainerRuntime;

/**
 * Commands in a running target-arch guest ({@link Guest}): the engine's CLI, any program, files
 * in and out, the storage tree as a tar. {@link #start} gets the guest running: it resumes the
 * guest the previous command on this state dir saved when that one is valid for this command,
 * and boots one otherwise; {@link #attach} uses a resident guest. Always {@link #close()} it
 * (try-with-resources): the guest is then saved for the next command or powered off, and no QEMU
 * process is left.
 */
public final class GuestSession implements AutoCloseable {

    public static final Set<String> SUITES = Set.of("trixie", "bookworm");

    private final GuestOptions options;
    private final StateDir state;
    private final ContainerRuntime runtime;
    private final EventListener events;
    private final Guest guest;
    private volatile CommandHandle running;

    GuestSession(GuestOptions options, StateDir state, ContainerRuntime runtime, EventListener events,
            Guest guest) {
        this.options = options;
        this.state = state;
        this.runtime = runtime;
        this.events = events;
        this.guest = guest;
    }

    /**
     * A session on a resident guest, over a connection to its daemon that has done the
     * handshake. The engine is already running.
     */
    public static GuestSession attach(GuestOptions options, AgentClient daemon, Hello hello, EventListener events)
            throws BadInputException {
        ContainerRuntime runtime = ContainerRuntime.of(options.runtime(), options.storageDriver());
        StateDir state = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        return new GuestSession(options, state, runtime, events, new ResidentGuest(daemon, hello, state));
    }

    /** True for a session on a resident guest (see {@link #attach}). */
    public boolean isAttached() {
        return guest.isResident();
    }

    /** The guest this session runs commands in. */
    public Guest guest() {
        return guest;
    }

    /** The agent link: the daemon of a resident guest relays its clients' channels over it. */
    public AgentClient agentClient() {
        return guest.agent();
    }

    /** False once QEMU has exited; always true for an attached session (the daemon watches it). */
    public boolean isAlive() {
        return guest.isAlive();
    }

    /**
     * Has the guest to this session alone until the returned handle is closed: on a resident
     * guest other clients' commands wait; a booted session is alone anyway.
     */
    public AutoCloseable exclusive() throws VbakeException, InterruptedException {
        if (!isAttached()) {
            return () -> { };
        }
        AgentClient agent = guest.agent();
        try {
            Protocol.LockRequest r = agent.lock(true, Duration.ofHours(1));
            if (!Boolean.TRUE.equals(r.ok())) {
                throw guestFailure("the resident guest refused exclusive use: " + r.message(), null);
            }
        } catch (IOException e) {
            throw guestFailure("lost the resident guest: " + e.getMessage(), e);
        }
        return () -> {
            if (agent.isOpen()) {
                agent.lock(false, Duration.ofMinutes(1));
            }
        };
    }

    /** Forwards 127.0.0.1:{@code hostPort} on the host to {@code guestPort} in a resident guest. */
    public void forwardPort(String protocol, int hostPort, int guestPort) throws VbakeException, InterruptedException {
        if (!isAttached()) {
            throw new BadInputException("publishing ports (-p) needs a resident guest",
                    "start one with 'vmemres start'; a guest booted for one command is gone when it ends");
        }
        try {
            Protocol.Forward r = guest.agent().forward(new Protocol.Forward(protocol, hostPort, guestPort, null, null),
                    Duration.ofSeconds(30));
            if (!Boolean.TRUE.equals(r.ok())) {
                throw new BadInputException("-p " + hostPort + ":" + guestPort + ": " + r.message());
            }
        } catch (IOException e) {
            throw guestFailure("lost the resident guest: " + e.getMessage(), e);
        }
    }

    /**
     * Runs {@code beforeEngine} with the engine stopped and starts it again (a resident or
     * resumed guest's engine is running already); on a resident guest the caller holds
     * {@link #exclusive()}.
     */
    public void restartEngine(BeforeEngine beforeEngine) throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        try {
            EngineReady stopped = guest.agent().startEngine(EngineRequest.stopRequest(60_000), Duration.ofSeconds(90));
            if (!stopped.ok()) {
                throw guestFailure("cannot stop the " + runtime.kind() + " engine: " + stopped.message(), null);
            }
            phase(events, "engine stopped", t0);
            beforeEngine.run(this);
            makeEngineDirs();
            startEngine("did not start again");
        } catch (IOException e) {
            throw guestFailure("lost the guest while restarting the engine: " + e.getMessage(), e);
        }
    }

    /** Writes a tar stream. */
    @FunctionalInterface
    public interface TarWriter {
        void write(OutputStream out) throws IOException;
    }

    /**
     * Copies a staging area's files into the running guest, under {@link InputDisk#guestRoot()}
     * (on the state disk, so big inputs do not fill the guest's RAM).
     */
    public void upload(org.vbake.storage.InputDisk disk) throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        copyIn(disk.guestRoot(), disk::writeTar);
        phase(events, "input copied into the guest", t0);
    }

    /** Unpacks what {@code source} writes into {@code guestDir} (created if missing). */
    public void copyIn(String guestDir, TarWriter source) throws VbakeException, InterruptedException {
        java.io.PipedInputStream tarIn = new java.io.PipedInputStream(1 << 20);
        java.util.concurrent.atomic.AtomicReference<IOException> writeFailure =
                new java.util.concurrent.atomic.AtomicReference<>();
        Thread writer;
        try {
            java.io.PipedOutputStream tarOut = new java.io.PipedOutputStream(tarIn);
            writer = new Thread(() -> {
                try (tarOut) {
                    source.write(tarOut);
                } catch (IOException e) {
                    writeFailure.set(e);
                }
            }, "vbake-copy-in");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        writer.setDaemon(true);
        writer.start();
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        ExitStatus st = exec(new ExecRequest(List.of(AGENT, "import-tree", "--root", guestDir), null, null,
                true), tarIn, OutputStream.nullOutputStream(), err);
        writer.join();
        if (writeFailure.get() != null) {
            throw new VbakeException(1, "cannot send files to the guest: " + writeFailure.get().getMessage(),
                    null, writeFailure.get());
        }
        if (!st.succeeded()) {
            throw commandFailure("copy files into the guest", st, err.toString(StandardCharsets.UTF_8));
        }
    }

    /** Writes {@code guestDir}'s content as a tar to {@code out}. */
    public void copyOut(String guestDir, OutputStream out) throws VbakeException, InterruptedException {
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        ExitStatus st = exec(new ExecRequest(List.of(AGENT, "export-tree", "--root", guestDir), null, null, false),
                null, out, err);
        if (!st.succeeded()) {
            throw commandFailure("copy files out of the guest", st, err.toString(StandardCharsets.UTF_8));
        }
    }

    /** Work done in the guest after the agent answers and before the engine starts. */
    @FunctionalInterface
    public interface BeforeEngine {
        void run(GuestSession session) throws VbakeException, InterruptedException;
    }

    /**
     * What a command must do to the guest before it runs, whichever way the guest came up.
     *
     * @param stage        files onto the guest (a staging area streamed in); runs with the agent up,
     *                     before {@code beforeEngine}; null for nothing
     * @param beforeEngine work with the engine stopped (RepoDigests, an input storage tree); null for none
     */
    public record Preparation(BeforeEngine stage, BeforeEngine beforeEngine) {
        public static final Preparation NONE = new Preparation(null, null);
    }

    /** Boots a guest (or resumes a saved one) and waits until its engine answers. */
    public static GuestSession boot(GuestOptions options, ProcessRunner runner, EventListener events)
            throws VbakeException, InterruptedException {
        return start(options, runner, events, Preparation.NONE);
    }

    /** As {@link #start}, with only work before the engine starts. */
    public static GuestSession boot(GuestOptions options, ProcessRunner runner, EventListener events,
            BeforeEngine beforeEngine) throws VbakeException, InterruptedException {
        return start(options, runner, events, new Preparation(null, beforeEngine));
    }

    /**
     * Gets a guest running with its engine up and {@code prep} done: the guest the last command on
     * this state dir saved, when it is valid for this one ({@link GuestOptions#resume()}), else a
     * boot. A saved guest that cannot be resumed costs one warning and a boot, never the store.
     */
    public static GuestSession start(GuestOptions options, ProcessRunner runner, EventListener events,
            Preparation prep) throws VbakeException, InterruptedException {
        GuestLauncher launch = GuestLauncher.prepare(options, runner, events);
        StateDir.Lock lock = launch.lock();
        try {
            if (options.resume()) {
                GuestSession resumed = launch.tryResume(prep);
                if (resumed != null) {
                    return resumed;
                }
            }
            return launch.boot(prep, lock);
        } catch (VbakeException | InterruptedException | RuntimeException e) {
            closeQuietly(lock);
            throw e;
        }
    }

    static Path cacheDir(GuestOptions options) {
        return options.cacheDir() != null ? options.cacheDir() : GuestImages.defaultCacheDir();
    }

    /** A booted guest up to a running engine: handshake, the input disk, {@code prep}, the engine. */
    void bringUp(BootedGuest booted, Preparation prep) throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        long deadline = t0 + options.bootTimeout().toNanos();
        try {
            booted.connectAgent(deadline);
            phase(events, "boot (qemu start to agent ready)", t0);
            if (options.inputDisk() != null) {
                mountInput();
            }
            // Host files copied in for an earlier command that never finished (QEMU killed).
            String transfer = runtime.storagePath() + "/" + ContainerRuntime.TRANSFER_DIR;
            check(List.of("/bin/sh", "-c", "rm -rf \"$1\" && mkdir -p \"$1\"", "sh", transfer),
                    "clear " + transfer);
            if (prep.stage() != null) {
                prep.stage().run(this);
            }
            if (prep.beforeEngine() != null) {
                prep.beforeEngine().run(this);
            }
            makeEngineDirs();
            startEngine("did not start");
        } catch (AgentProtocolException e) {
            throw guestFailure("lost the guest agent during boot: " + e.getMessage(), e);
        } catch (IOException e) {
            throw guestFailure("guest agent error during boot: " + e.getMessage(), e);
        }
    }

    /** The directories the engine expects (an input storage tree may have replaced everything). */
    private void makeEngineDirs() throws VbakeException, InterruptedException {
        List<String> mkdir = new ArrayList<>(List.of("mkdir", "-p"));
        mkdir.addAll(runtime.requiredDirs());
        mkdir.add(runtime.storagePath());
        check(mkdir, "prepare the engine's directories");
    }

    /** Starts the engine and waits until it answers; {@code failure} completes "the ENGINE engine ...". */
    private void startEngine(String failure) throws IOException, InterruptedException, GuestException {
        long t0 = System.nanoTime();
        EngineReady ready = guest.agent().startEngine(runtime.engine(options.bootTimeout().toMillis(), options.network()),
                options.bootTimeout());
        if (!ready.ok()) {
            throw guestFailure("the " + runtime.kind() + " engine " + failure + ": " + ready.message(), null);
        }
        phase(events, "engine ready", t0);
    }

    public Hello hello() {
        return guest.hello();
    }

    public GuestOptions options() {
        return options;
    }

    public StateDir stateDir() {
        return state;
    }

    public ContainerRuntime runtime() {
        return runtime;
    }

    /** Runs the engine's CLI with {@code args} (e.g. {@code images -q}). */
    public ExitStatus runCli(List<String> args, InputStream stdin, OutputStream out, OutputStream err)
            throws GuestException, InterruptedException {
        return exec(new ExecRequest(cliArgv(args), runtime.cliEnv(), null, stdin != null), stdin, out, err);
    }

    /**
     * Runs the engine's CLI on a pseudo-terminal of {@code rows} x {@code cols}: its output (stdout
     * and stderr together, as a terminal shows them) goes to {@code out}.
     */
    public ExitStatus runCliTty(List<String> args, int rows, int cols, InputStream stdin, OutputStream out)
            throws GuestException, InterruptedException {
        return exec(new ExecRequest(cliArgv(args), runtime.cliEnv(), null, true).withTty(rows, cols), stdin, out,
                out);
    }

    /** Runs any program in the guest. */
    public ExitStatus exec(ExecRequest request, InputStream stdin, OutputStream out, OutputStream err)
            throws GuestException, InterruptedException {
        long t0 = System.nanoTime();
        try {
            CommandHandle handle = guest.agent().start(request, stdin, out, err);
            running = handle;
            try {
                return handle.waitFor();
            } finally {
                running = null;
                phase(events, "command " + request.argv().get(0), t0);
            }
        } catch (IOException e) {
            throw guestFailure("lost the guest while running " + request.argv().get(0) + ": " + e.getMessage(), e);
        }
    }

    private static final String INPUT_MOUNT = org.vbake.storage.InputDisk.GUEST_MOUNT;

    /** The agent binary in the guest, which also carries the guest-side tools (export-tree, ...). */
    public static final String AGENT = "/usr/lib/vbake/vbake-agent";

    private void mountInput() throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        check(List.of("/bin/sh", "-c", "set -e; d=$(" + AGENT + " disk vbake-input); mkdir -p " + INPUT_MOUNT
                + "; mount -t ext4 -o ro,noload \"$d\" " + INPUT_MOUNT), "mount the input disk");
        phase(events, "input disk mounted", t0);
    }

    /**
     * Runs a guest program that must succeed; its stdout is returned. A failure is an error naming
     * {@code what} with the program's last stderr line; a full disk is reported as such.
     */
    public String check(List<String> argv, String what) throws VbakeException, InterruptedException {
        return check(argv, what, null);
    }

    /** {@link #check(List, String)} with environment additions ({@code KEY=value}). */
    public String check(List<String> argv, String what, List<String> env)
            throws VbakeException, InterruptedException {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        ExitStatus st = exec(new ExecRequest(argv, env, null, false), null, out, err);
        String stderr = err.toString(StandardCharsets.UTF_8).strip();
        if (!st.succeeded()) {
            throw commandFailure(what, st, stderr);
        }
        if (!stderr.isEmpty()) {
            for (String line : stderr.split("\n")) {
                events.on(new Event.Debug(argv.get(0) + ": " + line));
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Runs the engine CLI with {@code args}; it must succeed; returns its stdout. */
    public String engine(List<String> args, String what) throws VbakeException, InterruptedException {
        return check(cliArgv(args), what, runtime.cliEnv());
    }

    /** The engine CLI's command line for {@code args}: the program, its global options, then them. */
    private List<String> cliArgv(List<String> args) {
        List<String> argv = new ArrayList<>();
        argv.add(runtime.cli());
        argv.addAll(runtime.cliGlobalArgs());
        argv.addAll(args);
        return argv;
    }

    /** The engine's images: ID ({@code sha256:...}) to its names ({@code repo:tag}), in the engine's order. */
    public java.util.Map<String, List<String>> listImages() throws VbakeException, InterruptedException {
        String out = engine(List.of("images", "--no-trunc", "--format", "{{.ID}}\t{{.Repository}}:{{.Tag}}"),
                "list images");
        java.util.Map<String, List<String>> byId = new java.util.LinkedHashMap<>();
        for (String line : out.strip().split("\n")) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t", 2);
            String id = f[0].startsWith("sha256:") ? f[0] : "sha256:" + f[0];
            List<String> names = byId.computeIfAbsent(id, k -> new ArrayList<>());
            if (f.length > 1 && !f[1].contains("<none>")) {
                names.add(f[1]);
            }
        }
        return byId;
    }

    /**
     * Writes {@code content} to a guest file atomically (parent directories created).
     *
     * @param mode octal permissions, as the program that owns the file would set them ({@code 600})
     */
    public void writeFile(String path, byte[] content, String mode) throws VbakeException, InterruptedException {
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        ExitStatus st = exec(new ExecRequest(List.of("/bin/sh", "-c",
                "set -e; mkdir -p \"$(dirname \"$1\")\"; cat > \"$1.vbake-new\"; chmod \"$2\" \"$1.vbake-new\"; "
                        + "mv \"$1.vbake-new\" \"$1\"", "sh", path, mode),
                null, null, true), new java.io.ByteArrayInputStream(content), OutputStream.nullOutputStream(), err);
        if (!st.succeeded()) {
            throw commandFailure("write " + path + " in the guest", st, err.toString(StandardCharsets.UTF_8));
        }
    }

    /** The error for a guest command that failed: exit 1, or 3 with a hint when the state disk is full. */
    public VbakeException commandFailure(String what, ExitStatus st, String stderr) {
        String[] lines = stderr.strip().split("\n");
        String last = lines[lines.length - 1].strip();
        String why = st.error() != null ? st.error()
                : (last.isEmpty() ? "exit code " + st.code() : last + " (exit code " + st.code() + ")");
        if (stderr.contains("no space left on device") || stderr.contains("No space left on device")) {
            return new GuestException("cannot " + what + ": the state disk is full: " + why, state.consoleLog(), null);
        }
        return new VbakeException(1, "cannot " + what + ": " + why, null, null);
    }

    /**
     * The agent's command line that writes the engine's storage tree as a tar: deterministic
     * order, every xattr, device node and hardlink kept, runtime-only paths left out.
     *
     * @param extraExcludes  more relative paths to leave out
     * @param withContainers keep the engine's containers (docker: their configs and writable layers)
     * @param mtimeClamp     clamp every mtime to this (SOURCE_DATE_EPOCH), or null
     */
    public List<String> exportTreeArgv(List<String> extraExcludes, boolean withContainers, Long mtimeClamp) {
        List<String> argv = new ArrayList<>(List.of(AGENT, "export-tree", "--root", runtime.storagePath()));
        for (String x : runtime.exportExcludes()) {
            argv.add("--exclude");
            argv.add(x);
        }
        for (String x : extraExcludes) {
            argv.add("--exclude");
            argv.add(x);
        }
        argv.addAll(runtime.exportOptions(withContainers));
        if (mtimeClamp != null) {
            argv.add("--mtime-clamp");
            argv.add(Long.toString(mtimeClamp));
        }
        return argv;
    }

    /**
     * Writes the engine's storage tree as a tar to {@code out} (see {@link #exportTreeArgv}).
     *
     * @return what the exporter said besides the tar (e.g. how many containers it left out)
     */
    public List<String> exportStorage(OutputStream out, List<String> extraExcludes, boolean withContainers,
            Long mtimeClamp) throws VbakeException, InterruptedException {
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        ExitStatus st = exec(new ExecRequest(exportTreeArgv(extraExcludes, withContainers, mtimeClamp), null, null,
                false), null, out, err);
        String notes = err.toString(StandardCharsets.UTF_8);
        if (!st.succeeded()) {
            throw commandFailure("export the storage tree", st, notes);
        }
        return notes.lines().map(String::strip).filter(l -> !l.isEmpty()).toList();
    }

    /** Tells the tty command running now its terminal's new size. */
    public void resizeRunning(int rows, int cols) {
        CommandHandle h = running;
        if (h != null) {
            try {
                h.resize(rows, cols);
            } catch (IOException e) {
                events.on(new Event.Debug("could not pass the window size: " + e.getMessage()));
            }
        }
    }

    /** Forwards a signal (Ctrl-C) to the command running now, if any. */
    public void signalRunning(int signal) {
        CommandHandle h = running;
        if (h != null) {
            try {
                h.signal(signal);
            } catch (IOException e) {
                events.on(new Event.Debug("could not forward signal " + signal + ": " + e.getMessage()));
            }
        }
    }

    /**
     * Ends this command's use of the guest: saved for the next command when this session may
     * ({@link GuestOptions#resume()}) and can, else powered off; a resident guest stays up.
     */
    @Override
    public void close() throws InterruptedException {
        guest.end(options.resume());
    }

    private GuestException guestFailure(String message, Throwable cause) {
        return guest.failure(message, cause);
    }

    /**
     * Why this guest went away, in one line (QEMU's exit status, its last words, the console's
     * cause), or null when nothing is known. For the daemon, whose guest drops the agent link.
     */
    public String postMortem() {
        return guest.postMortem();
    }

    static void ensureStateDisk(StateDir state, GuestOptions options, ProcessRunner runner,
            EventListener events) throws IOException, VbakeException, InterruptedException {
        Path disk = state.stateDisk();
        if (Files.exists(disk)) {
            return;
        }
        events.on(new Event.Progress("creating state disk " + disk + " (" + options.stateSizeMb() / 1024 + " GiB, sparse)"));
        Path tmp = disk.resolveSibling(disk.getFileName() + ".new");
        Files.deleteIfExists(tmp);
        // Made on the host: mke2fs is instant here and costs seconds under TCG. Lazy inode
        // table init keeps the file sparse; the guest mounts with noinit_itable.
        List<String> argv = List.of(mke2fs(), "-t", "ext4", "-q", "-F", "-L", "vbake-state",
                "-E", "lazy_itable_init=1,lazy_journal_init=1", tmp.toString(), options.stateSizeMb() + "M");
        ProcessRunner.Result r = runner.run(argv, Map.of(), Duration.ofMinutes(2), line -> { });
        if (!r.ok()) {
            Files.deleteIfExists(tmp);
            throw new GuestException("mke2fs failed: " + String.join(" / ", r.tail()), null, null);
        }
        Files.move(tmp, disk, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    private static String mke2fs() {
        for (String p : List.of("/usr/sbin/mke2fs", "/sbin/mke2fs")) {
            if (Files.isExecutable(Path.of(p))) {
                return p;
            }
        }
        return "mke2fs";
    }

    static boolean onPath(String binary) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, binary))) {
                return true;
            }
        }
        return false;
    }

    static void phase(EventListener events, String name, long startNanos) {
        events.on(new Event.Phase(name, Duration.ofNanos(System.nanoTime() - startNanos)));
    }

    static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception ignored) {
            // releasing a lock cannot usefully fail
        }
    }
}
