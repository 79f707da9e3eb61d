package org.vbake.storage;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * How docker and containers/storage unpack a layer tar, replayed on an {@link FsTree}: both
 * engines carry a copy of the same Go code (moby's pkg/archive), in two modes. <b>Overlay</b>
 * ({@code archive.Unpack} with the overlay whiteout converter) unpacks a layer into an empty
 * directory of its own, turning {@code .wh.NAME} into a 0/0 character device and
 * {@code .wh..wh..opq} into {@code trusted.overlay.opaque=y}. <b>Full</b> ({@code
 * archive.UnpackLayer}, the vfs drivers) unpacks onto a copy of the layer below, deleting what
 * whiteouts name. The system calls are made in the engines' order, because the order decides the
 * result: {@code chown} drops file capabilities that a later {@code setxattr} restores, a hardlink
 * entry re-applies its header to the shared inode, directory mtimes are restored only at the end.
 *
 * <p>Where the engines differ, {@link Rules} says which: the umask, the mode of directories a tar
 * implies, whether a PAX global header is skipped before its parent directory is made, whether a
 * whiteout below a whiteout is an error, which extended attributes are ignored.
 */
public final class UnpackReplay implements LayerSpool.Applier {

    /**
     * One engine version's choices.
     *
     * @param umask                  the process umask while unpacking
     * @param impliedDirMode         the mode missing parent directories are made with (before the umask)
     * @param chownImpliedDirs       whether made parents are chowned to root (MkdirAllAndChownNew)
     * @param skipGlobalHeaderEarly  docker: a PAX global header is skipped before anything else
     * @param ignoreWhiteoutEnotdir  containers/storage: a whiteout below a whiteout is ignored
     * @param ignoredXattrs          attributes never set (containers/storage: security.selinux)
     * @param chownOnlyToChange      containers/storage's SafeLchown: no chown when the owner is
     *                               already right (so a file capability survives a second name)
     */
    public record Rules(int umask, int impliedDirMode, boolean chownImpliedDirs, boolean skipGlobalHeaderEarly,
            boolean ignoreWhiteoutEnotdir, Set<String> ignoredXattrs, boolean chownOnlyToChange) {
    }

    static final String WHITEOUT = ".wh.";
    static final String OPAQUE = ".wh..wh..opq";
    static final String META_PREFIX = ".wh..wh.";
    static final String OPAQUE_XATTR = "trusted.overlay.opaque";

    private final FsTree tree;
    private final Rules rules;
    private final boolean overlay;
    private final List<Object[]> dirs = new ArrayList<>();
    private final Set<String> unpacked = new HashSet<>();
    private long headerSizes;

    private UnpackReplay(FsTree tree, Rules rules, boolean overlay) {
        this.tree = tree;
        this.rules = rules;
        this.overlay = overlay;
    }

    /** archive.Unpack with the overlay whiteout converter, into {@code diff} (empty, or the tree so far). */
    public static UnpackReplay overlay(FsTree diff, Rules rules) {
        return new UnpackReplay(diff, rules, true);
    }

    /** archive.UnpackLayer onto {@code root}, which holds the copy of the layer below. */
    public static UnpackReplay full(FsTree root, Rules rules) {
        return new UnpackReplay(root, rules, false);
    }

    /** The sum of every header's size, which UnpackLayer returns as the layer's size (docker vfs). */
    public long headerSizes() {
        return headerSizes;
    }

    @Override
    public void entry(LayerTar.Header h, FsTree.Content content) throws NotMirroredException {
        headerSizes += h.size();
        if (h.type() == LayerTar.GLOBAL && (rules.skipGlobalHeaderEarly() && overlay)) {
            return;
        }
        String name = GoPath.clean(h.name());
        if (name.equals("/")) {
            throw new NotMirroredException("an entry named / (" + LayerTar.printable(h.name()) + ")");
        }
        if (GoPath.climbsOut(name)) {
            throw new NotMirroredException("an entry outside the layer (" + LayerTar.printable(h.name()) + ")");
        }
        String path = GoPath.below(name);
        if (!path.isEmpty()) {
            String parent = FsTree.parent(path);
            if (tree.lstat(parent) == null) {
                int mode = rules.impliedDirMode() & ~rules.umask();
                if (rules.chownImpliedDirs()) {
                    tree.mkdirAll(parent, mode, 0, 0);
                } else {
                    mkdirAllNoChown(parent, mode);
                }
            }
        }
        if (overlay) {
            overlayEntry(h, content, name, path);
        } else {
            fullEntry(h, content, name, path);
        }
    }

    private void mkdirAllNoChown(String path, int mode) throws NotMirroredException {
        if (path.isEmpty() || tree.lstat(path) != null) {
            return;
        }
        mkdirAllNoChown(FsTree.parent(path), mode);
        tree.mkdir(path, mode, 0, 0);
    }

    private void overlayEntry(LayerTar.Header h, FsTree.Content content, String name, String path)
            throws NotMirroredException {
        FsTree.Inode existing = tree.lstat(path);
        if (existing != null) {
            if (existing.isDir() && name.equals(".")) {
                return;
            }
            if (!(existing.isDir() && h.type() == LayerTar.DIR)) {
                tree.removeAll(path);
            }
        }
        if (!path.isEmpty()) {
            String base = FsTree.base(path);
            String dir = FsTree.parent(path);
            if (base.equals(OPAQUE)) {
                tree.setxattr(dir, OPAQUE_XATTR, "y");
                return;
            }
            if (base.startsWith(WHITEOUT)) {
                String original = join(dir, base.substring(WHITEOUT.length()));
                FsTree.Inode parent = tree.lstat(dir);
                if ((parent == null || !parent.isDir()) && rules.ignoreWhiteoutEnotdir()) {
                    return;
                }
                if (tree.lstat(original) != null) {
                    throw new NotMirroredException("a whiteout of an entry of its own layer ("
                            + LayerTar.printable(h.name()) + ")");
                }
                tree.create(original, FsTree.Type.CHAR, 0, 0, 0);
                chown(original, h.uid(), h.gid());
                return;
            }
        }
        create(h, content, path, existing);
    }

    private void fullEntry(LayerTar.Header h, FsTree.Content content, String name, String path)
            throws NotMirroredException {
        if (name.startsWith(META_PREFIX)) {
            if (name.startsWith(".wh..wh.plnk") && h.type() == LayerTar.REG) {
                throw new NotMirroredException("an AUFS hardlink directory (" + LayerTar.printable(h.name()) + ")");
            }
            if (!name.equals(OPAQUE)) {
                return;
            }
        }
        String base = path.isEmpty() ? "" : FsTree.base(path);
        if (base.startsWith(WHITEOUT)) {
            String dir = FsTree.parent(path);
            if (base.equals(OPAQUE)) {
                FsTree.Inode d = tree.lstat(dir);
                if (d == null) {
                    throw new NotMirroredException("an opaque marker in no directory (" + LayerTar.printable(h.name())
                            + ")");
                }
                if (d.isDir()) {
                    removeNotUnpacked(dir, d);
                }
            } else {
                tree.removeAll(join(dir, base.substring(WHITEOUT.length())));
            }
            return;
        }
        FsTree.Inode existing = tree.lstat(path);
        if (existing != null && !(existing.isDir() && h.type() == LayerTar.DIR)) {
            tree.removeAll(path);
            existing = null;
        }
        if (h.type() == LayerTar.LINK && GoPath.clean(h.linkname()).startsWith(".wh..wh.plnk")) {
            throw new NotMirroredException("a hardlink into an AUFS directory (" + LayerTar.printable(h.name()) + ")");
        }
        create(h, content, path, existing);
        unpacked.add(path);
    }

    /** filepath.WalkDir removing every entry this layer did not unpack (with what is below it). */
    private void removeNotUnpacked(String dirPath, FsTree.Inode dir) throws NotMirroredException {
        for (String child : new ArrayList<>(dir.children.keySet())) {
            String p = join(dirPath, child);
            FsTree.Inode c = dir.children.get(child);
            if (c == null) {
                continue;
            }
            if (!unpacked.contains(p)) {
                tree.removeAll(p);
            } else if (c.isDir()) {
                removeNotUnpacked(p, c);
            }
        }
    }

    /** createTarFile: make the entry, then owner, attributes, mode and times, in the engines' order. */
    private void create(LayerTar.Header h, FsTree.Content content, String path, FsTree.Inode existing)
            throws NotMirroredException {
        int mode = (int) (h.mode() & 07777);
        int umask = rules.umask();
        switch (h.type()) {
            case LayerTar.DIR -> {
                if (existing == null || !existing.isDir()) {
                    tree.mkdir(path, mode & ~umask, 0, 0);
                }
            }
            case LayerTar.REG -> {
                tree.create(path, FsTree.Type.FILE, mode & ~umask, 0, 0);
                tree.write(path, content != null ? content : FsTree.Content.of(new byte[0]));
            }
            case LayerTar.CHAR, LayerTar.BLOCK_DEV, LayerTar.FIFO -> {
                FsTree.Type type = h.type() == LayerTar.CHAR ? FsTree.Type.CHAR
                        : h.type() == LayerTar.BLOCK_DEV ? FsTree.Type.BLOCK : FsTree.Type.FIFO;
                if (type != FsTree.Type.FIFO && (h.devMajor() > 4095 || h.devMinor() > 0xfffff || h.devMajor() < 0
                        || h.devMinor() < 0)) {
                    throw new NotMirroredException("a device number out of range (" + LayerTar.printable(h.name()) + ")");
                }
                FsTree.Inode i = tree.create(path, type, mode & ~umask, 0, 0);
                if (type != FsTree.Type.FIFO) {
                    i.devMajor = h.devMajor();
                    i.devMinor = h.devMinor();
                }
            }
            case LayerTar.LINK -> {
                String target = GoPath.clean(h.linkname());
                if (GoPath.climbsOut(target) || target.equals("/")) {
                    throw new NotMirroredException("a hardlink outside the layer (" + LayerTar.printable(h.name()) + ")");
                }
                tree.link(GoPath.below(target), path);
            }
            case LayerTar.SYMLINK -> {
                String dir = FsTree.parent(path);
                String resolved = GoPath.clean(dir.isEmpty() ? h.linkname() : dir + "/" + h.linkname());
                if (GoPath.climbsOut(resolved)) {
                    throw new NotMirroredException("a symlink outside the layer (" + LayerTar.printable(h.name()) + ")");
                }
                tree.create(path, FsTree.Type.SYMLINK, 0777, 0, 0).target = h.linkname();
            }
            case LayerTar.GLOBAL -> {
                return;
            }
            default -> throw new NotMirroredException("an entry of type '" + (char) h.type() + "'");
        }
        chown(path, h.uid(), h.gid());
        for (Map.Entry<String, String> x : h.xattrs().entrySet()) {
            if (!rules.ignoredXattrs().contains(x.getKey())) {
                tree.setxattr(path, x.getKey(), x.getValue());
            }
        }
        boolean linkTargetIsFile = false;
        if (h.type() == LayerTar.LINK) {
            // Lstat(hdr.Linkname) runs with the layer root as the working directory.
            FsTree.Inode target = tree.lstat(GoPath.below(GoPath.clean(h.linkname())));
            linkTargetIsFile = target != null && target.type() != FsTree.Type.SYMLINK;
        }
        if (h.type() == LayerTar.LINK ? linkTargetIsFile : h.type() != LayerTar.SYMLINK) {
            tree.chmod(path, mode);
            tree.setMtime(path, h.boundedMtime(), true);
        } else if (h.type() == LayerTar.SYMLINK) {
            tree.setMtime(path, h.mtime(), false);
        }
        if (h.type() == LayerTar.DIR) {
            dirs.add(new Object[] {path, h.boundedMtime()});
        }
    }

    private void chown(String path, long uid, long gid) throws NotMirroredException {
        FsTree.Inode i = tree.lstat(path);
        if (rules.chownOnlyToChange() && i != null && i.uid() == uid && i.gid() == gid) {
            return;
        }
        tree.chown(path, uid, gid);
    }

    /** The end of the tar: directory mtimes, which entries made below them have moved. */
    public void finish() throws NotMirroredException {
        for (Object[] d : dirs) {
            tree.setMtime((String) d[0], (Long) d[1], true);
        }
    }

    static String join(String dir, String name) {
        return dir.isEmpty() ? name : dir + "/" + name;
    }
}
