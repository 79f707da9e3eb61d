package org.vbake.storage;

import com.jcraft.jzlib.Deflater;
import com.jcraft.jzlib.DeflaterOutputStream;
import com.jcraft.jzlib.GZIPException;
import com.jcraft.jzlib.JZlib;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.zip.CRC32;

/**
 * gzip whose bytes depend on the content only, on every host: a fixed 10-byte header (no name,
 * no time, OS "unknown", as Go's compress/gzip writes it), deflate at level 6 by jzlib (pure Java,
 * so neither the JDK's zlib nor a zlib-ng in its place changes the output), then CRC-32 and size.
 */
final class CanonicalGzip {

    private static final byte[] HEADER = {0x1f, (byte) 0x8b, 8, 0, 0, 0, 0, 0, 0, (byte) 0xff};

    private CanonicalGzip() {
    }

    /** A stream that gzips into {@code out}; closing it writes the trailer and leaves {@code out} open. */
    static OutputStream open(OutputStream out) throws IOException {
        out.write(HEADER);
        Deflater deflater;
        try {
            deflater = new Deflater(6, 15, 8, JZlib.W_NONE);
        } catch (GZIPException e) {
            throw new IOException(e);
        }
        CRC32 crc = new CRC32();
        OutputStream shield = new FilterOutputStream(out) {
            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
            }

            @Override
            public void close() throws IOException {
                out.flush();
            }
        };
        DeflaterOutputStream deflate = new DeflaterOutputStream(shield, deflater, 1 << 16, true);
        return new OutputStream() {
            private long size;
            private boolean closed;

            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                crc.update(b, off, len);
                size += len;
                deflate.write(b, off, len);
            }

            @Override
            public void close() throws IOException {
                if (closed) {
                    return;
                }
                closed = true;
                deflate.finish();
                deflate.close();
                deflater.end();
                long c = crc.getValue();
                out.write(new byte[] {(byte) c, (byte) (c >> 8), (byte) (c >> 16), (byte) (c >> 24),
                        (byte) size, (byte) (size >> 8), (byte) (size >> 16), (byte) (size >> 24)});
                out.flush();
            }
        };
    }
}
