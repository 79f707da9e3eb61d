package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import org.vbake.api.BadInputException;
import org.vbake.instance.Scratch;

/**
 * Content-addressed blob store on the host ({@code <cache>/blobs/sha256/<hex>}), shared by every
 * run and arch. A blob only enters under its name after its bytes were hashed on the way in, so
 * whatever is found there is trusted without re-reading.
 */
public final class BlobCache {

    private static final String TEMP_PREFIX = ".incoming-";
    private static final String TEMP_SUFFIX = ".part";

    private final Path dir;
    private boolean swept;

    public BlobCache(Path cacheRoot) {
        this.dir = cacheRoot.resolve("blobs").resolve("sha256");
    }

    /** The directory blobs live in (created on demand); temporary files for large blobs go here too. */
    public Path directory() throws IOException {
        return Files.createDirectories(dir);
    }

    /**
     * A new private file in the cache directory for a blob on its way in. The first one a
     * process makes also removes those that killed commands left behind.
     */
    public Path newTempFile() throws IOException {
        Files.createDirectories(dir);
        if (!swept) {
            swept = true;
            Scratch.sweep(dir, TEMP_PREFIX, TEMP_SUFFIX);
        }
        return Scratch.newFile(dir, TEMP_PREFIX, TEMP_SUFFIX);
    }

    public Path path(Digest d) {
        return dir.resolve(d.hex());
    }

    public boolean contains(Digest d) {
        return Files.isRegularFile(path(d));
    }

    /**
     * Copies {@code in} into the cache, checking that it hashes to {@code expected} and, when
     * {@code expectedSize >= 0}, has that size. A mismatch is bad input naming {@code what}; nothing
     * is left behind.
     */
    public Path put(Digest expected, long expectedSize, InputStream in, String what)
            throws IOException, BadInputException {
        Path target = path(expected);
        if (Files.isRegularFile(target)) {
            // Already here, but the input is still checked: a corrupt archive is an error even
            // when an intact copy of the blob happens to be cached.
            verify(expected, expectedSize, in, what);
            return target;
        }
        Path tmp = newTempFile();
        try {
            MessageDigest md = Digest.sha256();
            long n;
            try (DigestInputStream din = new DigestInputStream(in, md);
                    OutputStream out = Files.newOutputStream(tmp)) {
                n = din.transferTo(out);
            }
            Digest actual = Digest.fromMessageDigest(md);
            if (!actual.equals(expected)) {
                throw new BadInputException(what + ": digest mismatch: expected " + expected + ", content is " + actual);
            }
            if (expectedSize >= 0 && n != expectedSize) {
                throw new BadInputException(what + ": size mismatch: expected " + expectedSize + " bytes, got " + n);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            return target;
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Reads {@code in} to the end and checks it hashes to {@code expected} (and has the size, if given). */
    public static void verify(Digest expected, long expectedSize, InputStream in, String what)
            throws IOException, BadInputException {
        MessageDigest md = Digest.sha256();
        long n;
        try (DigestInputStream din = new DigestInputStream(in, md)) {
            n = din.transferTo(OutputStream.nullOutputStream());
        }
        Digest actual = Digest.fromMessageDigest(md);
        if (!actual.equals(expected)) {
            throw new BadInputException(what + ": digest mismatch: expected " + expected + ", content is " + actual);
        }
        if (expectedSize >= 0 && n != expectedSize) {
            throw new BadInputException(what + ": size mismatch: expected " + expectedSize + " bytes, got " + n);
        }
    }

    /** Stores bytes already in memory (manifests, configs). */
    public Path put(byte[] content, String what) throws IOException, BadInputException {
        return put(Digest.of(content), content.length, new java.io.ByteArrayInputStream(content), what);
    }
}
