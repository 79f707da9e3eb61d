package org.vbake.resident;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayDeque;
import org.vbake.agent.Frame;
import org.vbake.agent.FrameCodec;

/**
 * The frames on their way to one client, written by a thread of their own. The agent's reader
 * hands every client's output to its queue and moves on, so a client that stops reading (a
 * suspended pager, a stopped terminal) stalls only itself. How much can queue up is bounded by
 * the output window the daemon gives each command (the agent sends no more until the frames here
 * are written); the byte limit is a safety net: past it {@link #offer} refuses and the daemon
 * drops the client, which ends its commands as for a client that went away.
 */
final class ClientOutput {

    /** Called once, from the writer thread, when a write fails. */
    interface Failure {
        void failed(IOException e);
    }

    private final OutputStream out;
    private final Object writeLock;
    private final long limitBytes;
    private final Failure onFailure;
    private final ArrayDeque<Entry> queue = new ArrayDeque<>();
    private long queuedBytes;
    private boolean closed;
    private Thread writer;

    /**
     * {@code writeLock} is held around each frame written, so frames other threads write
     * directly (replies to the client's own requests) never interleave with queued ones.
     */
    ClientOutput(OutputStream out, Object writeLock, long limitBytes, Failure onFailure) {
        this.out = out;
        this.writeLock = writeLock;
        this.limitBytes = limitBytes;
        this.onFailure = onFailure;
    }

    private record Entry(Frame frame, Runnable afterWrite) {
    }

    /**
     * Queues {@code frame}; {@code afterWrite} (may be null) runs on the writer thread once the
     * frame is written. False when the output is closed or the client is this far behind.
     */
    synchronized boolean offer(Frame frame, Runnable afterWrite) {
        if (closed) {
            return false;
        }
        long size = size(frame);
        if (queuedBytes + size > limitBytes) {
            return false;
        }
        queue.add(new Entry(frame, afterWrite));
        queuedBytes += size;
        if (writer == null) {
            writer = new Thread(this::drain, "vbake-daemon-client-out");
            writer.setDaemon(true);
            writer.start();
        }
        notifyAll();
        return true;
    }

    /** What a queued frame counts against the limit: its payload and the frame header. */
    private static long size(Frame frame) {
        return frame.payload().length + 16L;
    }

    /** Bytes waiting, for the daemon's log. */
    synchronized long queuedBytes() {
        return queuedBytes;
    }

    /** Everything offered so far is written (or dropped by close). */
    synchronized boolean idle() {
        return queue.isEmpty();
    }

    /** Stops the writer; frames still queued are dropped. */
    synchronized void close() {
        closed = true;
        queue.clear();
        queuedBytes = 0;
        notifyAll();
    }

    private void drain() {
        while (true) {
            Entry next;
            synchronized (this) {
                while (queue.isEmpty() && !closed) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (closed) {
                    return;
                }
                next = queue.peek();
            }
            try {
                synchronized (writeLock) {
                    FrameCodec.write(out, next.frame());
                }
            } catch (IOException e) {
                close();
                onFailure.failed(e);
                return;
            }
            synchronized (this) {
                if (queue.peek() == next) {
                    queue.poll();
                    queuedBytes -= size(next.frame());
                }
            }
            if (next.afterWrite() != null) {
                next.afterWrite().run();
            }
        }
    }
}
