package org.vbake.image;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.vbake.api.BadInputException;

/**
 * A root filesystem as the plain tar stream {@code docker import} and {@code podman import} take:
 * a directory is archived deterministically (sorted, numeric owners as on disk, hard links kept,
 * mtimes clamped to {@code SOURCE_DATE_EPOCH}); a tarball is passed through decompressed.
 */
public final class RootfsTar {

    private static final int S_IFMT = 0170000;
    private static final int S_IFDIR = 0040000;
    private static final int S_IFREG = 0100000;
    private static final int S_IFLNK = 0120000;
    private static final int S_IFCHR = 0020000;
    private static final int S_IFBLK = 0060000;
    private static final int S_IFIFO = 0010000;
    private static final String UNIX_ATTRIBUTES = "unix:mode,uid,gid,ino,dev,nlink,rdev,lastModifiedTime";

    private final TarArchiveOutputStream tar;
    private final Long clampSeconds;
    private final Map<String, String> firstNameOfInode = new HashMap<>();

    private RootfsTar(TarArchiveOutputStream tar, Long clampSeconds) {
        this.tar = tar;
        this.clampSeconds = clampSeconds;
    }

    /**
     * Writes {@code dirOrTarball} to {@code out} (flushed, not closed) as an uncompressed tar, with
     * mtimes clamped to {@code $SOURCE_DATE_EPOCH} when it is set.
     *
     * @throws BadInputException a tarball that is not one, corrupt, or truncated (the output is
     *                           then incomplete); an unreadable file in a directory; a bad
     *                           SOURCE_DATE_EPOCH
     */
    public static void write(Path dirOrTarball, OutputStream out) throws IOException, BadInputException {
        write(dirOrTarball, out, sourceDateEpoch(System.getenv("SOURCE_DATE_EPOCH")));
    }

    /**
     * As {@link #write(Path, OutputStream)} with an explicit clamp.
     *
     * @param clampSeconds latest mtime in the archive, in seconds since the epoch; null for none
     */
    public static void write(Path dirOrTarball, OutputStream out, Long clampSeconds)
            throws IOException, BadInputException {
        if (!Files.exists(dirOrTarball)) {
            throw new BadInputException(dirOrTarball + ": no such file or directory");
        }
        if (Files.isDirectory(dirOrTarball)) {
            writeDirectory(dirOrTarball, out, clampSeconds);
        } else if (Files.isRegularFile(dirOrTarball)) {
            passThrough(dirOrTarball, out);
        } else {
            throw new BadInputException(dirOrTarball + ": not a regular file or directory");
        }
    }

    static Long sourceDateEpoch(String value) throws BadInputException {
        if (value == null || value.isBlank()) {
            return null;
        }
        try {
            return Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new BadInputException("SOURCE_DATE_EPOCH='" + value + "' is not a number of seconds");
        }
    }

    private static void writeDirectory(Path root, OutputStream out, Long clampSeconds)
            throws IOException, BadInputException {
        TarArchiveOutputStream tar = new TarArchiveOutputStream(out);
        tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
        tar.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
        tar.setAddPaxHeadersForNonAsciiNames(true);
        RootfsTar writer = new RootfsTar(tar, clampSeconds);
        try {
            writer.addChildren(root, "");
        } catch (AccessDeniedException e) {
            throw new BadInputException(e.getFile() + ": permission denied",
                    "a root filesystem is read with its owners' permissions; run as root or make it readable");
        }
        tar.finish();
        tar.flush();
    }

    /** Children sorted by name, each directory before its contents; the root itself is left out. */
    private void addChildren(Path dir, String prefix) throws IOException {
        List<Path> children;
        try (Stream<Path> list = Files.list(dir)) {
            children = list.sorted(Comparator.comparing(p -> p.getFileName().toString())).toList();
        }
        for (Path child : children) {
            String name = prefix + child.getFileName();
            if (add(child, name)) {
                addChildren(child, name + "/");
            }
        }
    }

    /** Adds one file; true when it is a directory to descend into. */
    private boolean add(Path p, String name) throws IOException {
        Map<String, Object> a = Files.readAttributes(p, UNIX_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        int type = mode & S_IFMT;
        TarArchiveEntry e;
        boolean content = false;
        boolean descend = false;
        switch (type) {
            case S_IFDIR:
                e = new TarArchiveEntry(name + "/", TarArchiveEntry.LF_DIR);
                descend = true;
                break;
            case S_IFLNK:
                e = new TarArchiveEntry(name, TarArchiveEntry.LF_SYMLINK);
                e.setLinkName(Files.readSymbolicLink(p).toString());
                break;
            case S_IFREG:
                String inode = a.get("dev") + ":" + a.get("ino");
                String first = (Integer) a.get("nlink") > 1 ? firstNameOfInode.putIfAbsent(inode, name) : null;
                if (first != null) {
                    e = new TarArchiveEntry(name, TarArchiveEntry.LF_LINK);
                    e.setLinkName(first);
                } else {
                    e = new TarArchiveEntry(name, TarArchiveEntry.LF_NORMAL);
                    e.setSize(Files.size(p));
                    content = true;
                }
                break;
            case S_IFCHR:
            case S_IFBLK:
                e = new TarArchiveEntry(name, type == S_IFCHR ? TarArchiveEntry.LF_CHR : TarArchiveEntry.LF_BLK);
                long rdev = (Long) a.get("rdev");
                e.setDevMajor((int) (((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL)));
                e.setDevMinor((int) ((rdev & 0xff) | ((rdev >>> 12) & ~0xffL)));
                break;
            case S_IFIFO:
                e = new TarArchiveEntry(name, TarArchiveEntry.LF_FIFO);
                break;
            default:
                // Sockets cannot be archived and mean nothing in an image.
                return false;
        }
        e.setMode(mode & 07777);
        e.setUserId((long) (Integer) a.get("uid"));
        e.setGroupId((long) (Integer) a.get("gid"));
        e.setUserName("");
        e.setGroupName("");
        long mtime = ((FileTime) a.get("lastModifiedTime")).to(TimeUnit.SECONDS);
        if (clampSeconds != null && mtime > clampSeconds) {
            mtime = clampSeconds;
        }
        e.setModTime(FileTime.from(mtime, TimeUnit.SECONDS));
        tar.putArchiveEntry(e);
        if (content) {
            try (InputStream in = Files.newInputStream(p)) {
                in.transferTo(tar);
            }
        }
        tar.closeArchiveEntry();
        return descend;
    }

    /**
     * Copies a tarball's uncompressed bytes to {@code out} while a tar reader follows along, so a
     * file that is no tar, or a truncated one, is reported instead of handed on silently.
     */
    private static void passThrough(Path tarball, OutputStream out) throws IOException, BadInputException {
        if (Files.size(tarball) == 0) {
            throw new BadInputException(tarball + ": empty file, not a tarball");
        }
        int entries = 0;
        try (InputStream raw = Compression.openDecompressed(tarball, tarball.toString());
                Tee tee = new Tee(raw, out);
                TarEndTracker tracker = new TarEndTracker(tee);
                TarArchiveInputStream tar = new TarArchiveInputStream(tracker)) {
            try {
                for (TarArchiveEntry e; (e = tar.getNextEntry()) != null; entries++) {
                    if (!e.isCheckSumOK()) {
                        throw new IOException(TarImageFiles.BAD_CHECKSUM.substring("corrupt archive: ".length()));
                    }
                }
            } catch (IOException | RuntimeException e) {
                Tee.rethrowOutputFailure(e);
                String problem = GuardedInputStream.corrupt(e, "archive").getMessage();
                boolean noTar = entries == 0 && problem.startsWith("corrupt archive");
                throw new BadInputException(tarball + ": " + (noTar ? "not a tar archive (" + problem + ")" : problem));
            }
            if (entries == 0) {
                throw new BadInputException(tarball + ": not a tar archive, or one without files");
            }
            if (!tracker.sawEndMarker()) {
                throw new BadInputException(tarball + ": truncated: unexpected end of archive");
            }
            tee.drain();
        } catch (CorruptInputException e) {
            throw new BadInputException(tarball + ": " + e.getMessage());
        } catch (Tee.OutputFailed e) {
            throw e.io;
        }
        out.flush();
    }

    /** Copies what is read to {@code out}: bytes of a decompressed tarball, on their way to the engine. */
    private static final class Tee extends FilterInputStream {
        private final OutputStream out;

        Tee(InputStream in, OutputStream out) {
            super(in);
            this.out = out;
        }

        /** A failure to write, kept apart from failures to parse what was read. */
        static final class OutputFailed extends RuntimeException {
            private static final long serialVersionUID = 1L;
            final transient IOException io;

            OutputFailed(IOException io) {
                super(io);
                this.io = io;
            }
        }

        static void rethrowOutputFailure(Throwable e) throws IOException {
            for (Throwable t = e; t != null; t = t.getCause()) {
                if (t instanceof OutputFailed f) {
                    throw f.io;
                }
            }
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0) {
                write(new byte[] {(byte) b}, 0, 1);
            }
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0) {
                write(b, off, n);
            }
            return n;
        }

        private void write(byte[] b, int off, int len) {
            try {
                out.write(b, off, len);
            } catch (IOException e) {
                throw new OutputFailed(e);
            }
        }

        @Override
        public long skip(long n) throws IOException {
            // Skipped bytes must still reach the output.
            byte[] buf = new byte[(int) Math.min(n, 1 << 16)];
            int r = read(buf, 0, buf.length);
            return Math.max(r, 0);
        }

        /** Passes on whatever follows the end of the archive (padding). */
        void drain() throws IOException {
            byte[] buf = new byte[1 << 16];
            while (read(buf, 0, buf.length) >= 0) {
                // read() copies
            }
        }
    }
}
