package org.vbake.agent;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.util.Objects;

/**
 * A bounded in-memory pipe, one direction of a fake virtio-serial link. PipedInputStream is not
 * used because it fails with "Write end dead" once the last thread that wrote has ended, and the
 * client writes from short-lived stdin pump threads.
 */
final class TestPipe {

    private final byte[] buffer;
    private int head;
    private int count;
    private boolean writerClosed;
    private boolean readerClosed;

    private final InputStream in = new InputStream() {
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
            synchronized (TestPipe.this) {
                while (count == 0 && !writerClosed && !readerClosed) {
                    await();
                }
                if (readerClosed) {
                    throw new IOException("pipe closed");
                }
                if (count == 0) {
                    return -1;
                }
                int n = Math.min(len, Math.min(count, buffer.length - head));
                System.arraycopy(buffer, head, b, off, n);
                head = (head + n) % buffer.length;
                count -= n;
                TestPipe.this.notifyAll();
                return n;
            }
        }

        @Override
        public void close() {
            synchronized (TestPipe.this) {
                readerClosed = true;
                TestPipe.this.notifyAll();
            }
        }
    };

    private final OutputStream out = new OutputStream() {
        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            synchronized (TestPipe.this) {
                while (len > 0) {
                    while (count == buffer.length && !readerClosed && !writerClosed) {
                        await();
                    }
                    if (readerClosed || writerClosed) {
                        throw new IOException("pipe closed");
                    }
                    int tail = (head + count) % buffer.length;
                    int n = Math.min(len, Math.min(buffer.length - count, buffer.length - tail));
                    System.arraycopy(b, off, buffer, tail, n);
                    count += n;
                    off += n;
                    len -= n;
                    TestPipe.this.notifyAll();
                }
            }
        }

        @Override
        public void close() {
            synchronized (TestPipe.this) {
                writerClosed = true;
                TestPipe.this.notifyAll();
            }
        }
    };

    TestPipe(int capacity) {
        buffer = new byte[capacity];
    }

    InputStream in() {
        return in;
    }

    OutputStream out() {
        return out;
    }

    private void await() throws InterruptedIOException {
        try {
            wait();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted");
        }
    }
}
