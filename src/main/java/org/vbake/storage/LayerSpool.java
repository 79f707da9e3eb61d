package org.vbake.storage;

import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * Reads layers for the host writer, each exactly once: the uncompressed stream is hashed (its
 * diff ID), described in tar-split form, and its entries handed on, while the content of every
 * regular file is appended to one spool file, where the tree refers to it until it is written.
 * The spool is deleted on close.
 */
public final class LayerSpool implements Closeable {

    /** Gets each entry of a layer with its content, already spooled. */
    public interface Applier {
        void entry(LayerTar.Header header, FsTree.Content content) throws NotMirroredException;
    }

    /**
     * What reading a layer found.
     *
     * @param diffId     sha256 of every byte of the uncompressed stream, "sha256:HEX"
     * @param bytes      the uncompressed stream's length
     * @param tarSplitGz the layer's tar-split file in canonical form ({@link TarSplit})
     */
    public record Read(String diffId, long bytes, byte[] tarSplitGz, int entries) {
    }

    private static final int CHUNK = 1 << 16;

    private final Path file;
    private final FileChannel channel;
    private final byte[] buffer = new byte[CHUNK];
    private long end;

    /** A new spool file in {@code dir}; {@code dir} must exist. */
    public LayerSpool(Path dir) throws IOException {
        this.file = Files.createTempFile(dir, ".vbake-spool-", ".tmp");
        this.channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE,
                StandardOpenOption.DELETE_ON_CLOSE);
    }

    /** Thrown when a layer expands beyond the limit {@link #read(InputStream, Applier, long)} was given. */
    public static final class TooLarge extends IOException {
        public TooLarge() {
            super("the layer expands beyond the limit");
        }
    }

    /** Reads one uncompressed layer stream to its end. */
    public Read read(InputStream uncompressed, Applier applier) throws IOException, NotMirroredException {
        return read(uncompressed, applier, Long.MAX_VALUE);
    }

    /** As {@link #read(InputStream, Applier)}, stopping with {@link TooLarge} past {@code maxBytes}. */
    public Read read(InputStream uncompressed, Applier applier, long maxBytes) throws IOException, NotMirroredException {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        ByteArrayOutputStream tarSplit = new ByteArrayOutputStream();
        LayerTar.Summary summary;
        try (OutputStream gz = CanonicalGzip.open(tarSplit)) {
            TarSplit.Packer packer = new TarSplit.Packer(gz);
            InputStream bounded = new java.io.FilterInputStream(uncompressed) {
                private long count;

                @Override
                public int read() throws IOException {
                    int b = super.read();
                    if (b >= 0 && ++count > maxBytes) {
                        throw new TooLarge();
                    }
                    return b;
                }

                @Override
                public int read(byte[] b, int off, int len) throws IOException {
                    int n = super.read(b, off, len);
                    if (n > 0 && (count += n) > maxBytes) {
                        throw new TooLarge();
                    }
                    return n;
                }
            };
            summary = LayerTar.read(new DigestInputStream(bounded, sha), packer, (h, content) -> {
                FsTree.Content c = null;
                if (h.hasContent()) {
                    c = spool(content, h.size());
                }
                applier.entry(h, c);
            });
        }
        return new Read("sha256:" + HexFormat.of().formatHex(sha.digest()), summary.bytes(), tarSplit.toByteArray(),
                summary.entries());
    }

    private FsTree.Content spool(InputStream content, long size) throws IOException {
        long offset = end;
        long left = size;
        while (left > 0) {
            int n = content.read(buffer, 0, (int) Math.min(buffer.length, left));
            if (n < 0) {
                throw new IOException("the layer ended inside a file");
            }
            ByteBuffer b = ByteBuffer.wrap(buffer, 0, n);
            while (b.hasRemaining()) {
                end += channel.write(b, end);
            }
            left -= n;
        }
        return new Slice(offset, size);
    }

    /** A stretch of the spool. */
    private final class Slice implements FsTree.Content {
        private final long offset;
        private final long size;

        Slice(long offset, long size) {
            this.offset = offset;
            this.size = size;
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public void copyTo(OutputStream out) throws IOException {
            byte[] chunk = new byte[(int) Math.min(CHUNK, Math.max(size, 1))];
            long pos = offset;
            long left = size;
            while (left > 0) {
                ByteBuffer b = ByteBuffer.wrap(chunk, 0, (int) Math.min(chunk.length, left));
                int n = channel.read(b, pos);
                if (n <= 0) {
                    throw new IOException(file + ": the spool is shorter than expected");
                }
                out.write(chunk, 0, n);
                pos += n;
                left -= n;
            }
        }
    }

    /** Bytes spooled so far. */
    public long size() {
        return end;
    }

    @Override
    public void close() throws IOException {
        channel.close();
        Files.deleteIfExists(file);
    }
}
