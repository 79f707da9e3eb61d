package org.vbake.image;

import com.github.luben.zstd.ZstdInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.compressors.xz.XZCompressorInputStream;
import org.apache.commons.compress.compressors.xz.XZUtils;
import org.vbake.api.BadInputException;

/**
 * The compressions a tarball or layer blob may come in, told apart by magic bytes rather than by
 * file name or media type, which are often wrong.
 */
enum Compression {
    NONE(""),
    GZIP("gzip"),
    ZSTD("zstd"),
    XZ("xz");

    private static final int BUFFER = 1 << 16;

    private final String label;

    Compression(String label) {
        this.label = label;
    }

    static Compression sniff(byte[] head, int n) {
        if (n >= 2 && (head[0] & 0xff) == 0x1f && (head[1] & 0xff) == 0x8b) {
            return GZIP;
        }
        if (n >= 4 && (head[0] & 0xff) == 0x28 && (head[1] & 0xff) == 0xb5 && (head[2] & 0xff) == 0x2f
                && (head[3] & 0xff) == 0xfd) {
            return ZSTD;
        }
        if (n >= 6 && (head[0] & 0xff) == 0xfd && head[1] == '7' && head[2] == 'z' && head[3] == 'X' && head[4] == 'Z'
                && head[5] == 0) {
            return XZ;
        }
        return NONE;
    }

    static Compression of(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] head = new byte[6];
            return sniff(head, in.readNBytes(head, 0, head.length));
        }
    }

    /** Peeks at the start of {@code in} (which must support mark) without consuming it. */
    static Compression sniff(InputStream in) throws IOException {
        byte[] head = new byte[6];
        in.mark(head.length);
        int n = in.readNBytes(head, 0, head.length);
        in.reset();
        return sniff(head, n);
    }

    /**
     * Opens {@code file} decompressed according to its magic. Errors from corrupt compressed data
     * surface as {@link CorruptInputException}.
     */
    static InputStream openDecompressed(Path file, String what) throws IOException, BadInputException {
        InputStream raw = new BufferedInputStream(Files.newInputStream(file), BUFFER);
        try {
            return sniff(raw).decompress(raw, what);
        } catch (IOException | BadInputException | RuntimeException e) {
            raw.close();
            throw e;
        }
    }

    /** Wraps {@code in} so that reading it yields the uncompressed bytes. */
    InputStream decompress(InputStream in, String what) throws IOException, BadInputException {
        try {
            switch (this) {
                case NONE:
                    return in;
                case GZIP:
                    return new GuardedInputStream(new GZIPInputStream(in, BUFFER), label + " data");
                case ZSTD:
                    return new GuardedInputStream(new ZstdInputStream(in), label + " data");
                case XZ:
                    if (!XZUtils.isXZCompressionAvailable()) {
                        throw new BadInputException(what + " is xz-compressed, which this build of vbake cannot read",
                                "decompress it first (xz -d) or recompress it with gzip or zstd");
                    }
                    return new GuardedInputStream(new XZCompressorInputStream(in), label + " data");
                default:
                    throw new IllegalStateException(name());
            }
        } catch (IOException | RuntimeException e) {
            // The header itself was unreadable.
            throw new CorruptInputException(GuardedInputStream.describe(e, label + " data"), e);
        }
    }

    /** The OCI layer media type for a tar in this compression. */
    String layerMediaType() {
        switch (this) {
            case GZIP:
                return MediaTypes.OCI_LAYER_GZIP;
            case ZSTD:
                return MediaTypes.OCI_LAYER_ZSTD;
            case NONE:
                return MediaTypes.OCI_LAYER;
            default:
                return MediaTypes.OCI_LAYER + "+" + label;
        }
    }
}
