package org.vbake.resident;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.vbake.agent.AgentClient;
import org.vbake.agent.Protocol.DaemonStatus;
import org.vbake.agent.Protocol.Hello;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import org.vbake.instance.StateDir;
import org.vbake.session.GuestOptions;

/**
 * The client side of memory-resident mode: finds a resident guest's daemon for an instance,
 * starts one as a detached process, stops it, and reports on it. Stale files of a daemon that
 * was killed are cleaned up here, by whichever command comes next.
 */
public final class ResidentClient {

    /** The program name under which {@code Main} runs {@link ResidentDaemon}. */
    public static final String DAEMON_PROG = "vbake-daemon";

    private static final Duration HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(90);

    private ResidentClient() {
    }

    /** A connection to a running daemon, after the handshake. */
    public record Link(AgentClient client, Hello hello, DaemonRecord record) implements AutoCloseable {
        @Override
        public void close() {
            client.close();
        }
    }

    /**
     * One state per moment, each with its exit code for {@code vmemres status}: a script polls
     * until it sees the final state it waits for, never a mixture of two.
     */
    public enum State {
        /** The daemon answers; commands go to its guest. */
        RUNNING("running", 0),
        /** No daemon: never started, stopped, its boot failed, or its guest died (the record says which). */
        STOPPED("stopped", 1),
        /** A daemon that is alive and claims to serve, but its socket does not answer. */
        NOT_ANSWERING("not answering", 3),
        /** The daemon is booting its guest. */
        STARTING("starting", 4),
        /** The daemon is powering its guest off, or cleaning up after a guest that died. */
        STOPPING("stopping", 5);

        private final String label;
        private final int exitCode;

        State(String label, int exitCode) {
            this.label = label;
            this.exitCode = exitCode;
        }

        public String label() {
            return label;
        }

        public int exitCode() {
            return exitCode;
        }

        /** True while a daemon process exists for the instance (anything but stopped). */
        public boolean daemonAlive() {
            return this != STOPPED;
        }
    }

    /** What {@code vmemres status} reports: the state, the record, and live figures when the daemon answered. */
    public record Status(StateDir state, State current, DaemonRecord record, DaemonStatus live, String note) {
        public boolean running() {
            return current == State.RUNNING;
        }
    }

    /**
     * Connects to the instance's resident guest if one is up; null otherwise. A daemon that is
     * still booting is waited for; the files of one that died are cleaned up.
     */
    public static Link connect(StateDir state, Duration bootWait) throws VbakeException, InterruptedException {
        long deadline = System.nanoTime() + bootWait.toNanos();
        while (true) {
            DaemonRecord r = DaemonRecord.read(state.daemonFile());
            if (r == null || !r.claimsAlive()) {
                return null;
            }
            if (!daemonAlive(r)) {
                cleanStale(state, r);
                return null;
            }
            if (r.state().equals(DaemonRecord.RUNNING)) {
                Link link = tryConnect(state, r);
                if (link != null) {
                    return link;
                }
            }
            if (System.nanoTime() > deadline) {
                throw new GuestException("the resident guest (daemon pid " + r.pid() + ") does not answer on "
                        + state.daemonSocket(), state.daemonLog(), null);
            }
            Thread.sleep(100);
        }
    }

    private static Link tryConnect(StateDir state, DaemonRecord r) throws InterruptedException {
        if (!Files.exists(state.daemonSocket())) {
            return null;
        }
        AgentClient client;
        try {
            client = AgentClient.connect(state.daemonSocket(), Duration.ZERO);
        } catch (IOException e) {
            return null;   // shutting down, or not listening yet
        }
        try {
            Hello hello = client.handshake(HANDSHAKE_TIMEOUT);
            return new Link(client, hello, r);
        } catch (IOException e) {
            client.close();
            return null;
        }
    }

    /** True when the record's daemon process is still this daemon (not a recycled pid). */
    static boolean daemonAlive(DaemonRecord r) {
        Optional<ProcessHandle> p = ProcessHandle.of(r.pid());
        return p.isPresent() && p.get().isAlive()
                && p.get().info().command().map(c -> c.contains("java")).orElse(true);
    }

    /**
     * After a daemon that can no longer clean up itself (SIGKILL, OOM): QEMU is killed if it is
     * still there (it normally dies with the daemon), the socket removed and the record marked.
     * The state disk is left to the next boot, whose ext4 journal replay makes it consistent.
     */
    static void cleanStale(StateDir state, DaemonRecord r) {
        if (r.qemuPid() != null) {
            ProcessHandle.of(r.qemuPid()).filter(ProcessHandle::isAlive)
                    .filter(q -> q.info().command().map(c -> c.contains("qemu-system")).orElse(false))
                    .ifPresent(q -> {
                        q.destroyForcibly();
                        try {
                            q.onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
                        } catch (Exception ignored) {
                            // best effort: the next boot reports QEMU it cannot replace
                        }
                    });
        }
        try {
            Files.deleteIfExists(state.daemonSocket());
            Files.deleteIfExists(state.pidFile());
            r.with(DaemonRecord.DIED, null, "the resident daemon (pid " + r.pid() + ") ended without shutting "
                    + "down; cleaned up" + (r.message() != null ? " (" + r.message() + ")" : "")).write(state.daemonFile());
        } catch (IOException ignored) {
            // an unwritable run dir shows up as an error when the next guest boots
        }
    }

    /**
     * Starts a resident guest as a detached daemon process and waits until it serves. The
     * daemon's progress goes to {@link StateDir#daemonLog()}.
     */
    public static Link start(GuestOptions options, Duration idleTimeout, EventListener events)
            throws VbakeException, InterruptedException {
        StateDir state = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        Link running = connect(state, options.bootTimeout());
        if (running != null) {
            return running;
        }
        try {
            state.create();
        } catch (IOException e) {
            throw new BadInputException("cannot use state directory " + state.dir() + ": " + e.getMessage());
        }
        List<String> argv = daemonCommand(options, idleTimeout);
        events.on(new Event.Debug("daemon: " + String.join(" ", argv)));
        events.on(new Event.Progress("starting a resident " + options.arch().id() + " guest (log: "
                + state.daemonLog() + ")"));
        long t0 = System.nanoTime();
        Process process;
        try {
            Files.deleteIfExists(state.daemonFile());
            ProcessBuilder pb = new ProcessBuilder(argv)
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectOutput(ProcessBuilder.Redirect.to(state.daemonLog().toFile()))
                    .redirectErrorStream(true);
            process = pb.start();
        } catch (IOException e) {
            throw new GuestException("cannot start the resident daemon: " + e.getMessage(), state.daemonLog(), e);
        }
        long deadline = System.nanoTime() + options.bootTimeout().plusMinutes(1).toNanos();
        while (true) {
            DaemonRecord r = DaemonRecord.read(state.daemonFile());
            if (r != null && r.pid() == process.pid() || r != null && setsidChild(process, r)) {
                if (r.state().equals(DaemonRecord.RUNNING)) {
                    Link link = tryConnect(state, r);
                    if (link != null) {
                        events.on(new Event.Phase("resident guest started", Duration.ofNanos(System.nanoTime() - t0)));
                        return link;
                    }
                } else if (!r.claimsAlive()) {
                    throw new GuestException("the resident guest did not start: " + r.message(), state.daemonLog(),
                            null);
                }
            }
            if (!process.isAlive() && (r == null || !daemonAlive(r))) {
                throw new GuestException("the resident daemon exited (code " + process.exitValue() + ") before the "
                        + "guest was up", state.daemonLog(), null);
            }
            if (System.nanoTime() > deadline) {
                process.destroyForcibly();
                throw new GuestException("the resident guest did not come up within "
                        + options.bootTimeout().plusMinutes(1).toSeconds() + " s", state.daemonLog(), null);
            }
            Thread.sleep(100);
        }
    }

    /** setsid execs the JVM in place, so the daemon's pid is the started process's own. */
    private static boolean setsidChild(Process process, DaemonRecord r) {
        return process.children().anyMatch(c -> c.pid() == r.pid());
    }

    /** The daemon's command line: this JVM's java and class path, in a session of its own. */
    static List<String> daemonCommand(GuestOptions options, Duration idleTimeout) {
        List<String> argv = new ArrayList<>();
        // Its own session: a Ctrl-C in the terminal that started it must not reach it.
        if (Files.isExecutable(Path.of("/usr/bin/setsid"))) {
            argv.add("/usr/bin/setsid");
        }
        argv.add(ProcessHandle.current().info().command().orElse("java"));
        argv.addAll(List.of("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xmx192m", "-Xss512k",
                "-Dvbake.prog=" + DAEMON_PROG, "-cp", System.getProperty("java.class.path"),
                "org.vbake.cli.Main"));
        argv.addAll(List.of("--arch", options.arch().id(), "--runtime", options.runtime().name().toLowerCase(),
                "--suite", options.suite(), "--memory", Integer.toString(options.memoryMb()),
                "--cpus", Integer.toString(options.cpus()), "--idle-timeout", Long.toString(idleTimeout.toSeconds())));
        if (options.stateRoot() != null) {
            argv.addAll(List.of("--state-root", options.stateRoot().toAbsolutePath().toString()));
        }
        if (options.cacheDir() != null) {
            argv.addAll(List.of("--cache-dir", options.cacheDir().toAbsolutePath().toString()));
        }
        if (options.storageDriver() != null) {
            argv.addAll(List.of("--driver", options.storageDriver()));
        }
        argv.addAll(List.of("--resume", Boolean.toString(options.resume())));
        return argv;
    }

    static GuestOptions optionsFromArgs(Map<String, String> a) throws BadInputException {
        Arch arch = Arch.parse(a.get("--arch")).orElseThrow(() -> new BadInputException("--arch"));
        RuntimeKind runtime = RuntimeKind.parse(a.get("--runtime")).orElseThrow(() -> new BadInputException("--runtime"));
        GuestOptions o = GuestOptions.defaults(arch, runtime)
                .withSuite(a.getOrDefault("--suite", GuestOptions.DEFAULT_SUITE))
                .withResources(Integer.parseInt(a.getOrDefault("--memory", "0")),
                        Integer.parseInt(a.getOrDefault("--cpus", "0")))
                .withStorageDriver(a.get("--driver"));
        if (a.containsKey("--state-root")) {
            o = o.withStateRoot(Path.of(a.get("--state-root")));
        }
        if (a.containsKey("--cache-dir")) {
            o = o.withCacheDir(Path.of(a.get("--cache-dir")));
        }
        return o.withResume(!"false".equals(a.get("--resume")));
    }

    /**
     * Stops the instance's resident guest: a clean power-off (engine stopped, state disk synced
     * and unmounted), then waits for the daemon to exit. Returns a line for the user.
     */
    public static String stop(StateDir state) throws VbakeException, InterruptedException {
        DaemonRecord r = DaemonRecord.read(state.daemonFile());
        if (r == null || !r.claimsAlive()) {
            return "not running";
        }
        if (!daemonAlive(r)) {
            cleanStale(state, r);
            return "not running (the daemon had died; cleaned up)";
        }
        long t0 = System.nanoTime();
        Link link = connect(state, Duration.ofMinutes(4));
        if (link == null) {
            return "not running";
        }
        try (link) {
            link.client().powerOff(STOP_TIMEOUT);
        } catch (IOException e) {
            // The daemon closes the link once the guest is off; the wait below decides.
        }
        Optional<ProcessHandle> p = ProcessHandle.of(r.pid());
        if (p.isPresent()) {
            try {
                p.get().onExit().get(STOP_TIMEOUT.toSeconds(), java.util.concurrent.TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
                p.get().destroyForcibly();
                throw new GuestException("the resident daemon (pid " + r.pid() + ") did not exit; killed it",
                        state.daemonLog(), null);
            }
        }
        return String.format("stopped (%.1f s)", (System.nanoTime() - t0) / 1e9);
    }

    /** How long {@link #status} retries a running daemon whose socket does not answer. */
    private static final Duration ANSWER_WAIT = Duration.ofSeconds(3);

    /** The instance's status; never boots anything. */
    public static Status status(StateDir state) throws InterruptedException {
        long deadline = System.nanoTime() + ANSWER_WAIT.toNanos();
        while (true) {
            DaemonRecord r = DaemonRecord.read(state.daemonFile());
            if (r == null) {
                return new Status(state, State.STOPPED, null, null, null);
            }
            if (!r.claimsAlive()) {
                return new Status(state, State.STOPPED, r, null, null);
            }
            if (!daemonAlive(r)) {
                cleanStale(state, r);
                return new Status(state, State.STOPPED, DaemonRecord.read(state.daemonFile()), null, null);
            }
            if (r.state().equals(DaemonRecord.STARTING)) {
                return new Status(state, State.STARTING, r, null, "booting the guest");
            }
            if (r.state().equals(DaemonRecord.STOPPING)) {
                return new Status(state, State.STOPPING, r, null, r.message());
            }
            // RUNNING, by the record.
            if (qemuGone(r.qemuPid())) {
                return qemuDied(state, r, r.qemuPid());
            }
            Link link = tryConnect(state, r);
            if (link != null) {
                try (link) {
                    DaemonStatus live = link.client().status(HANDSHAKE_TIMEOUT);
                    if (qemuGone(live.qemuPid())) {
                        return qemuDied(state, r, live.qemuPid());
                    }
                    return new Status(state, State.RUNNING, r, live, null);
                } catch (IOException e) {
                    // The daemon may have begun to stop between the record and the connection.
                }
            }
            if (System.nanoTime() > deadline) {
                return new Status(state, State.NOT_ANSWERING, r, null, "the daemon (pid " + r.pid()
                        + ") does not answer on " + state.daemonSocket());
            }
            Thread.sleep(100);
        }
    }

    private static boolean qemuGone(Long qemuPid) {
        return qemuPid != null && !ProcessHandle.of(qemuPid).map(ProcessHandle::isAlive).orElse(false);
    }

    /** A daemon whose QEMU died has not recorded it yet (it does within a moment): it is stopping. */
    private static Status qemuDied(StateDir state, DaemonRecord r, long qemuPid) {
        return new Status(state, State.STOPPING, r, null, "QEMU (pid " + qemuPid
                + ") is gone, killed or crashed; the daemon is cleaning up");
    }
}
