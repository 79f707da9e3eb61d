package org.vbake.agent;

import java.io.BufferedInputStream;
import java.io.Closeable;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.vbake.agent.Protocol.EngineReady;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.agent.Protocol.ErrorMessage;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.agent.Protocol.Hello;
import org.vbake.agent.Protocol.PowerOffReply;
import org.vbake.agent.Protocol.Window;

/**
 * The host side of the guest agent protocol (docs/agent-protocol.md) over one byte stream:
 * handshake, commands with framed stdin/stdout/stderr and exit status, engine start-up and
 * power-off.
 *
 * <p>One daemon reader thread demultiplexes incoming frames by channel and never writes, so a
 * slow or blocked writer cannot stall the delivery of replies. When the link ends (EOF, a bad
 * frame, {@link #close()}), every waiter fails at once with {@link AgentProtocolException}
 * instead of running into its timeout: a dead QEMU shows up as a closed socket.
 */
public final class AgentClient implements Closeable {

    /** What this client announces in its HELLO. */
    public static final String CLIENT_NAME = "vbake/0.1";

    private static final long CONNECT_RETRY_MILLIS = 20;
    // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
    private static final int MAX_UNIX_PATH_BYTES = 107;
    private static final int READ_BUFFER = 64 * 1024;
    private static final int SIGKILL = 9;

    private final InputStream in;
    private final OutputStream out;
    private final Closeable transport;
    private final Consumer<String> events;
    private final boolean traceFrames;
    private final Thread reader;

    private final AtomicInteger nextChannel = new AtomicInteger(1);
    private final Map<Integer, CommandHandle> commands = new ConcurrentHashMap<>();
    private final Map<Integer, Relay> relays = new ConcurrentHashMap<>();
    // Link-level requests on channel 0 carry no id, so at most one of each kind may be waiting.
    private final AtomicReference<CompletableFuture<Frame>> pendingHello = new AtomicReference<>();
    private final AtomicReference<CompletableFuture<Frame>> pendingEngine = new AtomicReference<>();
    private final AtomicReference<CompletableFuture<Frame>> pendingPowerOff = new AtomicReference<>();
    private final AtomicReference<CompletableFuture<Frame>> pendingLock = new AtomicReference<>();
    private final AtomicReference<CompletableFuture<Frame>> pendingStatus = new AtomicReference<>();
    private final AtomicReference<CompletableFuture<Frame>> pendingForward = new AtomicReference<>();
    private final AtomicReference<AgentProtocolException> linkFailure = new AtomicReference<>();
    private volatile boolean handshakeDone;
    private volatile boolean poweredOff;

    /** A client over an already connected stream pair, without events. */
    public AgentClient(InputStream in, OutputStream out) {
        this(in, out, null, null, false);
    }

    /**
     * A client over an already connected stream pair.
     *
     * @param events receives one-line debug messages (connection, ignored frames, link loss);
     *     may be null. Called from the reader thread and, when tracing, from sending threads,
     *     so it must be thread-safe and must not block.
     * @param traceFrames also report every frame sent and received
     */
    public AgentClient(InputStream in, OutputStream out, Consumer<String> events, boolean traceFrames) {
        this(in, out, null, events, traceFrames);
    }

    private AgentClient(InputStream in, OutputStream out, Closeable transport, Consumer<String> events,
            boolean traceFrames) {
        this.in = Objects.requireNonNull(in, "in");
        this.out = Objects.requireNonNull(out, "out");
        this.transport = transport;
        this.events = events == null ? message -> { } : events;
        this.traceFrames = traceFrames;
        this.reader = new Thread(this::readLoop, "vbake-agent-reader");
        reader.setDaemon(true);
        reader.start();
    }

    /** {@link #connect(Path, Duration, Consumer, boolean)} without events. */
    public static AgentClient connect(Path unixSocket, Duration timeout) throws IOException, InterruptedException {
        return connect(unixSocket, timeout, null, false);
    }

    /**
     * Connects to the unix socket QEMU serves for the agent's port, retrying every 20 ms until it
     * exists and accepts: QEMU creates it a little after it starts.
     */
    public static AgentClient connect(Path unixSocket, Duration timeout, Consumer<String> events,
            boolean traceFrames) throws IOException, InterruptedException {
        if (unixSocket.toString().getBytes(StandardCharsets.UTF_8).length > MAX_UNIX_PATH_BYTES) {
            throw new IOException("agent socket path is longer than " + MAX_UNIX_PATH_BYTES
                    + " bytes, which unix sockets cannot use: " + unixSocket);
        }
        UnixDomainSocketAddress address = UnixDomainSocketAddress.of(unixSocket);
        long deadline = System.nanoTime() + nanos(timeout);
        while (true) {
            SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                channel.connect(address);
                return new AgentClient(new ChannelInput(channel), new ChannelOutput(channel), channel,
                        events, traceFrames);
            } catch (IOException e) {
                channel.close();
                if (System.nanoTime() - deadline >= 0) {
                    throw new IOException("cannot connect to the agent socket " + unixSocket
                            + " within " + timeout + ": " + e.getMessage(), e);
                }
            }
            Thread.sleep(CONNECT_RETRY_MILLIS);
        }
    }

    /**
     * Sends HELLO and waits for the agent's. Nothing else may be sent before this succeeds.
     * QEMU holds the HELLO until the guest opens its port, so {@code timeout} covers the boot.
     *
     * @throws AgentProtocolException when the agent answers ERROR (e.g. another protocol
     *     version), no reply comes within {@code timeout}, or the link closes
     */
    public Hello handshake(Duration timeout) throws IOException, InterruptedException {
        Frame hello = new Frame(FrameType.HELLO, 0, Protocol.toJson(Hello.fromClient(CLIENT_NAME)));
        Frame reply = request(pendingHello, hello, timeout, "HELLO");
        Hello agent = Protocol.fromJson(reply, Hello.class);
        if (agent.protocol() != Protocol.VERSION) {
            throw new AgentProtocolException("agent " + agent.agent() + " speaks protocol "
                    + agent.protocol() + ", vbake speaks " + Protocol.VERSION);
        }
        handshakeDone = true;
        emit("agent " + agent.agent() + " on " + agent.arch() + ", kernel " + agent.kernel()
                + ", up " + agent.uptimeMillis() + " ms");
        return agent;
    }

    /**
     * Runs a command and waits for it; {@code start(...).waitFor()}, except that an interrupt
     * while waiting kills the command rather than leaving it running in the guest.
     */
    public ExitStatus exec(ExecRequest request, InputStream stdinOrNull, OutputStream out, OutputStream err)
            throws IOException, InterruptedException {
        CommandHandle command = start(request, stdinOrNull, out, err);
        try {
            return command.waitFor();
        } catch (InterruptedException e) {
            try {
                command.signal(SIGKILL);
            } catch (IOException killFailed) {
                e.addSuppressed(killFailed);
            }
            throw e;
        }
    }

    /**
     * Starts a command on a fresh channel. Its stdout and stderr are written (and flushed) to
     * {@code out} and {@code err} from the reader thread as frames arrive; either may be null to
     * discard. A non-null {@code stdinOrNull} is sent as the command's stdin (the request goes
     * out with {@code "stdin":true}); a request with {@code stdin} set and no stream gets an
     * empty stdin. The caller keeps ownership of all three streams.
     */
    public CommandHandle start(ExecRequest request, InputStream stdinOrNull, OutputStream out, OutputStream err)
            throws IOException {
        requireHandshake();
        ExecRequest wire = stdinOrNull != null && !request.stdin() ? request.withStdin(true) : request;
        int channel;
        do {
            // Channel 0 is the link's own; skip it should the counter ever wrap.
            channel = nextChannel.getAndIncrement();
        } while (channel == 0);
        CommandHandle command = new CommandHandle(this, channel, out, err);
        // Registered before EXEC goes out, so output that races the return is not dropped.
        commands.put(channel, command);
        try {
            send(new Frame(FrameType.EXEC, channel, Protocol.toJson(wire)));
        } catch (IOException | RuntimeException e) {
            commands.remove(channel);
            throw e;
        }
        if (wire.stdin()) {
            command.startStdinPump(stdinOrNull == null ? InputStream.nullInputStream() : stdinOrNull);
        }
        return command;
    }

    /**
     * Asks the agent to start the container engine and waits for ENGINE_READY. {@code timeout} is
     * the host's own deadline and should exceed {@code request.timeoutMillis()}, so the agent's
     * answer (with its reason) normally arrives first. A reply with {@code ok:false} is returned,
     * not thrown.
     */
    public EngineReady startEngine(EngineRequest request, Duration timeout) throws IOException, InterruptedException {
        requireHandshake();
        Frame reply = request(pendingEngine, new Frame(FrameType.ENGINE, 0, Protocol.toJson(request)),
                timeout, "ENGINE_READY");
        return Protocol.fromJson(reply, EngineReady.class);
    }

    /**
     * Asks the agent to kill all commands, stop the engine, sync, unmount the state disk and power
     * the guest off, and waits for its reply. The link closing right after the reply is expected.
     */
    public PowerOffReply powerOff(Duration timeout) throws IOException, InterruptedException {
        requireHandshake();
        Frame reply = request(pendingPowerOff,
                new Frame(FrameType.POWEROFF, 0, "{}".getBytes(StandardCharsets.UTF_8)), timeout, "POWEROFF");
        poweredOff = true;
        return Protocol.fromJson(reply, PowerOffReply.class);
    }

    /**
     * LOCK, to a resident guest's daemon: takes ({@code hold}) or gives back the guest for this
     * connection alone. Taking it waits for other clients' commands to finish.
     */
    public Protocol.LockRequest lock(boolean hold, Duration timeout) throws IOException, InterruptedException {
        requireHandshake();
        Frame reply = request(pendingLock, new Frame(FrameType.LOCK, 0,
                Protocol.toJson(new Protocol.LockRequest(hold, null, null))), timeout, "LOCK");
        return Protocol.fromJson(reply, Protocol.LockRequest.class);
    }

    /** STATUS, to a resident guest's daemon. */
    public Protocol.DaemonStatus status(Duration timeout) throws IOException, InterruptedException {
        requireHandshake();
        Frame reply = request(pendingStatus, new Frame(FrameType.STATUS, 0, "{}".getBytes(StandardCharsets.UTF_8)),
                timeout, "STATUS");
        return Protocol.fromJson(reply, Protocol.DaemonStatus.class);
    }

    /** FORWARD, to a resident guest's daemon: a host port to a guest port. */
    public Protocol.Forward forward(Protocol.Forward request, Duration timeout) throws IOException, InterruptedException {
        requireHandshake();
        Frame reply = request(pendingForward, new Frame(FrameType.FORWARD, 0, Protocol.toJson(request)), timeout,
                "FORWARD");
        return Protocol.fromJson(reply, Protocol.Forward.class);
    }

    /** Receives the frames of a relayed channel, on the reader thread; must not block for long. */
    public interface Relay {
        /** A frame of the channel; after EXIT or ERROR nothing more comes. */
        void frame(Frame frame);

        /** The link ended before the channel did. */
        void lost(AgentProtocolException failure);

        /** The agent channel chosen for this relay, before its EXEC is sent (frames may follow at once). */
        default void started(int agentChannel) {
        }
    }

    /**
     * Starts a command whose frames are passed through unread: a resident guest's daemon relays
     * its clients' channels this way, so stdin credit and output go end to end. Returns the
     * channel to use with {@link #relay}.
     */
    public int startRelay(byte[] execPayload, Relay sink) throws IOException {
        requireHandshake();
        int channel;
        do {
            channel = nextChannel.getAndIncrement();
        } while (channel == 0);
        sink.started(channel);
        relays.put(channel, sink);
        try {
            send(new Frame(FrameType.EXEC, channel, execPayload));
        } catch (IOException | RuntimeException e) {
            relays.remove(channel);
            throw e;
        }
        return channel;
    }

    /** Sends a client's STDIN, SIGNAL or RESIZE frame on to a relayed channel. */
    public void relay(FrameType type, int channel, byte[] payload) throws IOException {
        if (!relays.containsKey(channel)) {
            return;   // the command has ended; the agent would ignore it anyway
        }
        send(new Frame(type, channel, payload));
    }

    /** False once the link has ended for any reason. */
    public boolean isOpen() {
        return linkFailure.get() == null;
    }

    /** Closes the link; every waiter fails with "agent client closed". */
    @Override
    public void close() {
        linkFailed(new AgentProtocolException("agent client closed"));
        closeTransport();
        // Piped and other plain streams may not wake a blocked read on close.
        reader.interrupt();
    }

    // ---- sending ----

    void send(Frame frame) throws AgentProtocolException {
        AgentProtocolException dead = linkFailure.get();
        if (dead != null) {
            throw new AgentProtocolException(dead.getMessage(), dead);
        }
        if (traceFrames) {
            emit("-> " + frame);
        }
        try {
            synchronized (out) {
                FrameCodec.write(out, frame);
            }
        } catch (IOException e) {
            dead = linkFailure.get();
            if (dead != null) {
                throw new AgentProtocolException(dead.getMessage(), dead);
            }
            throw new AgentProtocolException("cannot send " + frame.type() + " to the agent: " + e.getMessage(), e);
        }
    }

    private Frame request(AtomicReference<CompletableFuture<Frame>> slot, Frame request, Duration timeout,
            String replyType) throws IOException, InterruptedException {
        CompletableFuture<Frame> reply = new CompletableFuture<>();
        if (!slot.compareAndSet(null, reply)) {
            throw new IllegalStateException("already waiting for " + replyType + " from the agent");
        }
        try {
            // The slot is set before send() checks the link, and linkFailed() sets the failure
            // before it reads the slot, so a link that dies now cannot leave this waiter behind.
            send(request);
            return reply.get(nanos(timeout), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new AgentProtocolException("no " + replyType + " from the agent within " + timeout, e);
        } catch (ExecutionException e) {
            throw rethrow(e);
        } finally {
            slot.compareAndSet(reply, null);
        }
    }

    private void requireHandshake() {
        if (!handshakeDone) {
            throw new IllegalStateException("handshake first: the agent rejects anything before HELLO");
        }
    }

    // ---- receiving (reader thread) ----

    private void readLoop() {
        DataInputStream frames = new DataInputStream(new BufferedInputStream(in, READ_BUFFER));
        AgentProtocolException failure;
        try {
            while (true) {
                Frame frame = FrameCodec.read(frames);
                if (traceFrames) {
                    emit("<- " + frame);
                }
                dispatch(frame);
            }
        } catch (EOFException e) {
            failure = new AgentProtocolException("agent connection closed", e);
        } catch (AgentProtocolException e) {
            failure = e;
        } catch (IOException e) {
            failure = new AgentProtocolException("agent connection closed: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            failure = new AgentProtocolException("agent client reader failed: " + e, e);
        }
        if (linkFailed(failure)) {
            emit(poweredOff ? "agent link closed after power-off" : "agent link lost: " + failure.getMessage());
        }
        // Nothing more can be read on this link, and the protocol does not resynchronise.
        closeTransport();
    }

    private void dispatch(Frame frame) throws AgentProtocolException {
        if (frame.channel() == 0) {
            switch (frame.type()) {
                case HELLO -> reply(pendingHello, frame);
                case ENGINE_READY -> reply(pendingEngine, frame);
                case POWEROFF -> {
                    // Set here, not by the waiter, because the EOF that follows may win the race.
                    poweredOff = true;
                    reply(pendingPowerOff, frame);
                }
                case LOCK -> reply(pendingLock, frame);
                case STATUS -> reply(pendingStatus, frame);
                case FORWARD -> reply(pendingForward, frame);
                case ERROR -> linkError(Protocol.fromJson(frame, ErrorMessage.class).message());
                default -> emit("ignored unexpected " + frame);
            }
            return;
        }
        Relay relay = relays.get(frame.channel());
        if (relay != null) {
            if (frame.type() == FrameType.EXIT || frame.type() == FrameType.ERROR) {
                relays.remove(frame.channel());
            }
            relay.frame(frame);
            return;
        }
        CommandHandle command = commands.get(frame.channel());
        if (command == null) {
            emit("ignored " + frame + " on unknown channel");
            return;
        }
        switch (frame.type()) {
            case STDOUT, STDERR -> command.output(frame.type(), frame.payload());
            case WINDOW -> command.credit(Protocol.fromJson(frame, Window.class).bytes());
            case EXIT -> {
                ExitStatus status = Protocol.fromJson(frame, ExitStatus.class);
                commands.remove(frame.channel());
                command.exited(status);
            }
            case ERROR -> {
                // No EXIT follows an error about a channel, so the command is over for us.
                String message = Protocol.fromJson(frame, ErrorMessage.class).message();
                commands.remove(frame.channel());
                command.failed(new AgentProtocolException("the command on channel "
                        + Integer.toUnsignedString(frame.channel()) + " failed: " + message));
            }
            default -> emit("ignored unexpected " + frame);
        }
    }

    private void reply(AtomicReference<CompletableFuture<Frame>> slot, Frame frame) {
        CompletableFuture<Frame> waiter = slot.get();
        if (waiter == null || !waiter.complete(frame)) {
            emit("ignored unsolicited " + frame);
        }
    }

    /** An ERROR on channel 0 can only be about a pending link-level request; fail them all. */
    private void linkError(String message) {
        AgentProtocolException error = new AgentProtocolException("agent reported an error: " + message);
        boolean anyone = false;
        for (AtomicReference<CompletableFuture<Frame>> slot : List.of(pendingHello, pendingEngine, pendingPowerOff, pendingLock, pendingStatus,
                pendingForward)) {
            CompletableFuture<Frame> waiter = slot.get();
            if (waiter != null) {
                anyone |= waiter.completeExceptionally(error);
            }
        }
        if (!anyone) {
            emit(error.getMessage());
        }
    }

    /** Records why the link ended and fails every waiter; true for the first call only. */
    private boolean linkFailed(AgentProtocolException failure) {
        if (!linkFailure.compareAndSet(null, failure)) {
            return false;
        }
        for (AtomicReference<CompletableFuture<Frame>> slot : List.of(pendingHello, pendingEngine, pendingPowerOff, pendingLock, pendingStatus,
                pendingForward)) {
            CompletableFuture<Frame> waiter = slot.get();
            if (waiter != null) {
                waiter.completeExceptionally(failure);
            }
        }
        for (Integer channel : commands.keySet()) {
            CommandHandle command = commands.remove(channel);
            if (command != null) {
                command.failed(failure);
            }
        }
        for (Integer channel : relays.keySet()) {
            Relay relay = relays.remove(channel);
            if (relay != null) {
                relay.lost(failure);
            }
        }
        return true;
    }

    private void closeTransport() {
        for (Closeable c : transport != null ? List.of(transport) : List.of(in, out)) {
            try {
                c.close();
            } catch (IOException | RuntimeException ignored) {
                // Already closed or broken: either way the link is gone.
            }
        }
    }

    private void emit(String message) {
        try {
            events.accept(message);
        } catch (RuntimeException ignored) {
            // A faulty listener must not take the reader thread down with it.
        }
    }

    // ---- helpers shared with CommandHandle ----

    /** Rethrows a waiter's failure with the caller's stack, keeping the reader's as the cause. */
    static IOException rethrow(ExecutionException e) {
        Throwable cause = e.getCause();
        if (cause instanceof AgentProtocolException) {
            return new AgentProtocolException(cause.getMessage(), cause);
        }
        return new AgentProtocolException("agent request failed: " + cause, cause);
    }

    /** Duration to nanoseconds, saturating: "wait forever" is often written as a huge duration. */
    static long nanos(Duration timeout) {
        try {
            return Math.max(0, timeout.toNanos());
        } catch (ArithmeticException e) {
            return timeout.isNegative() ? 0 : Long.MAX_VALUE;
        }
    }

    /**
     * Blocking reads straight from the channel. {@code Channels.newInputStream} is not used:
     * before Java 19 its streams hold the channel's blocking lock for every read and write
     * (JDK-8279339), so the reader parked in read() would block every sender.
     */
    public static final class ChannelInput extends InputStream {
        private final SocketChannel channel;

        public ChannelInput(SocketChannel channel) {
            this.channel = channel;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            if (len == 0) {
                return 0;
            }
            return channel.read(ByteBuffer.wrap(b, off, len));
        }

        @Override
        public void close() throws IOException {
            channel.close();
        }
    }

    /** Blocking writes straight to the channel; see {@link ChannelInput} for why. */
    public static final class ChannelOutput extends OutputStream {
        private final SocketChannel channel;

        public ChannelOutput(SocketChannel channel) {
            this.channel = channel;
        }

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            ByteBuffer buffer = ByteBuffer.wrap(b, off, len);
            while (buffer.hasRemaining()) {
                channel.write(buffer);
            }
        }

        @Override
        public void close() throws IOException {
            channel.close();
        }
    }
}
