package org.vbake.image;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * Watches raw tar bytes for the all-zero block that ends an archive, since the tar reader treats a
 * file cut off in mid-header like a proper end.
 */
final class TarEndTracker extends FilterInputStream {

    private static final int BLOCK = 512;

    private int posInBlock;
    private boolean blockZero = true;
    private boolean zeroBlockLast;

    TarEndTracker(InputStream in) {
        super(in);
    }

    /** The last whole block that went by was all zeros: the archive ended properly. */
    boolean sawEndMarker() {
        return zeroBlockLast;
    }

    @Override
    public int read() throws IOException {
        int b = super.read();
        if (b >= 0) {
            track((byte) b);
        }
        return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        int n = super.read(b, off, len);
        for (int i = 0; i < n; i++) {
            track(b[off + i]);
        }
        return n;
    }

    @Override
    public long skip(long n) throws IOException {
        long skipped = super.skip(n);
        // Skipped bytes are entry content, never the end marker.
        long pos = posInBlock + skipped;
        if (pos >= BLOCK) {
            zeroBlockLast = false;
        }
        posInBlock = (int) (pos % BLOCK);
        blockZero = posInBlock == 0;
        return skipped;
    }

    private void track(byte b) {
        if (b != 0) {
            blockZero = false;
        }
        if (++posInBlock == BLOCK) {
            zeroBlockLast = blockZero;
            blockZero = true;
            posInBlock = 0;
        }
    }
}
