package org.vbake.bake;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.image.ResolvedImage;

/**
 * Replays an image's layers as overlayfs would stack them, but only for the few paths that hold
 * package databases and os-release, so the final state of those files is known without unpacking
 * the image.
 */
final class PackagesScanner {

    static final String DPKG_STATUS = "var/lib/dpkg/status";
    static final String DPKG_STATUS_D = "var/lib/dpkg/status.d/";
    static final String APK_INSTALLED = "lib/apk/db/installed";
    /** Berkeley DB (older RHEL, CentOS), sqlite (RHEL 9, Fedora) and SUSE's ndb, in both homes rpm has had. */
    static final List<String> RPM_DATABASES = List.of(
            "usr/lib/sysimage/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db", "usr/lib/sysimage/rpm/rpmdb.sqlite",
            "var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite");
    /** SQLite's write-ahead logs beside the rpmdb.sqlite files, normally empty in an image. */
    static final List<String> RPM_SQLITE_LOGS = RPM_DATABASES.stream().filter(p -> p.endsWith(".sqlite"))
            .map(p -> p + "-wal").toList();
    static final String ETC_OS_RELEASE = "etc/os-release";
    static final String USR_OS_RELEASE = "usr/lib/os-release";

    /**
     * A real dpkg status is a few MB, a Fedora rpmdb.sqlite 5 to 30; anything far larger is not one
     * worth holding in memory.
     */
    static final long MAX_FILE_BYTES = 64L << 20;
    private static final int MAX_SYMLINK_HOPS = 8;

    private static final String NDB = "/Packages.db";
    private static final String WHITEOUT = ".wh.";
    private static final String OPAQUE = ".wh..wh..opq";

    /** What a tracked path holds: its bytes, a symlink, or a reason why it is present but was not read. */
    private record Tracked(byte[] stored, int length, String symlinkTarget, String unreadReason) {

        /**
         * Larger files are kept zstd-compressed: a bake holds what it recorded of every layer until
         * its listing is written, and each layer that installs rpm packages has a copy of the
         * database, tens of MB, that compresses several times over.
         */
        static final int COMPRESS_ABOVE = 1 << 20;

        static Tracked content(byte[] bytes) {
            return new Tracked(bytes.length > COMPRESS_ABOVE ? Zstd.compress(bytes, 3) : bytes, bytes.length, null, null);
        }

        static Tracked symlink(String target) {
            return new Tracked(null, 0, target, null);
        }

        static Tracked unread(String reason) {
            return new Tracked(null, 0, null, reason);
        }

        /** The file's bytes; null for a symlink or a file that was not read. */
        byte[] content() {
            if (stored == null) {
                return null;
            }
            return length > COMPRESS_ABOVE ? Zstd.decompress(stored, length) : stored;
        }
    }

    /** Tracked paths of the layers seen so far, sorted so that a directory's subtree is a range. */
    private final NavigableMap<String, Tracked> files = new TreeMap<>();

    private PackagesScanner() {
    }

    static Packages scan(ResolvedImage image) throws IOException {
        return scan(image, Map.of());
    }

    /**
     * As {@link #scan(ResolvedImage)}, using what was recorded of layers already read (by their
     * diff ID, see {@link Recorder}); only the others are read from their blobs.
     */
    static Packages scan(ResolvedImage image, Map<String, LayerOps> recorded) throws IOException {
        PackagesScanner scanner = new PackagesScanner();
        for (ResolvedImage.Layer layer : image.layers()) {
            try {
                LayerOps ops = recorded.get(layer.diffId().toString());
                scanner.apply(ops != null ? ops : read(layer.blob()));
            } catch (IOException | RuntimeException e) {
                throw new IOException("layer " + layer.digest() + " of " + image.source() + ": " + e.getMessage(), e);
            }
        }
        return scanner.result();
    }

    /** What one layer does to the tracked paths, in its order. */
    static final class LayerOps {
        private final List<Object[]> ops = new ArrayList<>();
    }

    /**
     * Records a layer's effect on the tracked paths from its entries, one at a time, as they are
     * read (by the host writer's single read of the layer, or from the blob here).
     */
    static final class Recorder {
        final LayerOps ops = new LayerOps();

        /**
         * @param type    'd' directory, 'f' regular file, 's' symlink, 'h' hardlink, 'o' anything else
         * @param content the file's bytes, read only for a tracked file
         */
        void entry(String name, char type, String linkname, long size, ContentReader content) throws IOException {
            String path = normalize(name);
            if (path.isEmpty()) {
                return;
            }
            int slash = path.lastIndexOf('/');
            String dir = slash < 0 ? "" : path.substring(0, slash + 1);
            String base = path.substring(slash + 1);
            if (base.equals(OPAQUE)) {
                ops.ops.add(new Object[] {"opaque", dir});
                return;
            }
            if (base.startsWith(WHITEOUT + WHITEOUT)) {
                return; // aufs bookkeeping (.wh..wh..plnk), not a file of the image
            }
            if (base.startsWith(WHITEOUT)) {
                ops.ops.add(new Object[] {"whiteout", dir + base.substring(WHITEOUT.length())});
                return;
            }
            if (type == 'd') {
                ops.ops.add(new Object[] {"dir", path});
                return;
            }
            ops.ops.add(new Object[] {"replace", path});
            if (!tracked(path)) {
                return;
            }
            switch (type) {
                case 's' -> ops.ops.add(new Object[] {"add", path, Tracked.symlink(linkname)});
                case 'h' -> ops.ops.add(new Object[] {"link", path, normalize(linkname)});
                case 'f' -> {
                    Tracked t;
                    if (path.endsWith(NDB)) {
                        t = Tracked.unread("ndb"); // noted, never read: only its presence is reported
                    } else if (size > MAX_FILE_BYTES) {
                        t = Tracked.unread("larger than " + (MAX_FILE_BYTES >> 20) + " MiB");
                    } else {
                        t = Tracked.content(content.read());
                    }
                    ops.ops.add(new Object[] {"add", path, t});
                }
                default -> ops.ops.add(new Object[] {"drop", path});
            }
        }
    }

    /** A tracked file's content, read when asked. */
    interface ContentReader {
        byte[] read() throws IOException;
    }

    private static LayerOps read(Path blob) throws IOException {
        Recorder r = new Recorder();
        try (InputStream in = decompressed(blob); TarArchiveInputStream tar = new TarArchiveInputStream(in)) {
            for (TarArchiveEntry e; (e = tar.getNextEntry()) != null; ) {
                char type = e.isDirectory() ? 'd' : e.isSymbolicLink() ? 's' : e.isLink() ? 'h' : e.isFile() ? 'f' : 'o';
                TarArchiveEntry entry = e;
                r.entry(e.getName(), type, e.getLinkName(), e.getSize(), () -> {
                    byte[] bytes = tar.readNBytes((int) entry.getSize());
                    if (bytes.length != entry.getSize()) {
                        throw new IOException("truncated tar: " + entry.getName() + " ends early");
                    }
                    return bytes;
                });
            }
        }
        return r.ops;
    }

    /** Whiteouts hide only what lower layers hold, so a layer's own files are kept apart until its end. */
    private void apply(LayerOps layer) {
        Map<String, Tracked> added = new HashMap<>();
        for (Object[] op : layer.ops) {
            String path = (String) op[1];
            switch ((String) op[0]) {
                case "opaque" -> removeUnder(path);
                case "whiteout" -> removePathAndUnder(path);
                case "dir" -> {
                    // A directory merges with a lower one, but replaces a lower file of that name.
                    files.remove(path);
                    added.remove(path);
                }
                case "replace" -> removePathAndUnder(path);
                case "add" -> added.put(path, (Tracked) op[2]);
                case "link" -> {
                    String target = (String) op[2];
                    Tracked t = added.containsKey(target) ? added.get(target) : files.get(target);
                    added.put(path, t != null ? t : Tracked.unread("a hard link to " + target + ", which was not read"));
                }
                case "drop" -> added.remove(path);
                default -> throw new IllegalStateException((String) op[0]);
            }
        }
        files.putAll(added);
    }

    static boolean tracked(String path) {
        if (path.startsWith(DPKG_STATUS_D)) {
            return path.length() > DPKG_STATUS_D.length() && path.indexOf('/', DPKG_STATUS_D.length()) < 0;
        }
        return path.equals(DPKG_STATUS) || path.equals(APK_INSTALLED) || path.equals(ETC_OS_RELEASE)
                || path.equals(USR_OS_RELEASE) || RPM_DATABASES.contains(path) || RPM_SQLITE_LOGS.contains(path);
    }

    private void removePathAndUnder(String path) {
        files.remove(path);
        removeUnder(path + "/");
    }

    /** Removes everything below {@code dir} (which ends with '/', or is "" for the root). */
    private void removeUnder(String dir) {
        if (dir.isEmpty()) {
            files.clear();
        } else {
            // '0' is the character after '/', so this is exactly the keys starting with dir.
            files.subMap(dir, true, dir.substring(0, dir.length() - 1) + '0', false).clear();
        }
    }

    /** {@code ./var/lib/}, {@code /var/lib} and {@code var//lib} all name {@code var/lib}. */
    static String normalize(String name) {
        return org.vbake.image.TarPaths.normalize(name);
    }

    /** Follows symlinks among tracked paths; null when the path, or what it points at, is absent or untracked. */
    private Tracked resolve(String path) {
        Tracked t = files.get(path);
        for (int hops = 0; t != null && t.symlinkTarget() != null; hops++) {
            if (hops == MAX_SYMLINK_HOPS) {
                return null;
            }
            String target = t.symlinkTarget();
            int slash = path.lastIndexOf('/');
            path = normalize(target.startsWith("/") || slash < 0 ? target : path.substring(0, slash + 1) + target);
            t = files.get(path);
        }
        return t;
    }

    private Packages result() {
        List<Package> packages = new ArrayList<>();
        List<String> notes = new ArrayList<>();
        boolean database = false;

        Tracked status = resolve(DPKG_STATUS);
        if (status != null) {
            database = true;
            if (readable(DPKG_STATUS, status, notes)) {
                packages.addAll(PackagesDatabases.dpkg(text(status), true));
            }
        }
        for (String path : files.subMap(DPKG_STATUS_D, true, "var/lib/dpkg/status.d0", false).keySet()) {
            if (path.endsWith(".md5sums")) {
                continue; // distroless keeps each package's md5sums next to its control file
            }
            Tracked t = resolve(path);
            if (t != null) {
                database = true;
                if (readable(path, t, notes)) {
                    packages.addAll(PackagesDatabases.dpkg(text(t), false));
                }
            }
        }
        Tracked apk = resolve(APK_INSTALLED);
        if (apk != null) {
            database = true;
            if (readable(APK_INSTALLED, apk, notes)) {
                packages.addAll(PackagesDatabases.apk(text(apk)));
            }
        }
        // Every rpm database present is read; one image seldom has two, and the same package in
        // both is listed once.
        for (String rpm : RPM_DATABASES) {
            Tracked t = resolve(rpm);
            if (t == null) {
                continue;
            }
            database = true;
            if (rpm.endsWith(NDB)) {
                notes.add("rpm database present, not read: /" + rpm + " (SUSE's ndb format)");
            } else if (readable(rpm, t, notes)) {
                RpmDatabases.Result r;
                if (rpm.endsWith(".sqlite")) {
                    Tracked wal = resolve(rpm + "-wal");
                    if (wal != null && wal.stored() == null) {
                        notes.add("/" + rpm + "-wal not read: " + wal.unreadReason());
                    }
                    r = RpmDatabases.sqlite("/" + rpm, t.content(), wal != null ? wal.content() : null);
                } else {
                    r = RpmDatabases.berkeleyDb("/" + rpm, t.content());
                }
                packages.addAll(r.packages());
                notes.addAll(r.notes());
            }
        }
        if (!database) {
            notes.add("no package database found (dpkg, apk or rpm)");
        }

        Tracked osRelease = resolve(ETC_OS_RELEASE);
        if (osRelease == null) {
            osRelease = resolve(USR_OS_RELEASE);
        }
        Distro distro = osRelease != null && osRelease.stored() != null
                ? PackagesDatabases.osRelease(text(osRelease)) : null;

        return new Packages(packages.stream().sorted(Packages.ORDER).distinct().toList(), notes, distro);
    }

    private static boolean readable(String path, Tracked t, List<String> notes) {
        if (t.stored() == null) {
            notes.add("/" + path + " not read: " + t.unreadReason());
            return false;
        }
        return true;
    }

    private static String text(Tracked t) {
        return new String(t.content(), StandardCharsets.UTF_8);
    }

    /** The tar inside a layer blob, by its magic: gzip, zstd, or plain. */
    private static InputStream decompressed(Path blob) throws IOException {
        InputStream raw = new BufferedInputStream(Files.newInputStream(blob), 1 << 16);
        try {
            raw.mark(4);
            byte[] head = raw.readNBytes(4);
            raw.reset();
            if (head.length >= 2 && (head[0] & 0xff) == 0x1f && (head[1] & 0xff) == 0x8b) {
                return new GZIPInputStream(raw, 1 << 16);
            }
            if (head.length == 4 && (head[0] & 0xff) == 0x28 && (head[1] & 0xff) == 0xb5 && (head[2] & 0xff) == 0x2f
                    && (head[3] & 0xff) == 0xfd) {
                return new ZstdInputStream(raw);
            }
            return raw;
        } catch (IOException | RuntimeException e) {
            raw.close();
            throw e;
        }
    }
}
