package org.vbake.image;

import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Locale;
import java.util.zip.ZipException;

/**
 * Marks every failure of a parsing or decompressing stream as {@link CorruptInputException}, so
 * that a broken input file is reported as bad input and not confused with a failing disk on the
 * output side.
 */
final class GuardedInputStream extends FilterInputStream {

    private final String kind;
    private final boolean closeUnderlying;

    /** @param kind what the bytes are, for messages: {@code "archive"}, {@code "gzip data"} */
    GuardedInputStream(InputStream in, String kind) {
        this(in, kind, true);
    }

    private GuardedInputStream(InputStream in, String kind, boolean closeUnderlying) {
        super(in);
        this.kind = kind;
        this.closeUnderlying = closeUnderlying;
    }

    /** One entry of an archive being read: closing it leaves the archive open. */
    static InputStream entryOf(InputStream archive) {
        return new GuardedInputStream(archive, "archive", false);
    }

    @Override
    public void close() throws IOException {
        if (closeUnderlying) {
            super.close();
        }
    }

    @Override
    public int read() throws IOException {
        try {
            return super.read();
        } catch (IOException | RuntimeException e) {
            throw corrupt(e, kind);
        }
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        try {
            return super.read(b, off, len);
        } catch (IOException | RuntimeException e) {
            throw corrupt(e, kind);
        }
    }

    @Override
    public long skip(long n) throws IOException {
        try {
            return super.skip(n);
        } catch (IOException | RuntimeException e) {
            throw corrupt(e, kind);
        }
    }

    static CorruptInputException corrupt(Exception e, String kind) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CorruptInputException c) {
                return c;
            }
        }
        return new CorruptInputException(describe(e, kind), e);
    }

    static String describe(Exception e, String kind) {
        if (e instanceof CorruptInputException) {
            return e.getMessage();
        }
        String msg = e.getMessage() == null ? "" : e.getMessage();
        String lower = msg.toLowerCase(Locale.ROOT);
        if (e instanceof EOFException || lower.contains("truncated") || lower.contains("unexpected end")) {
            return "truncated: unexpected end of " + kind;
        }
        if (e instanceof ZipException) {
            return "corrupt " + kind + ": " + msg;
        }
        return "corrupt " + kind + ": " + (msg.isEmpty() ? e.getClass().getSimpleName() : msg);
    }
}
