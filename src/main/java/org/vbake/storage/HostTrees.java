package org.vbake.storage;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;

/**
 * vbake's own staged files (inputs for a resident guest) as a tar stream for the guest's
 * {@code vbake-agent import-tree}: modes kept, owners not. A user's directories ({@code -v}) go
 * through the agent's tools built for the host instead (see {@code HostAgent}).
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
}
