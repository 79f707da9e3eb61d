package org.vbake.resident;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.vbake.agent.AgentClient;
import org.vbake.agent.AgentProtocolException;
import org.vbake.agent.Frame;
import org.vbake.agent.FrameCodec;
import org.vbake.agent.FrameType;
import org.vbake.agent.Protocol;
import org.vbake.agent.Protocol.DaemonStatus;
import org.vbake.agent.Protocol.EngineReady;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.agent.Protocol.ErrorMessage;
import org.vbake.agent.Protocol.Hello;
import org.vbake.agent.Protocol.LockRequest;
import org.vbake.agent.Protocol.PowerOffReply;
import org.vbake.agent.Protocol.SignalRequest;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.instance.StateDir;
import org.vbake.process.CommonsExecRunner;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;
import sun.misc.Signal;

/**
 * The process behind {@code vmemres start}: it boots the guest once, holds the instance lock and
 * the agent link, and serves vdkr/vpdmn clients on a unix socket (0600, in the 0700 run dir) with
 * the agent protocol itself. Each client's channels are relayed to fresh agent channels, so
 * several clients run side by side and each gets only its own frames; a client that goes away
 * has its commands killed. Ends on a client's POWEROFF, SIGTERM/SIGINT or the idle timeout (a
 * clean power-off), or when QEMU dies (recorded as such for {@code status}).
 */
public final class ResidentDaemon {

    private static final Duration TICK = Duration.ofMillis(200);
    private static final int SIGKILL = 9;
    /** How long clients of a guest that died get to read the error that says why. */
    private static final Duration CLIENTS_TOLD = Duration.ofSeconds(5);

    private final GuestOptions options;
    /** Output bytes a command may have in flight to its client (agent → daemon → client socket). */
    static final long OUTPUT_WINDOW = 4L << 20;
    /** A client queue past this is a bug or a client that ignores the window: it is dropped. */
    private static final long OUTPUT_QUEUE_LIMIT = 64L << 20;
    private static final byte[] UNLIMITED_WINDOW = Protocol.toJson(new Protocol.Window(-1));

    private final Duration idleTimeout;
    private final StateDir state;
    private final PrintStream log;
    private final EventListener events;
    private final Gate gate = new Gate();
    private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
    private final AtomicLong lastActivity = new AtomicLong(System.currentTimeMillis());
    private final CountDownLatch shutdown = new CountDownLatch(1);
    private final AtomicReference<String> shutdownReason = new AtomicReference<>();
    private final AtomicReference<Connection> stopRequester = new AtomicReference<>();
    private volatile GuestSession session;
    private final Object deathLock = new Object();
    private String deathReason;
    private volatile ServerSocketChannel server;
    private DaemonRecord record;

    private final ContainerRuntime runtime;

    ResidentDaemon(GuestOptions options, ContainerRuntime runtime, Duration idleTimeout, PrintStream log) {
        this.options = options;
        this.runtime = runtime;
        this.idleTimeout = idleTimeout;
        this.state = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        this.log = log;
        this.events = event -> {
            if (event instanceof Event.Progress p) {
                log(p.message());
            } else if (event instanceof Event.Phase p) {
                log(p.name() + ": " + p.took().toMillis() + " ms");
            } else if (event instanceof Event.Debug d) {
                log(d.message());
            }
        };
    }

    /** Runs the daemon until it is told to stop; returns the process exit code. */
    int run() {
        long pid = ProcessHandle.current().pid();
        record = new DaemonRecord(DaemonRecord.STARTING, pid, null, System.currentTimeMillis(), null, null,
                options.arch().id(), options.runtime().name().toLowerCase(), runtime.driver(), options.suite(),
                options.memoryMb(), options.cpus(), state.daemonLog().toString(), state.consoleLog().toString());
        try {
            state.create();
            writeRecord(record);
        } catch (IOException e) {
            log("cannot write " + state.daemonFile() + ": " + e.getMessage());
            return 3;
        }
        Signal.handle(new Signal("TERM"), sig -> requestShutdown("stopped by SIGTERM"));
        Signal.handle(new Signal("INT"), sig -> requestShutdown("stopped by SIGINT"));
        log("booting " + options.arch().id() + " " + options.runtime().name().toLowerCase() + " guest (" + options.suite()
                + ") for " + state.dir());
        try {
            // The guest is booted from this (main) thread, which lives as long as QEMU should:
            // QEMU runs under setpriv --pdeathsig, bound to the thread that started it.
            session = GuestSession.boot(options, new CommonsExecRunner(), events);
        } catch (VbakeException e) {
            log("boot failed: " + e.getMessage());
            finish(DaemonRecord.FAILED, e.getMessage());
            return e.exitCode();
        } catch (InterruptedException | RuntimeException e) {
            log("boot failed: " + e);
            finish(DaemonRecord.FAILED, e.toString());
            return 3;
        }
        try {
            listen();
        } catch (IOException e) {
            log("cannot listen on " + state.daemonSocket() + ": " + e.getMessage());
            powerOff();
            finish(DaemonRecord.FAILED, "cannot listen on " + state.daemonSocket() + ": " + e.getMessage());
            return 3;
        }
        record = record.with(DaemonRecord.RUNNING, qemuPid(), null);
        writeRecordQuietly();
        lastActivity.set(System.currentTimeMillis());   // idle from now, not from before the boot
        log("ready: serving " + state.daemonSocket() + (idleTimeout.isZero() ? "" : ", idle timeout "
                + idleTimeout.toSeconds() + " s"));
        String outcome = DaemonRecord.STOPPED;
        while (true) {
            try {
                if (shutdown.await(TICK.toMillis(), TimeUnit.MILLISECONDS)) {
                    break;
                }
            } catch (InterruptedException e) {
                requestShutdown("interrupted");
                break;
            }
            if (!session.isAlive()) {
                outcome = DaemonRecord.DIED;
                String why = deathReason();
                requestShutdown("QEMU exited unexpectedly (" + (why.isEmpty() ? "killed, or the guest crashed" : why)
                        + "); see " + state.consoleLog());
                break;
            }
            if (!idleTimeout.isZero() && gate.commands() == 0 && connections.isEmpty()
                    && System.currentTimeMillis() - lastActivity.get() > idleTimeout.toMillis()) {
                long secs = idleTimeout.toSeconds();
                requestShutdown("idle for " + (secs % 60 == 0 ? secs / 60 + " min" : secs + " s"));
                break;
            }
        }
        String reason = shutdownReason.get();
        log("shutting down: " + reason);
        // Recorded before the socket goes, so that 'status' never sees a running record with
        // no one answering.
        record = record.with(DaemonRecord.STOPPING, null, outcome.equals(DaemonRecord.DIED)
                ? "the guest died; cleaning up (" + reason + ")" : "powering off (" + reason + ")");
        writeRecordQuietly();
        closeServer();
        if (outcome.equals(DaemonRecord.DIED)) {
            awaitClientsTold(CLIENTS_TOLD);
            dropClients();
            closeSessionQuietly();
        } else {
            powerOff();
        }
        finish(outcome, reason);
        Connection requester = stopRequester.get();
        if (requester != null) {
            requester.sendNow(new Frame(FrameType.POWEROFF, 0, Protocol.toJson(new PowerOffReply(true, reason))));
        }
        dropClients();
        return outcome.equals(DaemonRecord.DIED) ? 3 : 0;
    }

    private Long qemuPid() {
        try {
            String pid = Files.readString(state.pidFile(), StandardCharsets.US_ASCII).strip();
            return pid.isEmpty() ? null : Long.parseLong(pid);
        } catch (IOException | NumberFormatException e) {
            return null;
        }
    }

    private void listen() throws IOException {
        Path socket = state.daemonSocket();
        Files.deleteIfExists(socket);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        // The run dir is 0700 already; the socket is made private too, in case it is moved.
        Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        Thread acceptor = new Thread(this::acceptLoop, "vbake-daemon-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    private void acceptLoop() {
        while (true) {
            SocketChannel channel;
            try {
                channel = server.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                log("accept failed: " + e.getMessage());
                return;
            }
            Connection c = new Connection(channel);
            // A connection alone is not activity: 'vmemres status' would reset the idle time it shows.
            connections.add(c);
            Thread t = new Thread(c::serve, "vbake-daemon-client");
            t.setDaemon(true);
            t.start();
        }
    }

    private void requestShutdown(String reason) {
        shutdownReason.compareAndSet(null, reason);
        shutdown.countDown();
    }

    private void powerOff() {
        dropClients();
        try {
            session.close();
        } catch (InterruptedException e) {
            log("interrupted during power-off");
        } catch (RuntimeException e) {
            log("power-off failed: " + e);
        }
    }

    private void closeSessionQuietly() {
        try {
            session.close();
        } catch (InterruptedException | RuntimeException e) {
            log("cleanup after QEMU's exit: " + e);
        }
    }

    /**
     * Why the guest went away (QEMU's status, its last words, the console's cause), worked out
     * once; "" when nothing is known. Waits a moment for a QEMU that has only dropped the link.
     */
    private String deathReason() {
        synchronized (deathLock) {
            if (deathReason == null) {
                String why = session.postMortem();
                deathReason = why == null ? "" : why;
            }
            return deathReason;
        }
    }

    /** " (why)" when the guest is gone and the reason known, else "". */
    private String because() {
        if (session.isAlive() && session.agentClient().isOpen()) {
            return "";
        }
        String why = deathReason();
        return why.isEmpty() ? "" : " (" + why + ")";
    }

    /** Until every client has had the last frame of each of its commands written (the error saying why). */
    private void awaitClientsTold(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (connections.stream().anyMatch(c -> !c.told()) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    /** Kills what clients still run and disconnects them (their commands cannot outlive the guest). */
    private void dropClients() {
        for (Connection c : List.copyOf(connections)) {
            if (c != stopRequester.get()) {
                c.close();
            }
        }
    }

    private void closeServer() {
        try {
            if (server != null) {
                server.close();
            }
            Files.deleteIfExists(state.daemonSocket());
        } catch (IOException e) {
            log("cannot remove " + state.daemonSocket() + ": " + e.getMessage());
        }
    }

    private void finish(String outcome, String message) {
        record = record.with(outcome, null, message);
        writeRecordQuietly();
        log(outcome + (message != null ? ": " + message : ""));
    }

    private void writeRecord(DaemonRecord r) throws IOException {
        r.write(state.daemonFile());
    }

    private void writeRecordQuietly() {
        try {
            writeRecord(record);
        } catch (IOException e) {
            log("cannot write " + state.daemonFile() + ": " + e.getMessage());
        }
    }

    private DaemonStatus status() {
        Long qemu = record.qemuPid();
        Long rss = null;
        if (qemu != null) {
            try {
                for (String line : Files.readAllLines(Path.of("/proc", qemu.toString(), "status"))) {
                    if (line.startsWith("VmRSS:")) {
                        rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    }
                }
            } catch (IOException | NumberFormatException ignored) {
                // QEMU just exited: no figure
            }
        }
        return new DaemonStatus(record.pid(), qemu, record.arch(), record.runtime(), record.suite(),
                record.memoryMb(), record.cpus(), record.startedMillis(), lastActivity.get(), connections.size(),
                gate.commands(), rss, idleTimeout.toSeconds(), state.dir().toString());
    }

    /** Host port -> "proto:guestPort" of the forwards QEMU has; they last as long as the guest. */
    private final Map<Integer, String> forwards = new HashMap<>();

    /** FORWARD: 127.0.0.1:hostPort to the guest's guestPort, through QEMU's user-mode network. */
    private synchronized Protocol.Forward forward(Protocol.Forward r) {
        String proto = r.protocol() == null ? "tcp" : r.protocol();
        String want = proto + ":" + r.guestPort();
        java.util.function.Function<String, Protocol.Forward> reply = message -> new Protocol.Forward(proto,
                r.hostPort(), r.guestPort(), message == null, message);
        if (!proto.equals("tcp") && !proto.equals("udp")) {
            return reply.apply("unknown protocol " + proto);
        }
        String have = forwards.get(r.hostPort());
        if (have != null) {
            return reply.apply(have.equals(want) ? null : "host port " + r.hostPort() + " already goes to guest port "
                    + have + " (ports stay forwarded until 'vmemres stop')");
        }
        try {
            String out = org.vbake.vm.QmpClient.hmp(state.qmpSocket(), "hostfwd_add "
                    + org.vbake.vm.QemuCommandLine.NETDEV + " " + proto + ":127.0.0.1:" + r.hostPort() + "-:"
                    + r.guestPort()).strip();
            if (!out.isEmpty()) {
                return reply.apply("QEMU cannot forward host port " + r.hostPort() + ": " + out);
            }
        } catch (IOException e) {
            return reply.apply("QEMU cannot forward host port " + r.hostPort() + ": " + e.getMessage());
        }
        forwards.put(r.hostPort(), want);
        log("forwarding 127.0.0.1:" + r.hostPort() + " to guest " + want);
        return reply.apply(null);
    }

    private synchronized void log(String message) {
        log.println(Instant.now() + " " + message);
        log.flush();
    }

    /**
     * Who may start commands: anyone, unless one client has asked for the guest to itself (an
     * export, an engine restart). Such a request waits for the others' running commands and
     * holds back their new ones, so it cannot be starved.
     */
    static final class Gate {
        private final Map<Object, Integer> running = new HashMap<>();
        private Object owner;
        private Object waiting;

        synchronized void enter(Object client) throws InterruptedException {
            while ((owner != null && owner != client) || (waiting != null && waiting != client)) {
                wait();
            }
            running.merge(client, 1, Integer::sum);
        }

        synchronized void exit(Object client) {
            running.computeIfPresent(client, (k, n) -> n > 1 ? n - 1 : null);
            notifyAll();
        }

        synchronized void acquire(Object client) throws InterruptedException {
            while ((owner != null && owner != client) || (waiting != null && waiting != client)) {
                wait();
            }
            waiting = client;
            try {
                while (othersRunning(client)) {
                    wait();
                }
                owner = client;
            } finally {
                waiting = null;
                notifyAll();
            }
        }

        synchronized void release(Object client) {
            if (owner == client) {
                owner = null;
                notifyAll();
            }
        }

        synchronized boolean holds(Object client) {
            return owner == client;
        }

        synchronized int commands() {
            return running.values().stream().mapToInt(Integer::intValue).sum();
        }

        private boolean othersRunning(Object client) {
            return running.keySet().stream().anyMatch(k -> k != client);
        }
    }

    /** One client: its frames in, its channels' frames out. */
    private final class Connection {
        private final SocketChannel channel;
        private final OutputStream out;
        private final ClientOutput output;
        // client channel -> agent channel
        private final Map<Integer, Integer> channels = new ConcurrentHashMap<>();
        private volatile boolean engineStopped;
        private volatile boolean closed;

        Connection(SocketChannel channel) {
            this.channel = channel;
            this.out = new AgentClient.ChannelOutput(channel);
            this.output = new ClientOutput(out, out, OUTPUT_QUEUE_LIMIT, e -> close());
        }

        void serve() {
            try {
                DataInputStream in = new DataInputStream(new BufferedInputStream(
                        new AgentClient.ChannelInput(channel), 1 << 16));
                Frame first = FrameCodec.read(in);
                if (!hello(first)) {
                    return;
                }
                while (true) {
                    handle(FrameCodec.read(in));
                }
            } catch (EOFException | ClosedChannelException e) {
                // the client went away
            } catch (IOException e) {
                if (!closed) {
                    log("client link failed: " + e.getMessage());
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                cleanUp();
            }
        }

        private boolean hello(Frame first) throws IOException {
            if (first.type() != FrameType.HELLO) {
                sendError(0, "HELLO first");
                return false;
            }
            if (!session.isAlive() || !agent().isOpen()) {
                sendError(0, "the resident guest has died" + because() + "; see " + state.consoleLog()
                        + "; it is being cleaned up");
                return false;
            }
            Hello theirs = Protocol.fromJson(first, Hello.class);
            if (theirs.protocol() != Protocol.VERSION) {
                sendError(0, "this resident guest speaks protocol " + Protocol.VERSION + ", not " + theirs.protocol());
                return false;
            }
            send(new Frame(FrameType.HELLO, 0, Protocol.toJson(session.hello())));
            return true;
        }

        private void handle(Frame f) throws IOException, InterruptedException {
            switch (f.type()) {
                case EXEC -> exec(f);
                case STDIN, SIGNAL, RESIZE -> {
                    Integer agentChannel = channels.get(f.channel());
                    if (agentChannel != null) {
                        try {
                            agent().relay(f.type(), agentChannel, f.payload());
                        } catch (IOException e) {
                            // The agent link is gone, not this client's: the relay's lost() tells
                            // it why. Ending the connection here would drop that message.
                        }
                    }
                }
                case LOCK -> lock(Protocol.fromJson(f, LockRequest.class));
                case ENGINE -> engine(Protocol.fromJson(f, EngineRequest.class));
                case STATUS -> send(new Frame(FrameType.STATUS, 0, Protocol.toJson(status())));
                case FORWARD -> send(new Frame(FrameType.FORWARD, 0,
                        Protocol.toJson(forward(Protocol.fromJson(f, Protocol.Forward.class)))));
                case POWEROFF -> {
                    log("power-off asked for by a client");
                    stopRequester.compareAndSet(null, this);
                    requestShutdown("stopped by vmemres stop");
                }
                default -> sendError(f.channel(), "unexpected " + f.type() + " from a client");
            }
        }

        private void exec(Frame f) throws IOException, InterruptedException {
            int clientChannel = f.channel();
            if (clientChannel == 0 || channels.containsKey(clientChannel)) {
                sendError(clientChannel, "channel " + clientChannel + " is in use");
                return;
            }
            // The agent sends a command's output only as fast as this client takes it (see
            // ClientOutput): a client that stops reading holds up its own command, nobody else.
            byte[] payload;
            try {
                payload = Protocol.withOutputWindow(f, OUTPUT_WINDOW);
            } catch (AgentProtocolException e) {
                sendError(clientChannel, e.getMessage());
                return;
            }
            gate.enter(this);
            lastActivity.set(System.currentTimeMillis());
            AgentClient.Relay relay = new AgentClient.Relay() {
                private volatile int agentChannel;

                @Override
                public void started(int channel) {
                    agentChannel = channel;
                }

                @Override
                public void frame(Frame frame) {
                    boolean last = frame.type() == FrameType.EXIT || frame.type() == FrameType.ERROR;
                    if (last) {
                        channels.remove(clientChannel);
                        gate.exit(Connection.this);
                        lastActivity.set(System.currentTimeMillis());
                    }
                    boolean output = frame.type() == FrameType.STDOUT || frame.type() == FrameType.STDERR;
                    int n = frame.payload().length;
                    int ch = agentChannel;
                    relayOut(new Frame(frame.type(), clientChannel, frame.payload()),
                            output && n > 0 ? () -> grant(ch, n) : null);
                }

                @Override
                public void lost(AgentProtocolException failure) {
                    // Queued before the channel is let go, so awaitClientsTold() sees it pending.
                    if (!closed) {   // closed: the daemon is stopping the guest itself, nobody to tell
                        relayOut(new Frame(FrameType.ERROR, clientChannel, Protocol.toJson(new ErrorMessage(
                                "the resident guest's agent link was lost: " + failure.getMessage() + because()
                                        + "; see " + state.consoleLog()))), null);
                    }
                    channels.remove(clientChannel);
                    gate.exit(Connection.this);
                }
            };
            try {
                int agentChannel = agent().startRelay(payload, relay);
                // An EXIT that beats this line leaves a mapping to a finished channel, which
                // relay() and kill() then ignore.
                channels.putIfAbsent(clientChannel, agentChannel);
                if (closed) {
                    kill(agentChannel);
                }
            } catch (IOException e) {
                gate.exit(this);
                sendError(clientChannel, "cannot start the command: " + e.getMessage() + because());
            }
        }

        private void lock(LockRequest request) throws IOException, InterruptedException {
            if (request.hold()) {
                gate.acquire(this);
            } else {
                gate.release(this);
            }
            send(new Frame(FrameType.LOCK, 0, Protocol.toJson(new LockRequest(request.hold(), true, null))));
        }

        private void engine(EngineRequest request) throws IOException, InterruptedException {
            if (!gate.holds(this)) {
                send(new Frame(FrameType.ENGINE_READY, 0, Protocol.toJson(new EngineReady(false, 0L,
                        "take LOCK before stopping or starting the engine"))));
                return;
            }
            EngineReady reply;
            try {
                reply = agent().startEngine(request, Duration.ofMillis(request.timeoutMillis()).plusSeconds(30));
            } catch (AgentProtocolException e) {
                reply = new EngineReady(false, 0L, e.getMessage());
            }
            if (reply.ok()) {
                engineStopped = request.stopping();
            }
            log((request.stopping() ? "engine stopped" : "engine started") + " for a client: "
                    + (reply.ok() ? "ok" : reply.message()));
            send(new Frame(FrameType.ENGINE_READY, 0, Protocol.toJson(reply)));
        }

        private void cleanUp() {
            closed = true;
            connections.remove(this);
            for (Integer agentChannel : channels.values()) {
                kill(agentChannel);
            }
            if (engineStopped) {
                // The client stopped the engine and went away before starting it again.
                log("a client left with the engine stopped: starting it again");
                try {
                    EngineReady r = agent().startEngine(runtime.engine(options.bootTimeout().toMillis(), options.network()),
                            options.bootTimeout());
                    log("engine restart: " + (r.ok() ? "ok" : r.message()));
                } catch (IOException | InterruptedException e) {
                    log("engine restart failed: " + e.getMessage());
                }
            }
            gate.release(this);
            if (!channels.isEmpty() || engineStopped) {
                lastActivity.set(System.currentTimeMillis());   // its commands were cut short just now
            }
            if (stopRequester.get() != this) {
                close();
            }
        }

        private void kill(int agentChannel) {
            try {
                agent().relay(FrameType.SIGNAL, agentChannel, Protocol.toJson(new SignalRequest(SIGKILL)));
                // Nobody reads its output any more: the agent may send the rest without waiting.
                agent().relay(FrameType.WINDOW, agentChannel, UNLIMITED_WINDOW);
            } catch (IOException e) {
                // the agent link is gone: nothing runs any more
            }
        }

        /** The client has its {@code bytes} of output: the agent may send as many more. */
        private void grant(int agentChannel, int bytes) {
            try {
                agent().relay(FrameType.WINDOW, agentChannel, Protocol.toJson(new Protocol.Window(bytes)));
            } catch (IOException e) {
                // the agent link is gone; the relay's lost() tells the client
            }
        }

        private AgentClient agent() {
            return session.agentClient();
        }

        private void sendError(int ch, String message) throws IOException {
            send(new Frame(FrameType.ERROR, ch, Protocol.toJson(new ErrorMessage(message))));
        }

        void send(Frame frame) throws IOException {
            synchronized (out) {
                FrameCodec.write(out, frame);
            }
        }

        /**
         * From the agent's reader thread: queued for this client's writer, never blocking. A
         * client this far behind despite the output window is dropped.
         */
        void relayOut(Frame frame, Runnable afterWrite) {
            if (closed) {
                return;
            }
            if (!output.offer(frame, afterWrite) && !closed) {
                log("a client is " + output.queuedBytes() / (1024 * 1024) + " MiB behind on its output: dropped");
                close();
            }
        }

        /** Now, from this thread; a client that is gone is closed. */
        void sendNow(Frame frame) {
            try {
                send(frame);
            } catch (IOException e) {
                close();
            }
        }

        /** Nothing of this client's commands left to write: they ended, or the client is gone. */
        boolean told() {
            return closed || (channels.isEmpty() && output.idle());
        }

        void close() {
            closed = true;
            output.close();
            try {
                channel.close();
            } catch (IOException ignored) {
                // closing is all we wanted
            }
        }
    }

    /** Entry point of the daemon process: {@code --key value} pairs from {@link ResidentClient#start}. */
    public static int main(String[] args, PrintStream log) {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        try {
            // The resident guest gets a NIC, so containers can publish ports (-p) to the host.
            GuestOptions options = ResidentClient.optionsFromArgs(a).withNetwork(true);
            Duration idle = Duration.ofSeconds(Long.parseLong(a.getOrDefault("--idle-timeout", "0")));
            return new ResidentDaemon(options, ContainerRuntime.of(options.runtime(), options.storageDriver()), idle,
                    log).run();
        } catch (RuntimeException | org.vbake.api.BadInputException e) {
            log.println(Instant.now() + " bad daemon arguments: " + e.getMessage());
            return 2;
        }
    }
}
