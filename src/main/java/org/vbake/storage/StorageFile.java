package org.vbake.storage;

import com.github.luben.zstd.ZstdOutputStream;
import java.io.BufferedOutputStream;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import java.util.zip.GZIPOutputStream;
import org.vbake.api.BadInputException;
import org.vbake.instance.Scratch;

/**
 * An output file written all or nothing: bytes go to a hidden temporary file next to the target,
 * compressed by the target's extension, and only {@link #commit()} puts it in place. Closing
 * without a commit deletes the temporary file, so a failed export never leaves a partial tar.
 */
public final class StorageFile implements AutoCloseable {

    /** How the storage tree is packed, chosen by the file name. */
    public enum Format {
        TAR(".tar"), TAR_GZ(".tar.gz"), TAR_ZST(".tar.zst");

        private final String extension;

        Format(String extension) {
            this.extension = extension;
        }

        public String extension() {
            return extension;
        }

        /** The format for a file name; null when the name says none. */
        public static Format forName(String name) {
            String n = name.toLowerCase(Locale.ROOT);
            if (n.endsWith(".tar")) {
                return TAR;
            }
            if (n.endsWith(".tar.gz") || n.endsWith(".tgz")) {
                return TAR_GZ;
            }
            if (n.endsWith(".tar.zst") || n.endsWith(".tzst") || n.endsWith(".tar.zstd")) {
                return TAR_ZST;
            }
            return null;
        }
    }

    private final Path target;
    private final Path temp;
    private final Format format;
    private OutputStream raw;
    private OutputStream stream;
    private boolean committed;
    private long rawBytes;
    private Scratch.Swept swept = Scratch.Swept.NONE;

    private StorageFile(Path target, Path temp, Format format) {
        this.target = target;
        this.temp = temp;
        this.format = format;
    }

    /**
     * Checks the name and the directory before any work is done, so a typo costs nothing.
     *
     * @param option the option the path came from, for messages ({@code --storage})
     */
    public static Format check(Path target, String option) throws BadInputException {
        Format f = Format.forName(target.getFileName().toString());
        if (f == null) {
            throw new BadInputException(option + " " + target + ": cannot tell the format from the name",
                    "end it in .tar, .tar.gz or .tar.zst");
        }
        checkDirectory(target, option);
        return f;
    }

    /** Checks that {@code target} can be created (its directory exists and is writable). */
    public static void checkDirectory(Path target, String option) throws BadInputException {
        Path dir = target.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new BadInputException(option + " " + target + ": directory " + dir + " does not exist");
        }
        if (!Files.isWritable(dir)) {
            throw new BadInputException(option + " " + target + ": directory " + dir + " is not writable");
        }
        if (Files.isDirectory(target)) {
            throw new BadInputException(option + " " + target + ": is a directory");
        }
    }

    public static StorageFile create(Path target, String option) throws BadInputException, IOException {
        Format f = check(target, option);
        try {
            return create(target, f);
        } catch (java.nio.file.FileSystemException e) {
            // /proc, a read-only mount, a full disk: known now rather than after the work
            throw new BadInputException(option + " " + target + ": cannot create a file in " + target.toAbsolutePath()
                    .getParent() + " (" + reason(e) + ")");
        }
    }

    /** Why a file could not be made, in words: "permission denied", "read-only file system". */
    public static String reason(java.nio.file.FileSystemException e) {
        if (e.getReason() != null) {
            return e.getReason().toLowerCase(Locale.ROOT);
        }
        if (e instanceof java.nio.file.NoSuchFileException) {
            return "no such file or directory";
        }
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof java.nio.file.FileAlreadyExistsException) {
            return "file exists";
        }
        return "cannot be written";
    }

    /** An uncompressed output file whatever its name (e.g. {@code save -o x.img}). */
    public static StorageFile createPlain(Path target, String option) throws BadInputException, IOException {
        checkDirectory(target, option);
        return create(target, Format.TAR);
    }

    private static StorageFile create(Path target, Format f) throws IOException {
        Path abs = target.toAbsolutePath();
        Scratch.Swept swept = sweep(abs);
        Path temp = newPartial(abs);
        StorageFile sf = new StorageFile(abs, temp, f);
        sf.swept = swept;
        sf.open();
        return sf;
    }

    /**
     * A new hidden file beside {@code target} for its content to be written to before it is
     * renamed into place: {@code .NAME.<owner>.partial} (see {@link Scratch}).
     */
    public static Path newPartial(Path target) throws IOException {
        Path abs = target.toAbsolutePath();
        return Scratch.newFile(abs.getParent(), "." + abs.getFileName() + ".", ".partial");
    }

    /** Removes partial files of {@code target} that killed commands left beside it. */
    public static Scratch.Swept sweep(Path target) {
        Path abs = target.toAbsolutePath();
        return Scratch.sweep(abs.getParent(), "." + abs.getFileName() + ".", ".partial");
    }

    /** What was removed before this file was started (partial files of killed commands). */
    public Scratch.Swept swept() {
        return swept;
    }

    private void open() throws IOException {
        OutputStream file = new BufferedOutputStream(Files.newOutputStream(temp), 1 << 20);
        raw = new FilterOutputStream(file) {
            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
            }
        };
        switch (format) {
            case TAR:
                stream = counting(raw);
                break;
            case TAR_GZ:
                // GZIPOutputStream writes a fixed header (no name, mtime 0): same tar, same bytes.
                stream = counting(new GZIPOutputStream(raw, 1 << 16));
                break;
            case TAR_ZST:
                ZstdOutputStream z = new ZstdOutputStream(raw, 3); // zstd's default level: the tree is a build artifact, unpacked once
                z.setChecksum(true);
                // Streaming multi-threaded zstd gives the same bytes for any number of workers
                // from 1 up (not the same as none), so every host writes the same file.
                z.setWorkers(Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors())));
                stream = counting(z);
                break;
            default:
                throw new IllegalStateException();
        }
    }

    private OutputStream counting(OutputStream out) {
        return new FilterOutputStream(out) {
            @Override
            public void write(int b) throws IOException {
                out.write(b);
                rawBytes++;
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                out.write(b, off, len);
                rawBytes += len;
            }
        };
    }

    /** Where the uncompressed tar goes. */
    public OutputStream stream() {
        return stream;
    }

    public Format format() {
        return format;
    }

    public Path target() {
        return target;
    }

    /** Bytes of tar written (before compression). */
    public long tarBytes() {
        return rawBytes;
    }

    /** Finishes compression and moves the file into place. */
    public void commit() throws IOException {
        stream.close();
        // createTempFile made it private; the result is an ordinary build artifact.
        Files.setPosixFilePermissions(temp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        try {
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(temp, target, StandardCopyOption.REPLACE_EXISTING);
        }
        committed = true;
    }

    @Override
    public void close() {
        if (!committed) {
            try {
                stream.close();
            } catch (IOException | RuntimeException ignored) {
                // the partial file is deleted below either way
            }
            try {
                Files.deleteIfExists(temp);
            } catch (IOException ignored) {
                // nothing more to do
            }
        }
    }
}
