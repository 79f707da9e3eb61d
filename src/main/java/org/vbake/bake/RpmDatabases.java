package org.vbake.bake;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.sqlite.SQLiteConfig;
import org.sqlite.SQLiteOpenMode;
import org.vbake.bake.Packages.Package;

/**
 * Reads the installed packages out of rpm's databases: SQLite ({@code rpmdb.sqlite}, rpm 4.16 and
 * later: Fedora, RHEL 9, UBI 9) and Berkeley DB hash ({@code Packages}: RHEL/CentOS 5 to 8). Both
 * hold one rpm header per package. The files come from images, so nothing in them is trusted:
 * every count, offset and length is checked against what is there before it is used, a header
 * that does not add up is skipped with a note, and nothing here throws for bad input.
 */
final class RpmDatabases {

    /** What one database gave: its packages, and notes on what was skipped or not read. */
    record Result(List<Package> packages, List<String> notes) {

        Result {
            packages = List.copyOf(packages);
            notes = List.copyOf(notes);
        }

        static Result unread(String path, String reason) {
            return new Result(List.of(), List.of(path + " not read: " + reason));
        }
    }

    static final int TAG_NAME = 1000;
    static final int TAG_VERSION = 1001;
    static final int TAG_RELEASE = 1002;
    static final int TAG_EPOCH = 1003;
    static final int TAG_LICENSE = 1014;
    static final int TAG_ARCH = 1022;
    static final int TAG_SOURCERPM = 1044;

    static final int TYPE_INT32 = 4;
    static final int TYPE_STRING = 6;
    static final int TYPE_STRING_ARRAY = 8;
    static final int TYPE_I18NSTRING = 9;

    /** rpm's own limits on a header it will load (HEADER_TAGS_MAX, HEADER_DATA_MAX in header.c). */
    static final long MAX_INDEX_ENTRIES = 0xffff;
    static final long MAX_DATA_BYTES = 0x0fffffff;
    /** Past this many, skipped headers are counted rather than each named. */
    static final int MAX_SKIP_NOTES = 5;

    /** Berkeley DB's on-disk constants (db_page.h): hash magic, page types, item types. */
    private static final int BDB_HASH_MAGIC = 0x061561;
    private static final int BDB_PAGE_HEADER = 26;
    private static final int BDB_HASH_META = 8;
    private static final int BDB_HASH_UNSORTED = 2;
    private static final int BDB_HASH = 13;
    private static final int BDB_OVERFLOW = 7;
    private static final int BDB_ITEM_KEYDATA = 1;
    private static final int BDB_ITEM_OFFPAGE = 3;
    private static final int BDB_META_CHECKSUM = 0x01;

    private RpmDatabases() {
    }

    /** Why a header, or a record holding one, was skipped. */
    static final class MalformedException extends Exception {
        private static final long serialVersionUID = 1L;

        MalformedException(String message) {
            super(message);
        }
    }

    /**
     * The package one header describes, or null for the {@code gpg-pubkey} entries rpm keeps for
     * imported signing keys (they are no packages).
     *
     * @param blob a header as rpm stores it in its database: index count and data length (both
     *             big-endian int32), the index entries, then the data; no leading magic
     */
    static Package header(byte[] blob) throws MalformedException {
        if (blob.length < 8) {
            throw new MalformedException("header of " + blob.length + " bytes, shorter than its 8-byte preamble");
        }
        ByteBuffer b = ByteBuffer.wrap(blob);
        long il = Integer.toUnsignedLong(b.getInt(0));
        long dl = Integer.toUnsignedLong(b.getInt(4));
        if (il == 0 || il > MAX_INDEX_ENTRIES) {
            throw new MalformedException("header index count " + il + " out of range");
        }
        if (dl > MAX_DATA_BYTES) {
            throw new MalformedException("header data length " + dl + " out of range");
        }
        long dataStart = 8 + 16 * il;
        if (dataStart + dl > blob.length) {
            throw new MalformedException("header of " + il + " entries and " + dl + " data bytes does not fit in "
                    + blob.length + " bytes");
        }
        Header h = new Header(b, (int) dataStart, (int) dl);
        int[] name = null;
        int[] version = null;
        int[] release = null;
        int[] epoch = null;
        int[] license = null;
        int[] arch = null;
        int[] sourceRpm = null;
        for (int i = 0; i < il; i++) {
            int at = 8 + 16 * i;
            int[] e = {b.getInt(at), b.getInt(at + 4), b.getInt(at + 8), b.getInt(at + 12)};
            // The first entry of a tag wins; rpm never writes one twice outside a region trailer.
            switch (e[0]) {
                case TAG_NAME -> name = name != null ? name : e;
                case TAG_VERSION -> version = version != null ? version : e;
                case TAG_RELEASE -> release = release != null ? release : e;
                case TAG_EPOCH -> epoch = epoch != null ? epoch : e;
                case TAG_LICENSE -> license = license != null ? license : e;
                case TAG_ARCH -> arch = arch != null ? arch : e;
                case TAG_SOURCERPM -> sourceRpm = sourceRpm != null ? sourceRpm : e;
                default -> {
                    // not needed for the listing
                }
            }
        }
        String n = h.string(name);
        if (n == null || n.isEmpty()) {
            throw new MalformedException("header without a package name");
        }
        if (n.equals("gpg-pubkey")) {
            return null;
        }
        String v = h.string(version);
        String r = h.string(release);
        Long e = h.int32(epoch);
        String evr = v == null ? null : (e != null ? e + ":" : "") + v + (r != null ? "-" + r : "");
        return new Package(Packages.RPM, n, evr, h.string(arch), sourceName(h.string(sourceRpm)), h.string(license));
    }

    /** A header's index and data, with reads that check every entry against the data length. */
    private record Header(ByteBuffer blob, int dataStart, int dataLength) {

        /** The first string of a STRING, I18NSTRING or STRING_ARRAY entry; null when the tag is absent. */
        String string(int[] entry) throws MalformedException {
            if (entry == null) {
                return null;
            }
            int type = entry[1];
            if (type != TYPE_STRING && type != TYPE_I18NSTRING && type != TYPE_STRING_ARRAY) {
                throw new MalformedException("tag " + entry[0] + " has type " + type + ", not a string");
            }
            int start = offset(entry);
            int end = dataStart + dataLength;
            for (int i = dataStart + start; i < end; i++) {
                if (blob.get(i) == 0) {
                    return new String(blob.array(), dataStart + start, i - dataStart - start, StandardCharsets.UTF_8);
                }
            }
            throw new MalformedException("string of tag " + entry[0] + " runs past the header's data");
        }

        /** The first value of an INT32 entry, unsigned; null when the tag is absent. */
        Long int32(int[] entry) throws MalformedException {
            if (entry == null) {
                return null;
            }
            if (entry[1] != TYPE_INT32 || entry[3] < 1) {
                throw new MalformedException("tag " + entry[0] + " has type " + entry[1] + " and count "
                        + Integer.toUnsignedString(entry[3]) + ", not an int32");
            }
            int start = offset(entry);
            if ((long) start + 4 > dataLength) {
                throw new MalformedException("int32 of tag " + entry[0] + " runs past the header's data");
            }
            return Integer.toUnsignedLong(blob.getInt(dataStart + start));
        }

        private int offset(int[] entry) throws MalformedException {
            if (entry[2] < 0 || entry[2] >= dataLength) {
                throw new MalformedException("tag " + entry[0] + " at offset " + entry[2] + ", outside the "
                        + dataLength + " data bytes");
            }
            return entry[2];
        }
    }

    /** {@code openssl-3.0.7-27.el9.src.rpm} names the source package {@code openssl}. */
    static String sourceName(String sourceRpm) {
        if (sourceRpm == null) {
            return null;
        }
        String s = sourceRpm.endsWith(".src.rpm") ? sourceRpm.substring(0, sourceRpm.length() - 8)
                : sourceRpm.endsWith(".nosrc.rpm") ? sourceRpm.substring(0, sourceRpm.length() - 10) : null;
        if (s == null) {
            return null;
        }
        int release = s.lastIndexOf('-');
        int version = release > 0 ? s.lastIndexOf('-', release - 1) : -1;
        return version > 0 ? s.substring(0, version) : null;
    }

    /** Collects the packages of one database, noting the first few headers it has to skip. */
    private static final class Collector {
        final String path;
        final List<Package> packages = new ArrayList<>();
        final List<String> notes = new ArrayList<>();
        int skipped;

        Collector(String path) {
            this.path = path;
        }

        void add(String record, byte[] blob) {
            try {
                Package p = header(blob);
                if (p != null) {
                    packages.add(p);
                }
            } catch (MalformedException e) {
                skip(record, e.getMessage());
            }
        }

        void skip(String record, String reason) {
            if (++skipped <= MAX_SKIP_NOTES) {
                notes.add(path + ": " + record + " skipped: " + reason);
            }
        }

        Result result() {
            if (skipped > MAX_SKIP_NOTES) {
                notes.add(path + ": " + (skipped - MAX_SKIP_NOTES) + " more records skipped");
            }
            return new Result(packages, notes);
        }
    }

    /**
     * The packages in an {@code rpmdb.sqlite} (table {@code Packages(hnum, blob)}).
     *
     * @param path the database's path in the image, for notes
     * @param db   its bytes
     * @param wal  its write-ahead log ({@code rpmdb.sqlite-wal}), or null: rpm checkpoints and
     *             empties it when it closes the database, but a log that still holds transactions
     *             is applied as SQLite would
     */
    static Result sqlite(String path, byte[] db, byte[] wal) {
        Path dir = null;
        try {
            // The library reads files only: a private directory, removed whatever happens.
            dir = Files.createTempDirectory("vbake-rpmdb");
            Path file = dir.resolve("rpmdb.sqlite");
            Files.write(file, db);
            boolean withLog = wal != null && wal.length > 0;
            if (withLog) {
                Files.write(dir.resolve("rpmdb.sqlite-wal"), wal);
            }
            return readSqlite(path, file, withLog);
        } catch (IOException | SQLException | RuntimeException | LinkageError e) {
            // LinkageError: the native library could not be loaded on this host.
            return Result.unread(path, "SQLite: " + String.valueOf(e.getMessage()).strip());
        } finally {
            if (dir != null) {
                deleteTree(dir);
            }
        }
    }

    private static Result readSqlite(String path, Path file, boolean withLog) throws SQLException {
        SQLiteConfig config = new SQLiteConfig();
        config.setReadOnly(true);
        config.setOpenMode(SQLiteOpenMode.OPEN_URI);
        // immutable: no locks, no -shm, nothing written beside the copy. A write-ahead log is only
        // looked at without it, and then SQLite needs the directory to put its -shm in.
        String uri = file.toUri() + (withLog ? "?mode=ro" : "?immutable=1");
        Collector c = new Collector(path);
        try (Connection connection = config.createConnection("jdbc:sqlite:" + uri);
                Statement s = connection.createStatement()) {
            // Hardening for an untrusted file (sqlite.org/security.html): no functions with side
            // effects from its schema, and b-tree cells checked against their page as they are read.
            s.execute("PRAGMA trusted_schema = OFF");
            s.execute("PRAGMA cell_size_check = ON");
            s.setQueryTimeout(60);
            try (ResultSet type = s.executeQuery("SELECT type FROM sqlite_master WHERE name = 'Packages'")) {
                if (!type.next() || !"table".equals(type.getString(1))) {
                    return Result.unread(path, "no Packages table");
                }
            }
            try (ResultSet rows = s.executeQuery("SELECT hnum, blob FROM Packages ORDER BY hnum")) {
                while (rows.next()) {
                    String record = "package " + rows.getString(1);
                    byte[] blob = rows.getBytes(2);
                    if (blob == null) {
                        c.skip(record, "no header");
                    } else {
                        c.add(record, blob);
                    }
                }
            }
        }
        return c.result();
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException | RuntimeException e) {
            // A leftover temporary copy is not worth failing the listing over.
        }
    }

    /**
     * The packages in a Berkeley DB hash database ({@code Packages}), read page by page without the
     * library: every key/data pair on a hash page is a record, its data inline or on a chain of
     * overflow pages; the record with key 0 is rpm's instance counter, not a header.
     */
    static Result berkeleyDb(String path, byte[] db) {
        if (db.length < 512) {
            return Result.unread(path, "Berkeley DB: " + db.length + " bytes, shorter than a page");
        }
        ByteBuffer b = ByteBuffer.wrap(db).order(ByteOrder.LITTLE_ENDIAN);
        if (b.getInt(12) != BDB_HASH_MAGIC) {
            b.order(ByteOrder.BIG_ENDIAN);
            if (b.getInt(12) != BDB_HASH_MAGIC) {
                return Result.unread(path, "not a Berkeley DB hash database");
            }
        }
        int pageSize = b.getInt(20);
        if (pageSize < 512 || pageSize > 65536 || Integer.bitCount(pageSize) != 1) {
            return Result.unread(path, "Berkeley DB: page size " + Integer.toUnsignedString(pageSize) + " out of range");
        }
        if (db[24] != 0) {
            return Result.unread(path, "Berkeley DB: encrypted");
        }
        if (db[25] != BDB_HASH_META) {
            return Result.unread(path, "Berkeley DB: page 0 is of type " + db[25] + ", not hash metadata");
        }
        if ((db[26] & BDB_META_CHECKSUM) != 0) {
            return Result.unread(path, "Berkeley DB: pages with checksums are not supported");
        }
        long lastPage = Integer.toUnsignedLong(b.getInt(32));
        int pages = (int) Math.min(lastPage + 1, db.length / pageSize);
        Collector c = new Collector(path);
        if (lastPage + 1 > pages) {
            c.notes.add(path + ": Berkeley DB: " + (lastPage + 1) + " pages announced, " + pages + " present");
        }
        Bdb reader = new Bdb(b, pageSize, pages);
        for (int page = 1; page < pages; page++) {
            int type = db[page * pageSize + 25];
            if (type == BDB_HASH || type == BDB_HASH_UNSORTED) {
                reader.hashPage(page, c);
            }
        }
        return c.result();
    }

    /** Reads the pages of one Berkeley DB file, in its byte order. */
    private record Bdb(ByteBuffer db, int pageSize, int pages) {

        private int u16(int at) {
            return Short.toUnsignedInt(db.getShort(at));
        }

        void hashPage(int page, Collector c) {
            int base = page * pageSize;
            int entries = u16(base + 20);
            int indexEnd = BDB_PAGE_HEADER + 2 * entries;
            if (entries % 2 != 0 || indexEnd > pageSize) {
                c.skip("page " + page, entries + " entries do not make key/data pairs on a page");
                return;
            }
            for (int i = 0; i < entries; i += 2) {
                String record = "page " + page + " item " + (i / 2);
                try {
                    byte[] key = item(base, i, indexEnd);
                    if (key.length == 5 && key[0] == BDB_ITEM_KEYDATA && key[1] == 0 && key[2] == 0 && key[3] == 0
                            && key[4] == 0) {
                        continue;
                    }
                    byte[] data = item(base, i + 1, indexEnd);
                    if (data[0] == BDB_ITEM_KEYDATA) {
                        c.add(record, java.util.Arrays.copyOfRange(data, 1, data.length));
                    } else if (data[0] == BDB_ITEM_OFFPAGE && data.length >= 12) {
                        ByteBuffer d = ByteBuffer.wrap(data).order(db.order());
                        c.add(record, overflow(d.getInt(4), d.getInt(8)));
                    } else {
                        throw new MalformedException("item of type " + data[0] + " (not inline or overflow data)");
                    }
                } catch (MalformedException e) {
                    c.skip(record, e.getMessage());
                }
            }
        }

        /** Item {@code i} of a hash page: from its offset up to the previous item's, or the page end. */
        private byte[] item(int base, int i, int indexEnd) throws MalformedException {
            int start = u16(base + BDB_PAGE_HEADER + 2 * i);
            int end = i == 0 ? pageSize : u16(base + BDB_PAGE_HEADER + 2 * (i - 1));
            if (start < indexEnd || start >= end || end > pageSize) {
                throw new MalformedException("item at " + start + ".." + end + " outside the page's items");
            }
            byte[] item = new byte[end - start];
            db.get(base + start, item);
            return item;
        }

        /** A value kept on a chain of overflow pages; {@code length} bytes in all. */
        private byte[] overflow(int firstPage, int length) throws MalformedException {
            long total = Integer.toUnsignedLong(length);
            long maxData = (long) (pages - 1) * (pageSize - BDB_PAGE_HEADER);
            if (total > maxData) {
                throw new MalformedException("overflow value of " + total + " bytes, more than the file's pages hold");
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream((int) Math.min(total, 1 << 20));
            long page = Integer.toUnsignedLong(firstPage);
            for (int hops = 0; out.size() < total; hops++) {
                if (page == 0 || page >= pages || hops >= pages) {
                    throw new MalformedException("overflow chain broken at page " + page + " after " + out.size()
                            + " of " + total + " bytes");
                }
                int base = (int) page * pageSize;
                if (db.get(base + 25) != BDB_OVERFLOW) {
                    throw new MalformedException("overflow chain reaches page " + page + " of type " + db.get(base + 25));
                }
                int used = u16(base + 22);
                if (used > pageSize - BDB_PAGE_HEADER || used > total - out.size()) {
                    throw new MalformedException("overflow page " + page + " says it holds " + used + " bytes");
                }
                out.write(db.array(), base + BDB_PAGE_HEADER, used);
                page = Integer.toUnsignedLong(db.getInt(base + 16));
            }
            return out.toByteArray();
        }
    }
}
