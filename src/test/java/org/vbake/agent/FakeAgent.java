package org.vbake.agent;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A scripted stand-in for vbake-agent: the test thread reads what the host sent and decides what
 * to answer. Its own reader thread checks the host's side of stdin flow control as frames
 * arrive (at most 1 MiB unacknowledged per channel, at most 64 KiB per chunk) and records
 * violations for the test to assert.
 */
final class FakeAgent implements Closeable {

    static final Duration PATIENCE = Duration.ofSeconds(5);

    private final InputStream fromHost;
    private final OutputStream toHost;
    private final BlockingQueue<Frame> received = new LinkedBlockingQueue<>();
    private final Map<Integer, Long> outstandingStdin = new ConcurrentHashMap<>();
    private final Map<Integer, Long> maxOutstandingStdin = new ConcurrentHashMap<>();
    private final List<String> violations = Collections.synchronizedList(new ArrayList<>());
    private volatile boolean hostClosed;

    FakeAgent(InputStream fromHost, OutputStream toHost) {
        this.fromHost = fromHost;
        this.toHost = toHost;
        Thread reader = new Thread(this::readLoop, "fake-agent-reader");
        reader.setDaemon(true);
        reader.start();
    }

    private void readLoop() {
        try {
            while (true) {
                Frame frame = FrameCodec.read(fromHost);
                if (frame.type() == FrameType.STDIN) {
                    checkStdin(frame);
                }
                received.add(frame);
            }
        } catch (IOException e) {
            hostClosed = true;
        }
    }

    private void checkStdin(Frame frame) {
        int length = frame.payload().length;
        if (length > FrameCodec.MAX_DATA_CHUNK) {
            violations.add("STDIN chunk of " + length + " bytes on channel " + frame.channel());
        }
        long outstanding = outstandingStdin.merge(frame.channel(), (long) length, Long::sum);
        maxOutstandingStdin.merge(frame.channel(), outstanding, Math::max);
        if (outstanding > CommandHandle.STDIN_WINDOW) {
            violations.add(outstanding + " bytes of STDIN unacknowledged on channel " + frame.channel());
        }
    }

    /** The next frame from the host; fails the test if none comes within {@link #PATIENCE}. */
    Frame next() throws InterruptedException {
        Frame frame = received.poll(PATIENCE.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(frame).as("a frame from the host within " + PATIENCE).isNotNull();
        return frame;
    }

    /** The next frame, or null when the host sends nothing for {@code wait}. */
    Frame poll(Duration wait) throws InterruptedException {
        return received.poll(wait.toMillis(), TimeUnit.MILLISECONDS);
    }

    Frame expect(FrameType type) throws InterruptedException {
        Frame frame = next();
        assertThat(frame.type()).as("type of " + frame).isEqualTo(type);
        return frame;
    }

    Frame expect(FrameType type, int channel) throws InterruptedException {
        Frame frame = expect(type);
        assertThat(frame.channel()).as("channel of " + frame).isEqualTo(channel);
        return frame;
    }

    /** Waits for the host's HELLO and answers like a real agent. */
    void answerHello() throws IOException, InterruptedException {
        expect(FrameType.HELLO, 0);
        sendJson(FrameType.HELLO, 0, new Protocol.Hello(1, null, "fake-agent/1", "aarch64", "6.1.0-test", 1500L));
    }

    void sendJson(FrameType type, int channel, Object message) throws IOException {
        byte[] payload = message instanceof String s
                ? s.getBytes(StandardCharsets.UTF_8) : Protocol.toJson(message);
        send(new Frame(type, channel, payload));
    }

    void sendData(FrameType type, int channel, byte[] bytes) throws IOException {
        send(new Frame(type, channel, bytes));
    }

    void sendText(FrameType type, int channel, String text) throws IOException {
        sendData(type, channel, text.getBytes(StandardCharsets.UTF_8));
    }

    /** Acknowledges {@code bytes} of STDIN on {@code channel} with a WINDOW frame. */
    void ack(int channel, long bytes) throws IOException {
        // Credit is returned before the host can see it, so the bookkeeping never lags the host.
        outstandingStdin.merge(channel, -bytes, Long::sum);
        sendJson(FrameType.WINDOW, channel, new Protocol.Window(bytes));
    }

    long outstandingStdin(int channel) {
        return outstandingStdin.getOrDefault(channel, 0L);
    }

    long maxOutstandingStdin(int channel) {
        return maxOutstandingStdin.getOrDefault(channel, 0L);
    }

    List<String> violations() {
        synchronized (violations) {
            return List.copyOf(violations);
        }
    }

    boolean hostClosed() {
        return hostClosed;
    }

    synchronized void send(Frame frame) throws IOException {
        FrameCodec.write(toHost, frame);
    }

    /** Raw bytes, for frames a well-behaved agent would never send. */
    synchronized void sendRaw(byte[] bytes) throws IOException {
        toHost.write(bytes);
        toHost.flush();
    }

    /** What the host sees when the guest powers off or QEMU dies: end of stream. */
    void closeLink() throws IOException {
        toHost.close();
    }

    @Override
    public void close() throws IOException {
        toHost.close();
        fromHost.close();
    }
}
