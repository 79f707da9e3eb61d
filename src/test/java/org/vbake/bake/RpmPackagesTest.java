package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.vbake.bake.PackagesFixtures.dir;
import static org.vbake.bake.PackagesFixtures.file;
import static org.vbake.bake.PackagesFixtures.gzip;
import static org.vbake.bake.PackagesFixtures.image;
import static org.vbake.bake.PackagesFixtures.symlink;
import static org.vbake.bake.RpmFixtures.FEDORA_OS_RELEASE;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.Statement;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.bake.ContentListing.Entry;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.image.ResolvedImage;

/**
 * The rpm databases of real packages: built by rpmbuild and installed by Debian's rpm, read back
 * through the same layer scan a bake uses, and compared with what rpm itself reads.
 */
class RpmPackagesTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static final Package HELLO = new Package("rpm", "hello-vbake", "2:1.2.3-4.fc40", "noarch",
            "hello-vbake", "GPL-2.0-or-later AND BSD-3-Clause");
    private static final Package LIBTINY = new Package("rpm", "libtiny", "0.9-1.fc40", "x86_64", "tiny", "MIT");
    /** What {@link RpmFixtures#rpmQuery} prints for the two packages, in rpm's order. */
    private static final List<String> RPM_SAYS = List.of(
            "hello-vbake 2:1.2.3-4.fc40 noarch GPL-2.0-or-later AND BSD-3-Clause hello-vbake-1.2.3-4.fc40.src.rpm",
            "libtiny 0.9-1.fc40 x86_64 MIT tiny-0.9-1.fc40.src.rpm");

    @TempDir
    static Path work;
    private static Path rpmDir;

    @TempDir
    Path cache;

    @BeforeAll
    static void installPackages() throws Exception {
        assumeTrue(RpmFixtures.rpmTools(),
                "rpm and rpmbuild are not installed (apt-get install rpm, as tests/setup-host.sh does)");
        rpmDir = RpmFixtures.installedRoot(work).resolve("var/lib/rpm");
    }

    private static byte[] bytes(Path p) throws Exception {
        return Files.readAllBytes(p);
    }

    /** A Fedora-like base layer as the image has it: the database under /usr/lib/sysimage, /var/lib/rpm a link. */
    private ResolvedImage fedora(byte[] db, byte[] wal) throws Exception {
        return image(cache, "registry.fedoraproject.org/fedora", gzip(
                dir("etc"), file("etc/os-release", FEDORA_OS_RELEASE),
                dir("usr/lib/sysimage/rpm"), file("usr/lib/sysimage/rpm/rpmdb.sqlite", db),
                file("usr/lib/sysimage/rpm/rpmdb.sqlite-wal", wal),
                file("usr/lib/sysimage/rpm/rpmdb.sqlite-shm", new byte[32768]),
                dir("var/lib"), symlink("var/lib/rpm", "../../usr/lib/sysimage/rpm")));
    }

    @Test
    void sqliteDatabaseListsPackagesWithEpochReleaseArchAndLicense() throws Exception {
        assertThat(RpmFixtures.rpmQuery(work, rpmDir, "sqlite").lines().sorted()).containsExactlyElementsOf(RPM_SAYS);
        assertThat(Files.size(rpmDir.resolve("rpmdb.sqlite-wal"))).isZero();

        Packages found = Packages.scan(fedora(bytes(rpmDir.resolve("rpmdb.sqlite")),
                bytes(rpmDir.resolve("rpmdb.sqlite-wal"))));

        assertThat(found.list()).containsExactly(HELLO, LIBTINY);
        assertThat(found.notes()).isEmpty();
        assertThat(found.distro()).isEqualTo(new Distro("fedora", "40", "Fedora Linux 40 (Container Image)"));
    }

    @Test
    void sbomNamesRpmPackagesWithVersionsLicensesAndPurls() throws Exception {
        ResolvedImage image = fedora(bytes(rpmDir.resolve("rpmdb.sqlite")), new byte[0]);
        Entry entry = Entry.of(List.of("registry.fedoraproject.org/fedora:40"), image, image.manifestDigest(),
                Packages.scan(image));

        JsonNode packages = JSON.readTree(SbomWriter.cycloneDx(List.of(entry), "seed")).get("components").get(0)
                .get("components");

        assertThat(packages).hasSize(2);
        JsonNode hello = packages.get(0);
        assertThat(hello.get("name").asText()).isEqualTo("hello-vbake");
        assertThat(hello.get("version").asText()).isEqualTo("2:1.2.3-4.fc40");
        assertThat(hello.get("purl").asText())
                .isEqualTo("pkg:rpm/fedora/hello-vbake@1.2.3-4.fc40?arch=noarch&distro=fedora-40&epoch=2");
        assertThat(hello.get("licenses").get(0).get("expression").asText())
                .isEqualTo("GPL-2.0-or-later AND BSD-3-Clause");
        assertThat(hello.get("properties").findValuesAsText("value")).containsExactly("rpm", "hello-vbake");
        JsonNode libtiny = packages.get(1);
        assertThat(libtiny.get("name").asText()).isEqualTo("libtiny");
        assertThat(libtiny.get("version").asText()).isEqualTo("0.9-1.fc40");
        assertThat(libtiny.get("purl").asText())
                .isEqualTo("pkg:rpm/fedora/libtiny@0.9-1.fc40?arch=x86_64&distro=fedora-40&upstream=tiny");
        assertThat(libtiny.get("licenses").get(0).get("license").get("name").asText()).isEqualTo("MIT");
        assertThat(libtiny.get("properties").findValuesAsText("value")).containsExactly("rpm", "tiny");
    }

    private static String name(byte[] header) {
        try {
            return RpmDatabases.header(header).name();
        } catch (RpmDatabases.MalformedException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * rpm empties the write-ahead log when it closes the database, but a log still holding a
     * transaction (here: libtiny erased) is part of the database and is applied.
     */
    @Test
    void pendingWriteAheadLogIsApplied() throws Exception {
        int libtiny = RpmFixtures.sqliteHeaders(rpmDir.resolve("rpmdb.sqlite")).entrySet().stream()
                .filter(h -> name(h.getValue()).equals("libtiny")).findFirst().orElseThrow().getKey();
        Path copy = Files.createDirectories(work.resolve("wal"));
        Files.copy(rpmDir.resolve("rpmdb.sqlite"), copy.resolve("rpmdb.sqlite"));
        byte[] db;
        byte[] wal;
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + copy.resolve("rpmdb.sqlite"));
                Statement s = c.createStatement()) {
            s.execute("PRAGMA journal_mode = WAL");
            s.execute("PRAGMA wal_autocheckpoint = 0");
            s.execute("DELETE FROM Packages WHERE hnum = " + libtiny);
            // Copied while the connection is open: closing it would checkpoint the log into the file.
            db = bytes(copy.resolve("rpmdb.sqlite"));
            wal = bytes(copy.resolve("rpmdb.sqlite-wal"));
        }
        assertThat(wal).isNotEmpty();

        assertThat(Packages.scan(fedora(db, wal)).list()).containsExactly(HELLO);
        assertThat(Packages.scan(fedora(db, new byte[0])).list()).containsExactly(HELLO, LIBTINY);
    }

    /**
     * Berkeley DB {@code Packages} files written by Berkeley DB itself from the same headers: small
     * pages (every header on a chain of overflow pages), large pages (headers inline), and a
     * big-endian file; rpm reads each one as it reads the SQLite database, and so must the scan.
     */
    @Test
    void berkeleyDbDatabasesReadAsRpmReadsThem() throws Exception {
        assumeTrue(RpmFixtures.dbLoad() != null,
                "Berkeley DB's db_load is not installed (apt-get install db5.3-util, as tests/setup-host.sh does)");
        Map<Integer, byte[]> headers = RpmFixtures.sqliteHeaders(rpmDir.resolve("rpmdb.sqlite"));
        assertThat(headers).hasSize(2);

        for (int pageSize : List.of(512, 4096, 65536)) {
            for (boolean bigEndian : List.of(false, true)) {
                Path dbpath = RpmFixtures.berkeleyDb(work, headers, pageSize, bigEndian);
                String what = pageSize + (bigEndian ? " big-endian" : " little-endian");
                assertThat(RpmFixtures.rpmQuery(work, dbpath, "bdb_ro").lines().sorted()).as(what)
                        .containsExactlyElementsOf(RPM_SAYS);

                Packages found = Packages.scan(image(cache, null, gzip(
                        file("etc/os-release", "ID=centos\nVERSION_ID=7\n"),
                        file("var/lib/rpm/Packages", bytes(dbpath.resolve("Packages"))))));

                assertThat(found.list()).as(what).containsExactly(HELLO, LIBTINY);
                assertThat(found.notes()).as(what).isEmpty();
            }
        }
    }
}
