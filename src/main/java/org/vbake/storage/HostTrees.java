package org.vbake.storage;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;

/**
 * Host directories to and from tar streams, for copying files into a running guest
 * ({@code vbake-agent import-tree}) and back ({@code export-tree}): inputs for a resident guest
 * and {@code -v} volumes. As an unprivileged user: modes are kept, owners are not.
 */
public final class HostTrees {

    private HostTrees() {
    }

    /** Writes {@code dir}'s content (directories, regular files, symlinks), sorted, paths relative to it. */
    public static void writeTar(Path dir, OutputStream out) throws IOException {
        TarArchiveOutputStream tar = new TarArchiveOutputStream(out);
        tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
        tar.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
        List<Path> paths;
        try (Stream<Path> walk = Files.walk(dir)) {
            paths = walk.filter(p -> !p.equals(dir)).sorted().toList();
        }
        for (Path p : paths) {
            String rel = dir.relativize(p).toString();
            TarArchiveEntry e;
            boolean regular = false;
            if (Files.isSymbolicLink(p)) {
                e = new TarArchiveEntry(rel, TarArchiveEntry.LF_SYMLINK);
                e.setLinkName(Files.readSymbolicLink(p).toString());
                e.setMode(0120777);
            } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                e = new TarArchiveEntry(rel + "/");
                e.setMode(040000 | mode(p));
            } else if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
                e = new TarArchiveEntry(rel);
                e.setMode(0100000 | mode(p));
                e.setSize(Files.size(p));
                regular = true;
            } else {
                continue;   // sockets, FIFOs, devices: nothing a volume copy can carry
            }
            e.setModTime(Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS).toMillis());
            tar.putArchiveEntry(e);
            if (regular) {
                Files.copy(p, tar);
            }
            tar.closeArchiveEntry();
        }
        tar.finish();
        tar.flush();
    }

    /**
     * Unpacks a tar over {@code dir}: new and changed files are written, nothing is deleted.
     * Entries that would land outside {@code dir} are refused.
     *
     * @return the number of files and links written
     */
    public static int extractTar(InputStream in, Path dir) throws IOException {
        Path root = dir.toAbsolutePath().normalize();
        Files.createDirectories(root);
        int written = 0;
        TarArchiveInputStream tar = new TarArchiveInputStream(in);
        TarArchiveEntry e;
        while ((e = tar.getNextTarEntry()) != null) {
            String name = e.getName();
            while (name.startsWith("./")) {
                name = name.substring(2);
            }
            if (name.isEmpty() || name.equals(".") || name.equals("./")) {
                continue;
            }
            Path target = root.resolve(name).normalize();
            if (!target.startsWith(root) || target.equals(root)) {
                throw new IOException("tar entry outside the destination: " + e.getName());
            }
            Path parent = target.getParent();
            if (Files.isSymbolicLink(parent)) {
                throw new IOException("tar entry below a symlink: " + e.getName());
            }
            Files.createDirectories(parent);
            if (e.isDirectory()) {
                if (!Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                    Files.deleteIfExists(target);
                    Files.createDirectory(target);
                }
                setMode(target, e.getMode() | 0700);
            } else if (e.isSymbolicLink()) {
                if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                    continue;   // do not replace a host directory by a link
                }
                Files.deleteIfExists(target);
                Files.createSymbolicLink(target, Path.of(e.getLinkName()));
                written++;
            } else if (e.isFile() && !e.isLink()) {
                if (Files.isDirectory(target, LinkOption.NOFOLLOW_LINKS)) {
                    continue;
                }
                Path tmp = target.resolveSibling("." + target.getFileName() + ".vbake-new");
                Files.copy(tar, tmp, StandardCopyOption.REPLACE_EXISTING);
                setMode(tmp, e.getMode() | 0600);
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
                written++;
            }
        }
        return written;
    }

    private static int mode(Path p) throws IOException {
        int m = 0;
        Set<PosixFilePermission> perms = Files.getPosixFilePermissions(p, LinkOption.NOFOLLOW_LINKS);
        PosixFilePermission[] order = PosixFilePermission.values();   // OWNER_READ ... OTHERS_EXECUTE
        for (int i = 0; i < order.length; i++) {
            if (perms.contains(order[i])) {
                m |= 1 << (8 - i);
            }
        }
        return m;
    }

    private static void setMode(Path p, int mode) throws IOException {
        Set<PosixFilePermission> perms = EnumSet.noneOf(PosixFilePermission.class);
        PosixFilePermission[] order = PosixFilePermission.values();
        for (int i = 0; i < order.length; i++) {
            if ((mode & (1 << (8 - i))) != 0) {
                perms.add(order[i]);
            }
        }
        Files.setPosixFilePermissions(p, perms);
    }
}
