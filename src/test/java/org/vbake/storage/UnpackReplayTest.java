package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.archivers.tar.TarConstants;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The unpack replay against the Linux and pkg/archive behaviour the engines' trees show (each case
 * was first seen in a tree the real engine wrote): capabilities dropped by a later chown, a
 * hardlink's header re-applied to the shared inode, whiteouts and opaque directories in both modes,
 * implied directories, directory mtimes restored at the end.
 */
class UnpackReplayTest {

    private static final UnpackReplay.Rules DOCKER_OVERLAY = new UnpackReplay.Rules(022, 0755, true, true, false,
            Set.of(), false);
    private static final UnpackReplay.Rules DOCKER_VFS = new UnpackReplay.Rules(0, 0755, true, false, false, Set.of(), false);
    private static final String CAP = new String(new byte[] {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0}, StandardCharsets.ISO_8859_1);

    @TempDir
    Path dir;

    /** A tar built entry by entry. */
    static final class Tar {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final TarArchiveOutputStream t = new TarArchiveOutputStream(bytes, 512);

        Tar() {
            t.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
            t.setBigNumberMode(TarArchiveOutputStream.BIGNUMBER_POSIX);
        }

        Tar dir(String name, int mode, long mtime) throws IOException {
            TarArchiveEntry e = new TarArchiveEntry(name + "/", TarConstants.LF_DIR);
            e.setMode(040000 | mode);
            e.setModTime(mtime * 1000);
            t.putArchiveEntry(e);
            t.closeArchiveEntry();
            return this;
        }

        Tar file(String name, int mode, String content, String... xattrs) throws IOException {
            TarArchiveEntry e = new TarArchiveEntry(name);
            byte[] b = content.getBytes(StandardCharsets.UTF_8);
            e.setSize(b.length);
            e.setMode(0100000 | mode);
            e.setModTime(1_000_000_000L);
            for (int i = 0; i < xattrs.length; i += 2) {
                e.addPaxHeader("SCHILY.xattr." + xattrs[i], xattrs[i + 1]);
            }
            t.putArchiveEntry(e);
            t.write(b);
            t.closeArchiveEntry();
            return this;
        }

        Tar link(String name, String target, int mode, long uid) throws IOException {
            TarArchiveEntry e = new TarArchiveEntry(name, TarConstants.LF_LINK);
            e.setLinkName(target);
            e.setMode(0100000 | mode);
            e.setUserId(uid);
            e.setModTime(1_100_000_000L * 1000);
            t.putArchiveEntry(e);
            t.closeArchiveEntry();
            return this;
        }

        byte[] done() throws IOException {
            t.close();
            return bytes.toByteArray();
        }
    }

    private void apply(FsTree tree, UnpackReplay replay, byte[] tar) throws Exception {
        try (LayerSpool spool = new LayerSpool(dir)) {
            spool.read(new ByteArrayInputStream(tar), replay);
        }
        replay.finish();
    }

    @Test
    void aHardlinkHeaderIsReappliedToTheInodeAndItsChownDropsTheCapability() throws Exception {
        FsTree diff = new FsTree(0755, 0, 0);
        apply(diff, UnpackReplay.overlay(diff, DOCKER_OVERLAY), new Tar()
                .file("bin/ping", 04755, "ping", "security.capability", CAP, "user.k", "v")
                .link("bin/ping2", "bin/ping", 0700, 7)
                .done());
        FsTree.Inode ping = diff.lstat("bin/ping");
        assertThat(diff.lstat("bin/ping2")).isSameAs(ping);
        // The link's own header: its mode and owner; chown took the capability, not user.k.
        assertThat(ping.mode()).isEqualTo(0700);
        assertThat(ping.uid()).isEqualTo(7);
        assertThat(ping.xattrs()).containsOnlyKeys("user.k");
        assertThat(ping.mtime()).isEqualTo(1_100_000_000L);
        // bin was implied: 0755 after the umask, made at the clock.
        assertThat(diff.lstat("bin").mode()).isEqualTo(0755);
        assertThat(diff.lstat("bin").mtime()).isEqualTo(FsTree.CLOCK);
    }

    @Test
    void overlayTurnsWhiteoutsIntoDevicesAndMarksOpaqueDirectories() throws Exception {
        FsTree diff = new FsTree(0755, 0, 0);
        apply(diff, UnpackReplay.overlay(diff, DOCKER_OVERLAY), new Tar()
                .dir("opq", 0750, 5)
                .file("opq/.wh..wh..opq", 0644, "")
                .file("opq/new", 0644, "n")
                .file(".wh.gone", 0644, "")
                .done());
        assertThat(diff.lstat("gone").type()).isEqualTo(FsTree.Type.CHAR);
        assertThat(diff.lstat("gone").mode()).isZero();
        assertThat(diff.lstat("opq").xattrs()).containsEntry("trusted.overlay.opaque", "y");
        // Entries made in opq after its header: its mtime comes back at the end.
        assertThat(diff.lstat("opq").mtime()).isEqualTo(5);
        assertThat(diff.paths()).containsExactly("gone", "opq", "opq/new");
    }

    @Test
    void vfsDeletesWhatWhiteoutsAndOpaqueMarkersNameFromTheCopyBelow() throws Exception {
        FsTree lower = new FsTree(0755, 0, 0);
        apply(lower, UnpackReplay.full(lower, DOCKER_VFS), new Tar()
                .dir("opq", 0755, 5)
                .file("opq/old", 0644, "o")
                .file("keep", 0644, "k", "user.k", "v", "security.capability", CAP)
                .file("gone", 0644, "g")
                .done());
        FsTree upper = new FsTree(0755, 0, 0);
        upper.copyFrom(lower, FsTree.CAPABILITY::equals);
        apply(upper, UnpackReplay.full(upper, DOCKER_VFS), new Tar()
                .file("opq/new", 0644, "n")
                .file("opq/.wh..wh..opq", 0644, "")
                .file(".wh.gone", 0644, "")
                .done());
        // The opaque marker keeps what this layer unpacked before it.
        assertThat(upper.paths()).containsExactly("keep", "opq", "opq/new");
        assertThat(upper.lstat("keep").xattrs()).containsOnlyKeys(FsTree.CAPABILITY);
        assertThat(upper.lstat("opq").mtime()).isEqualTo(FsTree.CLOCK);
        assertThat(upper.root().mtime()).isEqualTo(FsTree.CLOCK);
    }

    @Test
    void aPathThroughASymlinkIsNotMirrored() throws Exception {
        FsTree diff = new FsTree(0755, 0, 0);
        TarArchiveOutputStream t;
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        t = new TarArchiveOutputStream(b, 512);
        TarArchiveEntry s = new TarArchiveEntry("lib", TarConstants.LF_SYMLINK);
        s.setLinkName("usr/lib");
        t.putArchiveEntry(s);
        t.closeArchiveEntry();
        TarArchiveEntry f = new TarArchiveEntry("lib/x");
        f.setSize(0);
        t.putArchiveEntry(f);
        t.closeArchiveEntry();
        t.close();
        assertThatThrownBy(() -> apply(diff, UnpackReplay.overlay(diff, DOCKER_OVERLAY), b.toByteArray()))
                .isInstanceOf(NotMirroredException.class).hasMessageContaining("through a symlink");
    }

    @Test
    void theTreeIsWrittenAsTheExporterWritesIt() throws Exception {
        FsTree t = new FsTree(0710, 0, 0);
        t.mkdir("d", 0700, 0, 0);
        t.create("d/f", FsTree.Type.FILE, 0644, 0, 0);
        t.write("d/f", FsTree.Content.of("x".getBytes(StandardCharsets.US_ASCII)));
        t.link("d/f", "d/a");
        Path out = dir.resolve("t.tar");
        try (var o = Files.newOutputStream(out)) {
            t.writeTar(o, 123, x -> false);
        }
        // The normaliser finds nothing to change in it, and reads it back in the same order.
        java.util.List<String> names = new java.util.ArrayList<>();
        try (var in = new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(Files.newInputStream(out))) {
            for (TarArchiveEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                names.add(e.getName() + (e.isLink() ? "->" + e.getLinkName() : "") + "@" + e.getModTime().getTime() / 1000);
            }
        }
        assertThat(names).containsExactly("./@123", "./d/@123", "./d/a@123", "./d/f->./d/a@123");
    }
}
