package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import org.vbake.api.BadInputException;

/** A layer blob from the cache, for code outside this package: how it is compressed, and its tar. */
public final class LayerBlobs {

    /** The compressions a layer blob may be in, as the engines detect them from its first bytes. */
    public enum Kind {
        NONE, GZIP, ZSTD, XZ
    }

    private LayerBlobs() {
    }

    public static Kind compression(ResolvedImage.Layer layer) throws IOException {
        return switch (Compression.of(layer.blob())) {
            case NONE -> Kind.NONE;
            case GZIP -> Kind.GZIP;
            case ZSTD -> Kind.ZSTD;
            case XZ -> Kind.XZ;
        };
    }

    /** The uncompressed layer tar; corrupt compressed data surfaces as an IOException while reading. */
    public static InputStream open(ResolvedImage.Layer layer, String what) throws IOException, BadInputException {
        return Compression.openDecompressed(layer.blob(), what);
    }
}
