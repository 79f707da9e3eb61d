package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import java.util.Collection;
import java.util.List;
import org.vbake.api.BadInputException;

/**
 * The files of an image layout or image archive by relative name ({@code blobs/sha256/<hex>},
 * {@code manifest.json}), whether they sit in a directory or in a tar that can only be read front
 * to back.
 */
interface ImageFiles {

    /** For messages: {@code oci-archive /x/y.tar}. */
    String source();

    /** The name of the regular file {@code name} leads to after links, or null if there is none. */
    String canonical(String name);

    /** Size of a file named by {@link #canonical}. */
    long size(String canonicalName) throws IOException;

    /** Reads a small file whole; a missing one or one over {@code limit} bytes is bad input about {@code what}. */
    default byte[] readSmall(String name, String what, long limit) throws IOException, BadInputException {
        String c = canonical(name);
        if (c == null) {
            throw new BadInputException(source() + ": " + what + " is missing");
        }
        long size = size(c);
        if (size > limit) {
            throw new BadInputException(source() + ": " + what + " is " + size + " bytes, too large to be image metadata");
        }
        byte[][] result = new byte[1][];
        stream(List.of(c), (n, in) -> result[0] = in.readAllBytes());
        return result[0];
    }

    /**
     * Hands each named file (canonical names, each once) to {@code handler}, in the order the
     * files are stored. Malformed archives raise {@link CorruptInputException}.
     */
    void stream(Collection<String> canonicalNames, EntryHandler handler) throws IOException, BadInputException;

    @FunctionalInterface
    interface EntryHandler {
        void accept(String canonicalName, InputStream content) throws IOException, BadInputException;
    }
}
