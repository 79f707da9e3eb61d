package org.vbake.agent;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.agent.Protocol.SignalRequest;

/**
 * A command running in the guest on its own channel. The caller signals it and waits for its
 * exit status; the client's reader thread copies its output, and a pump thread feeds its stdin
 * within the agent's flow-control window.
 */
public final class CommandHandle {

    /** STDIN bytes the host may have sent on a channel but the agent not yet acknowledged. */
    static final int STDIN_WINDOW = 1 << 20;

    /** Linux SIGKILL, sent when the command's input cannot be read to the end. */
    private static final int SIGKILL = 9;

    private final AgentClient client;
    private final int channel;
    private final OutputStream out;
    private final OutputStream err;
    private final CompletableFuture<ExitStatus> exit = new CompletableFuture<>();

    private final Object creditLock = new Object();
    private long stdinCredit = STDIN_WINDOW; // guarded by creditLock

    // Written by the reader thread before it completes `exit`, read after waiting on it.
    private IOException outputFailure;
    private volatile IOException stdinFailure;

    CommandHandle(AgentClient client, int channel, OutputStream out, OutputStream err) {
        this.client = client;
        this.channel = channel;
        this.out = out;
        this.err = err;
    }

    /** The protocol channel this command runs on. */
    public int channel() {
        return channel;
    }

    /** True once the command has exited or its channel failed. */
    public boolean isDone() {
        return exit.isDone();
    }

    /**
     * Delivers a Linux signal to the command's process group: 2 (SIGINT) to ask it to stop,
     * 9 (SIGKILL) to make it. Does nothing once the command has exited, as the agent would
     * ignore it anyway.
     */
    public void signal(int signal) throws IOException {
        if (exit.isDone()) {
            return;
        }
        client.send(new Frame(FrameType.SIGNAL, channel, Protocol.toJson(new SignalRequest(signal))));
    }

    /** Tells a tty command its terminal's new size; ignored by the agent for other commands. */
    public void resize(int rows, int cols) throws IOException {
        if (exit.isDone()) {
            return;
        }
        client.send(new Frame(FrameType.RESIZE, channel, Protocol.toJson(new Protocol.Resize(rows, cols))));
    }

    /**
     * Waits for EXIT.
     *
     * @throws AgentProtocolException when the link dies or the agent rejects the channel first
     * @throws IOException when the command's output could not be written or its input read
     */
    public ExitStatus waitFor() throws IOException, InterruptedException {
        try {
            return result(exit.get());
        } catch (ExecutionException e) {
            throw AgentClient.rethrow(e);
        }
    }

    /** Like {@link #waitFor()}, giving up after {@code timeout} (the command keeps running). */
    public ExitStatus waitFor(Duration timeout)
            throws IOException, InterruptedException, TimeoutException {
        try {
            return result(exit.get(AgentClient.nanos(timeout), TimeUnit.NANOSECONDS));
        } catch (ExecutionException e) {
            throw AgentClient.rethrow(e);
        } catch (TimeoutException e) {
            TimeoutException t = new TimeoutException(
                    "command on channel " + channel + " still running after " + timeout);
            t.initCause(e);
            throw t;
        }
    }

    private ExitStatus result(ExitStatus status) throws IOException {
        IOException readFailure = stdinFailure;
        if (readFailure != null) {
            throw new IOException("reading the input of the command on channel " + channel
                    + " failed, so it was killed: " + readFailure.getMessage(), readFailure);
        }
        if (outputFailure != null) {
            throw new IOException("writing the output of the command on channel " + channel
                    + " failed (it exited with " + status.code() + "): " + outputFailure.getMessage(),
                    outputFailure);
        }
        return status;
    }

    // ---- called by the client's reader thread ----

    void output(FrameType stream, byte[] bytes) {
        OutputStream target = stream == FrameType.STDOUT ? out : err;
        if (target == null || outputFailure != null || bytes.length == 0) {
            return;
        }
        try {
            target.write(bytes);
            target.flush();
        } catch (IOException e) {
            // Keep draining the channel so other channels are not held up; report at waitFor.
            outputFailure = e;
        }
    }

    void credit(long bytes) {
        synchronized (creditLock) {
            stdinCredit += bytes;
            creditLock.notifyAll();
        }
    }

    void exited(ExitStatus status) {
        stopPump();
        exit.complete(status);
    }

    void failed(AgentProtocolException failure) {
        stopPump();
        exit.completeExceptionally(failure);
    }

    private void stopPump() {
        synchronized (creditLock) {
            creditLock.notifyAll();
        }
    }

    // ---- stdin ----

    /**
     * Feeds {@code stdin} to the command on a daemon thread. The thread cannot be woken from a
     * blocking {@code read}, so a stream that never ends (a terminal) keeps it parked until the
     * next read returns; it sends nothing after EXIT.
     */
    void startStdinPump(InputStream stdin) {
        Thread pump = new Thread(() -> pumpStdin(stdin), "vbake-agent-stdin-" + Integer.toUnsignedString(channel));
        pump.setDaemon(true);
        pump.start();
    }

    private void pumpStdin(InputStream stdin) {
        byte[] buf = new byte[FrameCodec.MAX_DATA_CHUNK];
        try {
            while (!exit.isDone()) {
                int n;
                try {
                    n = stdin.read(buf);
                } catch (IOException e) {
                    stdinReadFailed(e);
                    return;
                }
                if (n < 0) {
                    break;
                }
                int off = 0;
                while (off < n) {
                    int allowed = reserveCredit(n - off);
                    if (allowed < 0) {
                        return;
                    }
                    client.send(new Frame(FrameType.STDIN, channel, Arrays.copyOfRange(buf, off, off + allowed)));
                    off += allowed;
                }
            }
            if (!exit.isDone()) {
                client.send(new Frame(FrameType.STDIN, channel, new byte[0]));
            }
        } catch (IOException e) {
            // The link is gone; the reader thread fails this handle with the reason.
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Blocks until the window has room; returns how many bytes may go, or -1 after EXIT. */
    private int reserveCredit(int wanted) throws InterruptedException {
        synchronized (creditLock) {
            while (stdinCredit <= 0 && !exit.isDone()) {
                creditLock.wait();
            }
            if (exit.isDone()) {
                return -1;
            }
            int allowed = (int) Math.min(stdinCredit, wanted);
            stdinCredit -= allowed;
            return allowed;
        }
    }

    private void stdinReadFailed(IOException e) {
        if (exit.isDone()) {
            return;
        }
        // Closing stdin would let the command act on truncated input as if it were complete
        // (a half script, a short tar), so it is killed instead.
        stdinFailure = e;
        try {
            client.send(new Frame(FrameType.SIGNAL, channel, Protocol.toJson(new SignalRequest(SIGKILL))));
        } catch (IOException ignored) {
            // The link is gone; the reader thread fails this handle with the reason.
        }
    }
}
