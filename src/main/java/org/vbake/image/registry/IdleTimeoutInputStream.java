package org.vbake.image.registry;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.http.HttpTimeoutException;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * A response body that fails instead of hanging when the server stalls: the HTTP client's request
 * timeout stops at the response headers, so a blob transfer that stops sending would otherwise
 * block forever. If one read waits longer than the idle limit, the body is closed under it and the
 * read throws {@link HttpTimeoutException}. Slow but moving transfers are never cut.
 */
final class IdleTimeoutInputStream extends FilterInputStream {

    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "vbake-registry-idle-watchdog");
        t.setDaemon(true);
        return t;
    });

    private final long idleNanos;
    private final Duration idle;
    private final ScheduledFuture<?> check;
    private volatile boolean reading;
    private volatile long readStartedAt;
    private volatile boolean timedOut;

    IdleTimeoutInputStream(InputStream in, Duration idle) {
        super(in);
        this.idle = idle;
        this.idleNanos = idle.toNanos();
        long period = Math.max(10, Math.min(1000, idle.toMillis() / 4));
        this.check = WATCHDOG.scheduleAtFixedRate(this::closeIfStalled, period, period, TimeUnit.MILLISECONDS);
    }

    private void closeIfStalled() {
        if (reading && System.nanoTime() - readStartedAt > idleNanos && !timedOut) {
            timedOut = true;
            try {
                in.close();
            } catch (IOException | RuntimeException ignored) {
                // the blocked read fails either way
            }
        }
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (timedOut) {
            throw stalled();
        }
        readStartedAt = System.nanoTime();
        reading = true;
        try {
            int n = in.read(b, off, len);
            if (timedOut) {
                throw stalled();
            }
            return n;
        } catch (IOException e) {
            throw timedOut ? stalled() : e;
        } finally {
            reading = false;
        }
    }

    @Override
    public void close() throws IOException {
        check.cancel(false);
        super.close();
    }

    private HttpTimeoutException stalled() {
        String limit = idle.toMillis() % 1000 == 0 ? idle.toSeconds() + " s" : idle.toMillis() + " ms";
        return new HttpTimeoutException("no data received for " + limit);
    }
}
