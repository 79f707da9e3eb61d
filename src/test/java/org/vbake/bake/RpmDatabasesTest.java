package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.bake.Packages.Package;
import org.vbake.bake.RpmDatabases.MalformedException;
import org.vbake.bake.RpmDatabases.Result;

/**
 * rpm headers and database files as an image may hold them, hostile ones included: whatever the
 * bytes, a header is read or skipped with a reason, and a database gives packages and notes.
 */
class RpmDatabasesTest {

    @TempDir
    Path tmp;

    /** Builds a header blob as rpm stores it: il, dl, index entries, data. */
    private static final class HeaderBuilder {
        private final List<int[]> index = new ArrayList<>();
        private final ByteArrayOutputStream data = new ByteArrayOutputStream();

        HeaderBuilder string(int tag, String value) {
            index.add(new int[] {tag, RpmDatabases.TYPE_STRING, data.size(), 1});
            data.writeBytes(value.getBytes(StandardCharsets.UTF_8));
            data.write(0);
            return this;
        }

        HeaderBuilder int32(int tag, int value) {
            while (data.size() % 4 != 0) {
                data.write(0);
            }
            index.add(new int[] {tag, RpmDatabases.TYPE_INT32, data.size(), 1});
            data.writeBytes(ByteBuffer.allocate(4).putInt(value).array());
            return this;
        }

        HeaderBuilder entry(int tag, int type, int offset, int count) {
            index.add(new int[] {tag, type, offset, count});
            return this;
        }

        byte[] build() {
            ByteBuffer b = ByteBuffer.allocate(8 + 16 * index.size() + data.size());
            b.putInt(index.size()).putInt(data.size());
            for (int[] e : index) {
                for (int v : e) {
                    b.putInt(v);
                }
            }
            b.put(data.toByteArray());
            return b.array();
        }
    }

    private static HeaderBuilder bash() {
        return new HeaderBuilder()
                .string(RpmDatabases.TAG_NAME, "bash")
                .string(RpmDatabases.TAG_VERSION, "5.2.26")
                .string(RpmDatabases.TAG_RELEASE, "3.fc40")
                .string(RpmDatabases.TAG_ARCH, "x86_64")
                .string(RpmDatabases.TAG_LICENSE, "GPL-3.0-or-later")
                .string(RpmDatabases.TAG_SOURCERPM, "bash-5.2.26-3.fc40.src.rpm");
    }

    private static final Package BASH = new Package("rpm", "bash", "5.2.26-3.fc40", "x86_64", "bash",
            "GPL-3.0-or-later");

    @Test
    void headerGivesNameEvrArchSourceAndLicense() throws Exception {
        assertThat(RpmDatabases.header(bash().build())).isEqualTo(BASH);
        assertThat(RpmDatabases.header(bash().int32(RpmDatabases.TAG_EPOCH, 1).build()).version())
                .isEqualTo("1:5.2.26-3.fc40");
    }

    @Test
    void optionalTagsMayBeMissing() throws Exception {
        byte[] blob = new HeaderBuilder().string(RpmDatabases.TAG_NAME, "odd").build();

        assertThat(RpmDatabases.header(blob)).isEqualTo(new Package("rpm", "odd", null, null, null, null));
    }

    @Test
    void gpgPubkeyEntriesAreNoPackages() throws Exception {
        byte[] key = new HeaderBuilder().string(RpmDatabases.TAG_NAME, "gpg-pubkey")
                .string(RpmDatabases.TAG_VERSION, "a15b79cc").string(RpmDatabases.TAG_RELEASE, "63d04c2c").build();

        assertThat(RpmDatabases.header(key)).isNull();
    }

    @Test
    void sourceNameFromSourceRpm() {
        assertThat(RpmDatabases.sourceName("openssl-3.0.7-27.el9.src.rpm")).isEqualTo("openssl");
        assertThat(RpmDatabases.sourceName("python-pip-23.3.2-1.fc40.nosrc.rpm")).isEqualTo("python-pip");
        assertThat(RpmDatabases.sourceName("broken.src.rpm")).isNull();
        assertThat(RpmDatabases.sourceName("(none)")).isNull();
    }

    @Test
    void truncatedHeaderIsMalformed() {
        byte[] blob = bash().build();

        assertThatThrownBy(() -> RpmDatabases.header(Arrays.copyOf(blob, blob.length - 1)))
                .isInstanceOf(MalformedException.class)
                .hasMessageContaining("does not fit in " + (blob.length - 1) + " bytes");
        assertThatThrownBy(() -> RpmDatabases.header(new byte[5]))
                .hasMessage("header of 5 bytes, shorter than its 8-byte preamble");
    }

    @Test
    void hugeCountsAreRefusedBeforeAnythingIsAllocated() {
        byte[] hugeIndex = ByteBuffer.allocate(64).putInt(0x7fffffff).putInt(16).array();
        byte[] negativeIndex = ByteBuffer.allocate(64).putInt(-1).putInt(16).array();
        byte[] hugeData = ByteBuffer.allocate(64).putInt(1).putInt(0x7fffffff).array();
        byte[] noIndex = ByteBuffer.allocate(64).putInt(0).putInt(16).array();

        assertThatThrownBy(() -> RpmDatabases.header(hugeIndex)).hasMessage("header index count 2147483647 out of range");
        assertThatThrownBy(() -> RpmDatabases.header(negativeIndex)).hasMessage("header index count 4294967295 out of range");
        assertThatThrownBy(() -> RpmDatabases.header(hugeData)).hasMessage("header data length 2147483647 out of range");
        assertThatThrownBy(() -> RpmDatabases.header(noIndex)).hasMessage("header index count 0 out of range");
        // Fits rpm's limits but not the blob.
        byte[] lying = ByteBuffer.allocate(64).putInt(0xffff).putInt(0x0fffffff).array();
        assertThatThrownBy(() -> RpmDatabases.header(lying)).hasMessageContaining("does not fit in 64 bytes");
    }

    @Test
    void offsetsOutsideTheDataAreMalformed() {
        byte[] past = new HeaderBuilder().entry(RpmDatabases.TAG_NAME, RpmDatabases.TYPE_STRING, 4096, 1)
                .string(RpmDatabases.TAG_VERSION, "1").build();
        byte[] negative = new HeaderBuilder().entry(RpmDatabases.TAG_NAME, RpmDatabases.TYPE_STRING, -8, 1)
                .string(RpmDatabases.TAG_VERSION, "1").build();

        assertThatThrownBy(() -> RpmDatabases.header(past)).hasMessage("tag 1000 at offset 4096, outside the 2 data bytes");
        assertThatThrownBy(() -> RpmDatabases.header(negative)).hasMessage("tag 1000 at offset -8, outside the 2 data bytes");
    }

    @Test
    void unterminatedStringAndMistypedTagsAreMalformed() {
        byte[] blob = new HeaderBuilder().string(RpmDatabases.TAG_NAME, "bash").build();
        blob[blob.length - 1] = 'x'; // the name's NUL
        byte[] epochAsString = bash().string(RpmDatabases.TAG_EPOCH, "1").build();
        byte[] nameAsInt = new HeaderBuilder().int32(RpmDatabases.TAG_NAME, 7).build();
        byte[] epochAtTheEnd = new HeaderBuilder().string(RpmDatabases.TAG_NAME, "a")
                .entry(RpmDatabases.TAG_EPOCH, RpmDatabases.TYPE_INT32, 1, 1).build();

        assertThatThrownBy(() -> RpmDatabases.header(blob)).hasMessage("string of tag 1000 runs past the header's data");
        assertThatThrownBy(() -> RpmDatabases.header(epochAsString))
                .hasMessage("tag 1003 has type 6 and count 1, not an int32");
        assertThatThrownBy(() -> RpmDatabases.header(nameAsInt)).hasMessage("tag 1000 has type 4, not a string");
        assertThatThrownBy(() -> RpmDatabases.header(epochAtTheEnd))
                .hasMessage("int32 of tag 1003 runs past the header's data");
    }

    /** Random damage to a good header: read or refused, never an unchecked exception. */
    @Test
    void damagedHeadersNeverThrowUnchecked() {
        byte[] good = bash().int32(RpmDatabases.TAG_EPOCH, 3).build();
        Random random = new Random(13);
        int read = 0;
        for (int round = 0; round < 20_000; round++) {
            byte[] blob = round % 5 == 0 ? Arrays.copyOf(good, random.nextInt(good.length)) : good.clone();
            for (int flips = 1 + random.nextInt(4); flips > 0 && blob.length > 0; flips--) {
                blob[random.nextInt(blob.length)] = (byte) random.nextInt(256);
            }
            try {
                RpmDatabases.header(blob);
                read++;
            } catch (MalformedException e) {
                assertThat(e.getMessage()).isNotBlank();
            }
        }
        assertThat(read).isPositive();
    }

    private Path sqlite(String... statements) throws Exception {
        Path db = Files.createTempFile(tmp, "rpmdb", ".sqlite");
        Files.delete(db);
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db); Statement s = c.createStatement()) {
            for (String sql : statements) {
                s.execute(sql);
            }
        }
        return db;
    }

    @Test
    void sqliteRowsThatAreNoHeadersAreSkippedWithANote() throws Exception {
        Path db = sqlite("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)");
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db);
                PreparedStatement insert = c.prepareStatement("INSERT INTO Packages (hnum, blob) VALUES (?, ?)")) {
            for (Object[] row : List.of(new Object[] {1, bash().build()}, new Object[] {2, new byte[3]},
                    new Object[] {3, "text, not a header"})) {
                insert.setInt(1, (Integer) row[0]);
                insert.setObject(2, row[1]);
                insert.executeUpdate();
            }
        }

        Result r = RpmDatabases.sqlite("/var/lib/rpm/rpmdb.sqlite", Files.readAllBytes(db), null);

        assertThat(r.packages()).containsExactly(BASH);
        assertThat(r.notes()).containsExactly(
                "/var/lib/rpm/rpmdb.sqlite: package 2 skipped: header of 3 bytes, shorter than its 8-byte preamble",
                "/var/lib/rpm/rpmdb.sqlite: package 3 skipped: header index count 1952807028 out of range");
    }

    @Test
    void sqliteWithoutAPackagesTableIsNotRead() throws Exception {
        Path none = sqlite("CREATE TABLE Other (x)");
        // A view could compute rows without end; only a table is read.
        Path view = sqlite("CREATE VIEW Packages AS WITH RECURSIVE n(hnum) AS (SELECT 1 UNION ALL SELECT hnum + 1 "
                + "FROM n) SELECT hnum, zeroblob(1000) AS blob FROM n");

        assertThat(RpmDatabases.sqlite("/db", Files.readAllBytes(none), null).notes())
                .containsExactly("/db not read: no Packages table");
        assertThat(RpmDatabases.sqlite("/db", Files.readAllBytes(view), null).notes())
                .containsExactly("/db not read: no Packages table");
    }

    @Test
    void bytesThatAreNoSqliteDatabaseGiveANote() {
        Result garbage = RpmDatabases.sqlite("/db", "SQLite format 3\0 and then nothing".getBytes(StandardCharsets.UTF_8),
                null);
        Result empty = RpmDatabases.sqlite("/db", new byte[0], null);

        assertThat(garbage.packages()).isEmpty();
        assertThat(garbage.notes()).singleElement().asString().startsWith("/db not read: SQLite: ");
        assertThat(empty.notes()).singleElement().asString().startsWith("/db not read: ");
    }

    @Test
    void sqliteCopyIsRemovedAfterReading() throws Exception {
        Path db = sqlite("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB)");
        Path privateTmp = Files.createDirectories(tmp.resolve("java-tmp"));
        String before = System.getProperty("java.io.tmpdir");
        System.setProperty("java.io.tmpdir", privateTmp.toString());
        try {
            RpmDatabases.sqlite("/db", Files.readAllBytes(db), new byte[0]);
        } finally {
            System.setProperty("java.io.tmpdir", before);
        }
        try (var left = Files.list(privateTmp)) {
            assertThat(left.filter(p -> p.getFileName().toString().startsWith("vbake-rpmdb"))).isEmpty();
        }
    }

    /**
     * A small Berkeley DB hash file laid out by hand, so that each field can be broken: page 0 the
     * metadata, page 1 a hash page with rpm's record 0 and one inline header, page 2 a hash page
     * whose header is on overflow pages 3 and 4.
     */
    private static byte[] bdb(ByteOrder order, byte[] inline, byte[] overflow) {
        int pageSize = 512;
        ByteBuffer b = ByteBuffer.allocate(5 * pageSize).order(order);
        b.putInt(12, 0x061561).putInt(20, pageSize).put(25, (byte) 8).putInt(32, 4);

        int p1 = pageSize;
        byte[] key0 = {1, 0, 0, 0, 0};
        byte[] counter = {1, 2, 0, 0, 0};
        byte[] key1 = {1, 1, 0, 0, 0};
        byte[] value1 = new byte[inline.length + 1];
        value1[0] = 1;
        System.arraycopy(inline, 0, value1, 1, inline.length);
        int end = pageSize;
        int i = 0;
        for (byte[] item : List.of(key0, counter, key1, value1)) {
            end -= item.length;
            b.put(p1 + end, item);
            b.putShort(p1 + 26 + 2 * i++, (short) end);
        }
        b.putShort(p1 + 20, (short) 4).put(p1 + 25, (byte) 13);

        int p2 = 2 * pageSize;
        byte[] key2 = {1, 2, 0, 0, 0};
        ByteBuffer off = ByteBuffer.allocate(12).order(order).put((byte) 3).position(4).putInt(3)
                .putInt(overflow.length);
        b.put(p2 + pageSize - 5, key2).putShort(p2 + 26, (short) (pageSize - 5));
        b.put(p2 + pageSize - 17, off.array()).putShort(p2 + 28, (short) (pageSize - 17));
        b.putShort(p2 + 20, (short) 2).put(p2 + 25, (byte) 13);

        int room = pageSize - 26;
        for (int page = 3, at = 0; page <= 4; page++) {
            int base = page * pageSize;
            int n = Math.min(room, overflow.length - at);
            b.put(base + 26, overflow, at, n).putShort(base + 22, (short) n).put(base + 25, (byte) 7)
                    .putInt(base + 16, page == 3 ? 4 : 0);
            at += n;
        }
        return b.array();
    }

    private static final Package BIG = new Package("rpm", "big", "1-1", "noarch", null, "x".repeat(600));

    private static byte[] bigHeader() {
        return new HeaderBuilder().string(RpmDatabases.TAG_NAME, "big").string(RpmDatabases.TAG_VERSION, "1")
                .string(RpmDatabases.TAG_RELEASE, "1").string(RpmDatabases.TAG_ARCH, "noarch")
                .string(RpmDatabases.TAG_LICENSE, "x".repeat(600)).build();
    }

    @Test
    void berkeleyDbInlineAndOverflowRecordsInEitherByteOrder() {
        byte[] small = bash().build();
        assertThat(bigHeader().length).isEqualTo(704).isBetween(512 - 26 + 1, 2 * (512 - 26));

        for (ByteOrder order : List.of(ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN)) {
            Result r = RpmDatabases.berkeleyDb("/Packages", bdb(order, small, bigHeader()));

            assertThat(r.packages()).as(order.toString()).containsExactly(BASH, BIG);
            assertThat(r.notes()).as(order.toString()).isEmpty();
        }
    }

    @Test
    void berkeleyDbThatIsNotOneIsNotRead() {
        byte[] good = bdb(ByteOrder.LITTLE_ENDIAN, bash().build(), bigHeader());
        byte[] btree = good.clone();
        btree[12] = 0x62; // btree magic 0x053162
        btree[13] = 0x31;
        btree[14] = 0x05;
        byte[] encrypted = good.clone();
        encrypted[24] = 1;
        byte[] checksummed = good.clone();
        checksummed[26] = 1;
        byte[] oddPages = good.clone();
        ByteBuffer.wrap(oddPages).order(ByteOrder.LITTLE_ENDIAN).putInt(20, 1000);

        assertThat(RpmDatabases.berkeleyDb("/P", new byte[100]).notes())
                .containsExactly("/P not read: Berkeley DB: 100 bytes, shorter than a page");
        assertThat(RpmDatabases.berkeleyDb("/P", btree).notes())
                .containsExactly("/P not read: not a Berkeley DB hash database");
        assertThat(RpmDatabases.berkeleyDb("/P", encrypted).notes()).containsExactly("/P not read: Berkeley DB: encrypted");
        assertThat(RpmDatabases.berkeleyDb("/P", checksummed).notes())
                .containsExactly("/P not read: Berkeley DB: pages with checksums are not supported");
        assertThat(RpmDatabases.berkeleyDb("/P", oddPages).notes())
                .containsExactly("/P not read: Berkeley DB: page size 1000 out of range");
    }

    @Test
    void brokenOverflowChainsAndItemOffsetsSkipTheirRecordOnly() {
        ByteOrder le = ByteOrder.LITTLE_ENDIAN;
        // An empty page linked to itself: the walk ends after as many hops as the file has pages.
        byte[] loop = bdb(le, bash().build(), bigHeader());
        ByteBuffer.wrap(loop).order(le).putInt(4 * 512 + 16, 4).putShort(4 * 512 + 22, (short) 0);
        // Back to the first page: it would give more bytes than the value has.
        byte[] back = bdb(le, bash().build(), bigHeader());
        ByteBuffer.wrap(back).order(le).putInt(4 * 512 + 16, 3).putShort(4 * 512 + 22, (short) 0);
        byte[] wrongType = bdb(le, bash().build(), bigHeader());
        wrongType[4 * 512 + 25] = 13;
        byte[] pastEnd = bdb(le, bash().build(), bigHeader());
        ByteBuffer.wrap(pastEnd).order(le).putInt(3 * 512 + 16, 999);
        byte[] lengthTooLong = bdb(le, bash().build(), bigHeader());
        ByteBuffer.wrap(lengthTooLong).order(le).putInt(2 * 512 + 512 - 17 + 8, 0x7fffffff);
        byte[] itemOffset = bdb(le, bash().build(), bigHeader());
        ByteBuffer.wrap(itemOffset).order(le).putShort(512 + 26 + 6, (short) 600);
        byte[] truncated = Arrays.copyOf(bdb(le, bash().build(), bigHeader()), 4 * 512);

        assertThat(RpmDatabases.berkeleyDb("/P", loop)).isEqualTo(new Result(List.of(BASH),
                List.of("/P: page 2 item 0 skipped: overflow chain broken at page 4 after 486 of 704 bytes")));
        assertThat(RpmDatabases.berkeleyDb("/P", back).notes())
                .containsExactly("/P: page 2 item 0 skipped: overflow page 3 says it holds 486 bytes");
        assertThat(RpmDatabases.berkeleyDb("/P", wrongType).notes())
                .containsExactly("/P: page 2 item 0 skipped: overflow chain reaches page 4 of type 13");
        assertThat(RpmDatabases.berkeleyDb("/P", pastEnd).notes())
                .containsExactly("/P: page 2 item 0 skipped: overflow chain broken at page 999 after 486 of 704 bytes");
        assertThat(RpmDatabases.berkeleyDb("/P", lengthTooLong).notes()).containsExactly(
                "/P: page 2 item 0 skipped: overflow value of 2147483647 bytes, more than the file's pages hold");
        assertThat(RpmDatabases.berkeleyDb("/P", itemOffset).packages()).containsExactly(BIG);
        assertThat(RpmDatabases.berkeleyDb("/P", itemOffset).notes()).singleElement().asString()
                .startsWith("/P: page 1 item 1 skipped: item at 600..");
        assertThat(RpmDatabases.berkeleyDb("/P", truncated)).isEqualTo(new Result(List.of(BASH), List.of(
                "/P: Berkeley DB: 5 pages announced, 4 present",
                "/P: page 2 item 0 skipped: overflow chain broken at page 4 after 486 of 704 bytes")));
    }

    /** Random damage to a Berkeley DB file: packages and notes, never an unchecked exception. */
    @Test
    void damagedBerkeleyDbNeverThrowsUnchecked() {
        byte[] good = bdb(ByteOrder.LITTLE_ENDIAN, bash().build(), bigHeader());
        Random random = new Random(7);
        for (int round = 0; round < 20_000; round++) {
            byte[] db = round % 7 == 0 ? Arrays.copyOf(good, random.nextInt(good.length)) : good.clone();
            for (int flips = 1 + random.nextInt(6); flips > 0 && db.length > 0; flips--) {
                // Mostly the headers and index arrays, where the structure is.
                int at = random.nextBoolean() ? random.nextInt(db.length)
                        : (random.nextInt(5) * 512 + random.nextInt(40)) % db.length;
                db[at] = (byte) random.nextInt(256);
            }
            Result r = RpmDatabases.berkeleyDb("/P", db);
            assertThat(r.notes().size()).isLessThanOrEqualTo(RpmDatabases.MAX_SKIP_NOTES + 2);
        }
    }
}
