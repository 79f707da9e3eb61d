package org.vbake.storage;

import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;

/**
 * A directory tree held in memory with the Linux semantics the engines' unpackers depend on:
 * inodes shared by hardlinks, directories whose mtime moves when an entry is added or removed,
 * {@code chown} dropping file capabilities and setuid, new directories inheriting setgid. The host
 * writer replays an engine's system calls on it in the engine's order, then writes it out as the
 * guest's exporter would ({@link #writeTar}). Content stays where it is (a spool file, a byte
 * array) until then.
 *
 * <p>Paths are cleaned, relative, ISO-8859-1 ("" is the root). What the host writer does not
 * replay (following a symlink in the middle of a path, replacing an entry the engine would fail
 * on) throws {@link NotMirroredException}.
 */
public final class FsTree {

    /** An mtime the engine took from its clock: the exporter's clamp (SOURCE_DATE_EPOCH) replaces it. */
    public static final long CLOCK = Long.MAX_VALUE;

    public enum Type {
        DIR('5'), FILE('0'), SYMLINK('2'), CHAR('3'), BLOCK('4'), FIFO('6');

        final byte tarType;

        Type(char tarType) {
            this.tarType = (byte) tarType;
        }
    }

    /** File content: copied to the output only when the tree is written. */
    public interface Content {
        long size();

        void copyTo(OutputStream out) throws IOException;

        static Content of(byte[] bytes) {
            return new Content() {
                @Override
                public long size() {
                    return bytes.length;
                }

                @Override
                public void copyTo(OutputStream out) throws IOException {
                    out.write(bytes);
                }
            };
        }
    }

    static final int S_ISUID = 04000;
    static final int S_ISGID = 02000;
    static final int S_IXGRP = 00010;
    public static final String CAPABILITY = "security.capability";

    /** One inode; a directory's entries are its children. */
    public static final class Inode {
        final Type type;
        int mode;
        long uid;
        long gid;
        long mtime = CLOCK;
        final TreeMap<String, String> xattrs = new TreeMap<>();
        Content content;
        String target = "";
        long devMajor;
        long devMinor;
        final TreeMap<String, Inode> children;

        Inode(Type type, int mode, long uid, long gid) {
            this.type = type;
            this.mode = mode;
            this.uid = uid;
            this.gid = gid;
            this.children = type == Type.DIR ? new TreeMap<>() : null;
        }

        public Type type() {
            return type;
        }

        public int mode() {
            return mode;
        }

        public long uid() {
            return uid;
        }

        public long gid() {
            return gid;
        }

        public long mtime() {
            return mtime;
        }

        public Map<String, String> xattrs() {
            return xattrs;
        }

        public Content content() {
            return content;
        }

        public String target() {
            return target;
        }

        boolean isDir() {
            return type == Type.DIR;
        }
    }

    private final Inode root;

    /** A tree whose root has the given owner and mode, its mtime the clock. */
    public FsTree(int rootMode, long uid, long gid) {
        root = new Inode(Type.DIR, rootMode, uid, gid);
    }

    public Inode root() {
        return root;
    }

    // ---- lookups ----

    /** The inode at {@code path}, not following a symlink at the end; null if there is none. */
    public Inode lstat(String path) throws NotMirroredException {
        if (path.isEmpty()) {
            return root;
        }
        Inode dir = root;
        String[] parts = path.split("/", -1);
        for (int i = 0; i < parts.length - 1; i++) {
            Inode next = dir.children.get(parts[i]);
            if (next == null) {
                return null;
            }
            if (next.type == Type.SYMLINK) {
                throw new NotMirroredException("a path through a symlink (" + LayerTar.printable(path) + ")");
            }
            if (!next.isDir()) {
                return null; // ENOTDIR: Lstat fails, as for a missing path
            }
            dir = next;
        }
        return dir.children.get(parts[parts.length - 1]);
    }

    /** As {@link #lstat}, following a symlink at the end (chmod, chtimes). */
    Inode stat(String path) throws NotMirroredException {
        Inode i = lstat(path);
        if (i != null && i.type == Type.SYMLINK) {
            throw new NotMirroredException("a symlink followed (" + LayerTar.printable(path) + ")");
        }
        return i;
    }

    private Inode parentOf(String path) throws NotMirroredException {
        Inode parent = lstat(parent(path));
        if (parent == null || !parent.isDir()) {
            throw new NotMirroredException("no directory for " + LayerTar.printable(path));
        }
        return parent;
    }

    static String parent(String path) {
        int slash = path.lastIndexOf('/');
        return slash < 0 ? "" : path.substring(0, slash);
    }

    static String base(String path) {
        return path.substring(path.lastIndexOf('/') + 1);
    }

    // ---- system calls ----

    /** mkdir(2): {@code mode} after the umask; setgid and the group come from a setgid parent. */
    public Inode mkdir(String path, int mode, long uid, long gid) throws NotMirroredException {
        Inode parent = parentOf(path);
        int m = mode & 07777 & ~(S_ISUID | S_ISGID);
        long g = gid;
        if ((parent.mode & S_ISGID) != 0) {
            m |= S_ISGID;
            g = parent.gid;
        }
        Inode dir = new Inode(Type.DIR, m, uid, g);
        add(parent, path, dir);
        return dir;
    }

    /** os.MkdirAll, then chown of each directory it made (idtools.MkdirAllAndChownNew). */
    public void mkdirAll(String path, int mode, long uid, long gid) throws NotMirroredException {
        if (path.isEmpty()) {
            return;
        }
        Inode existing = lstat(path);
        if (existing != null) {
            if (!existing.isDir()) {
                throw new NotMirroredException("a directory path through a file (" + LayerTar.printable(path) + ")");
            }
            return;
        }
        mkdirAll(parent(path), mode, uid, gid);
        mkdir(path, mode, 0, 0);
        chown(path, uid, gid);
    }

    /** A new non-directory (open with O_CREAT, mknod, symlink): mode after the umask, group from a setgid parent. */
    public Inode create(String path, Type type, int mode, long uid, long gid) throws NotMirroredException {
        Inode parent = parentOf(path);
        long g = (parent.mode & S_ISGID) != 0 ? parent.gid : gid;
        Inode i = new Inode(type, type == Type.SYMLINK ? 0777 : mode & 07777, uid, g);
        add(parent, path, i);
        return i;
    }

    /** symlink(2), owned by root. */
    public Inode symlink(String path, String target) throws NotMirroredException {
        Inode i = create(path, Type.SYMLINK, 0777, 0, 0);
        i.target = target;
        return i;
    }

    /** Marks {@code path} as changed by the engine at its clock (a temporary entry made and removed in it). */
    public void touch(String path) throws NotMirroredException {
        Inode i = lstat(path);
        if (i == null) {
            throw new NotMirroredException("touch of nothing (" + LayerTar.printable(path) + ")");
        }
        i.mtime = CLOCK;
    }

    /** link(2). */
    public void link(String existing, String path) throws NotMirroredException {
        Inode target = lstat(existing);
        if (target == null || target.isDir()) {
            throw new NotMirroredException("a hardlink to " + (target == null ? "nothing" : "a directory")
                    + " (" + LayerTar.printable(path) + " -> " + LayerTar.printable(existing) + ")");
        }
        add(parentOf(path), path, target);
    }

    private void add(Inode parent, String path, Inode inode) throws NotMirroredException {
        String name = base(path);
        if (parent.children.containsKey(name)) {
            throw new NotMirroredException("an entry created twice (" + LayerTar.printable(path) + ")");
        }
        parent.children.put(name, inode);
        parent.mtime = CLOCK;
    }

    /** os.RemoveAll: nothing if there is nothing. */
    public void removeAll(String path) throws NotMirroredException {
        if (path.isEmpty()) {
            throw new NotMirroredException("the root removed");
        }
        Inode parent = lstat(parent(path));
        if (parent == null || !parent.isDir()) {
            return;
        }
        if (parent.children.remove(base(path)) != null) {
            parent.mtime = CLOCK;
        }
    }

    /**
     * lchown(2). On anything but a directory the kernel also drops setuid, setgid (when group
     * execute is set) and the file capability, whatever the new owner.
     */
    public void chown(String path, long uid, long gid) throws NotMirroredException {
        Inode i = lstat(path);
        if (i == null) {
            throw new NotMirroredException("chown of nothing (" + LayerTar.printable(path) + ")");
        }
        i.uid = uid;
        i.gid = gid;
        if (!i.isDir()) {
            i.mode &= ~S_ISUID;
            if ((i.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) {
                i.mode &= ~S_ISGID;
            }
            i.xattrs.remove(CAPABILITY);
        }
    }

    /** chmod(2), following a symlink. */
    public void chmod(String path, int mode) throws NotMirroredException {
        Inode i = stat(path);
        if (i == null) {
            throw new NotMirroredException("chmod of nothing (" + LayerTar.printable(path) + ")");
        }
        i.mode = mode & 07777;
    }

    /** lsetxattr(2). */
    public void setxattr(String path, String name, String value) throws NotMirroredException {
        Inode i = lstat(path);
        if (i == null) {
            throw new NotMirroredException("setxattr of nothing (" + LayerTar.printable(path) + ")");
        }
        if (i.type == Type.SYMLINK && !name.startsWith("trusted.") && !name.startsWith("security.")) {
            throw new NotMirroredException("an extended attribute on a symlink (" + LayerTar.printable(path) + ")");
        }
        i.xattrs.put(name, value);
    }

    /** The mtime set by chtimes (following) or lutimes ({@code follow} false). */
    public void setMtime(String path, long mtime, boolean follow) throws NotMirroredException {
        Inode i = follow ? stat(path) : lstat(path);
        if (i == null) {
            throw new NotMirroredException("utimes of nothing (" + LayerTar.printable(path) + ")");
        }
        i.mtime = mtime;
    }

    /** Sets the content of a regular file just created. */
    public void write(String path, Content content) throws NotMirroredException {
        Inode i = lstat(path);
        if (i == null || i.type != Type.FILE) {
            throw new NotMirroredException("content for no file (" + LayerTar.printable(path) + ")");
        }
        i.content = content;
    }

    // ---- whole trees ----

    /**
     * Copies {@code from} onto this tree's root as a recursive copy that keeps owners, modes,
     * mtimes, hardlinks within the source, and the extended attributes {@code keepXattr} accepts
     * (the vfs drivers' copy of the layer below).
     */
    public void copyFrom(FsTree from, Predicate<String> keepXattr) {
        Map<Inode, Inode> copied = new IdentityHashMap<>();
        copyMeta(from.root, root, keepXattr);
        copyChildren(from.root, root, keepXattr, copied);
    }

    private static void copyChildren(Inode src, Inode dst, Predicate<String> keepXattr, Map<Inode, Inode> copied) {
        for (Map.Entry<String, Inode> e : src.children.entrySet()) {
            Inode s = e.getValue();
            Inode d = copied.get(s);
            if (d == null) {
                d = new Inode(s.type, s.mode, s.uid, s.gid);
                copyMeta(s, d, keepXattr);
                d.content = s.content;
                d.target = s.target;
                d.devMajor = s.devMajor;
                d.devMinor = s.devMinor;
                if (!s.isDir()) {
                    copied.put(s, d);
                } else {
                    copyChildren(s, d, keepXattr, copied);
                }
            }
            dst.children.put(e.getKey(), d);
        }
    }

    private static void copyMeta(Inode s, Inode d, Predicate<String> keepXattr) {
        d.mode = s.mode;
        d.uid = s.uid;
        d.gid = s.gid;
        d.mtime = s.mtime;
        d.xattrs.clear();
        for (Map.Entry<String, String> x : s.xattrs.entrySet()) {
            if (keepXattr.test(x.getKey())) {
                d.xattrs.put(x.getKey(), x.getValue());
            }
        }
    }

    /** Puts {@code sub}'s root at {@code path} (a new directory entry), as it is. */
    public void graft(String path, FsTree sub) throws NotMirroredException {
        add(parentOf(path), path, sub.root);
    }

    /** Calls {@code visitor} for every inode reachable from the root, once per path (the root too). */
    public void visit(java.util.function.Consumer<Inode> visitor) {
        visitAll(root, visitor);
    }

    private static void visitAll(Inode inode, java.util.function.Consumer<Inode> visitor) {
        visitor.accept(inode);
        if (inode.isDir()) {
            for (Inode c : inode.children.values()) {
                visitAll(c, visitor);
            }
        }
    }

    /** The paths below the root, depth first, each directory's entries in byte order. */
    public List<String> paths() {
        List<String> out = new ArrayList<>();
        walk(root, "", out);
        return out;
    }

    private static void walk(Inode dir, String prefix, List<String> out) {
        for (Map.Entry<String, Inode> e : dir.children.entrySet()) {
            String p = prefix.isEmpty() ? e.getKey() : prefix + "/" + e.getKey();
            out.add(p);
            if (e.getValue().isDir()) {
                walk(e.getValue(), p, out);
            }
        }
    }

    // ---- output ----

    /**
     * Writes the tree as the guest's {@code export-tree} writes a directory: depth first, each
     * directory's entries in byte order, the first path of a hardlinked inode with the content and
     * the others as links to it, mtimes no later than {@code clamp}, extended attributes as PAX
     * records except those {@code skipXattr} names.
     */
    public void writeTar(OutputStream out, long clamp, Predicate<String> skipXattr) throws IOException {
        TreeNormalizerTar.Writer w = new TreeNormalizerTar.Writer(out);
        Map<Inode, String> firstPath = new IdentityHashMap<>();
        emit(w, root, "", clamp, skipXattr, firstPath);
        w.close();
    }

    private static void emit(TreeNormalizerTar.Writer w, Inode inode, String path, long clamp,
            Predicate<String> skipXattr, Map<Inode, String> firstPath) throws IOException {
        TreeNormalizerTar.Entry e = new TreeNormalizerTar.Entry();
        e.path = path;
        e.mode = inode.mode & 07777;
        e.uid = inode.uid;
        e.gid = inode.gid;
        e.mtime = Math.min(inode.mtime, clamp);
        String first = inode.isDir() ? null : firstPath.get(inode);
        if (first != null) {
            e.type = '1';
            e.linkname = first;
            w.writeHeader(e);
            return;
        }
        if (!inode.isDir()) {
            firstPath.put(inode, path);
        }
        e.type = inode.type.tarType;
        if (inode.type == Type.SYMLINK) {
            e.linkname = inode.target;
        }
        if (inode.type == Type.CHAR || inode.type == Type.BLOCK) {
            e.devMajor = inode.devMajor;
            e.devMinor = inode.devMinor;
        }
        if (inode.type == Type.FILE) {
            e.size = inode.content == null ? 0 : inode.content.size();
        }
        for (Map.Entry<String, String> x : inode.xattrs.entrySet()) {
            if (!skipXattr.test(x.getKey())) {
                if (e.records == null) {
                    e.records = new TreeMap<>();
                }
                e.records.put("SCHILY.xattr." + x.getKey(), x.getValue());
            }
        }
        w.writeHeader(e);
        if (inode.type == Type.FILE && e.size > 0) {
            CountingOut counted = new CountingOut(w);
            inode.content.copyTo(counted);
            if (counted.count != e.size) {
                throw new IOException(path + ": content has " + counted.count + " bytes, expected " + e.size);
            }
            w.pad(e.size);
        }
        if (inode.isDir()) {
            for (Map.Entry<String, Inode> c : inode.children.entrySet()) {
                emit(w, c.getValue(), path.isEmpty() ? c.getKey() : path + "/" + c.getKey(), clamp, skipXattr,
                        firstPath);
            }
        }
    }

    private static final class CountingOut extends OutputStream {
        private final TreeNormalizerTar.Writer w;
        long count;

        CountingOut(TreeNormalizerTar.Writer w) {
            this.w = w;
        }

        @Override
        public void write(int b) throws IOException {
            w.write(new byte[] {(byte) b});
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            w.write(b, off, len);
            count += len;
        }
    }
}
