package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.vbake.bake.PackagesFixtures.BASE_STATUS;
import static org.vbake.bake.PackagesFixtures.INSTALLED;
import static org.vbake.bake.PackagesFixtures.debianBase;
import static org.vbake.bake.PackagesFixtures.dir;
import static org.vbake.bake.PackagesFixtures.file;
import static org.vbake.bake.PackagesFixtures.gzip;
import static org.vbake.bake.PackagesFixtures.hardlink;
import static org.vbake.bake.PackagesFixtures.image;
import static org.vbake.bake.PackagesFixtures.layer;
import static org.vbake.bake.PackagesFixtures.plain;
import static org.vbake.bake.PackagesFixtures.stanza;
import static org.vbake.bake.PackagesFixtures.symlink;
import static org.vbake.bake.PackagesFixtures.whiteout;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.bake.PackagesFixtures.Compress;
import org.vbake.image.ResolvedImage;

class PackagesTest {

    private static final String NO_DATABASE = "no package database found (dpkg, apk or rpm)";

    @TempDir
    Path cache;

    private static Package deb(String name, String version, String arch, String source) {
        return new Package("dpkg", name, version, arch, source, null);
    }

    @Test
    void dpkgStatusListsInstalledPackagesOnly() throws Exception {
        Packages found = Packages.scan(image(cache, "docker.io/library/debian", debianBase(Compress.GZIP)));

        assertThat(found.list()).containsExactly(
                deb("base-files", "12.4+deb12u5", "arm64", null),
                deb("libc6", "2.36-9+deb12u4", "arm64", "glibc"));
        assertThat(found.notes()).isEmpty();
        assertThat(found.distro()).isEqualTo(new Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)"));
    }

    @Test
    void upperLayerReplacesTheStatusFile() throws Exception {
        String status = stanza("zlib1g", INSTALLED, "1:1.2.13.dfsg-1", "arm64", "zlib (1:1.2.13.dfsg-1)") + "\n"
                + stanza("base-files", INSTALLED, "12.5", "arm64", null) + "\n"
                + stanza("libc6", "hold ok installed", "2.36-9+deb12u7", "arm64", "glibc") + "\n"
                + stanza("tzdata", INSTALLED, "2024a-0+deb12u1", "all", null) + "\n"
                + stanza("removed", "purge ok not-installed", "1", "arm64", null) + "\n";
        ResolvedImage image = image(cache, "docker.io/library/debian",
                debianBase(Compress.GZIP),
                plain(file("var/lib/dpkg/status", status)));

        assertThat(Packages.scan(image).list()).containsExactly(
                deb("base-files", "12.5", "arm64", null),
                deb("libc6", "2.36-9+deb12u7", "arm64", "glibc"),
                deb("tzdata", "2024a-0+deb12u1", "all", null),
                deb("zlib1g", "1:1.2.13.dfsg-1", "arm64", "zlib"));
    }

    @Test
    void whiteoutDeletesTheStatusFile() throws Exception {
        ResolvedImage image = image(cache, null,
                debianBase(Compress.GZIP),
                plain(dir("var/lib/dpkg"), whiteout("var/lib/dpkg/status")));

        Packages found = Packages.scan(image);

        assertThat(found.list()).isEmpty();
        assertThat(found.notes()).containsExactly(NO_DATABASE);
        assertThat(found.distro().id()).isEqualTo("debian");
    }

    @Test
    void whiteoutOfAParentDirectoryDeletesWhatIsBelowIt() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.NONE), plain(whiteout("./var/lib/dpkg")));

        assertThat(Packages.scan(image).list()).isEmpty();
    }

    @Test
    void fileReplacingADirectoryDeletesWhatWasBelowIt() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.NONE), plain(symlink("var/lib", "/srv/lib")));

        assertThat(Packages.scan(image).list()).isEmpty();
    }

    @Test
    void opaqueDirectoryHidesLowerFilesButKeepsItsOwn() throws Exception {
        ResolvedImage image = image(cache, null,
                debianBase(Compress.GZIP),
                gzip(file("var/lib/dpkg/status.d/extra", stanza("extra", INSTALLED, "1", "arm64", null))),
                // The marker after the new file on purpose: it hides lower layers only, whatever the order.
                plain(dir("var/lib/dpkg"),
                        file("var/lib/dpkg/status", stanza("busybox", INSTALLED, "1:1.35.0-4", "arm64", null)),
                        file("var/lib/dpkg/.wh..wh..opq", "")));

        assertThat(Packages.scan(image).list()).containsExactly(deb("busybox", "1:1.35.0-4", "arm64", null));
    }

    @Test
    void opaqueMarkerBeforeNewFiles() throws Exception {
        ResolvedImage image = image(cache, null,
                debianBase(Compress.GZIP),
                plain(dir("/var/lib/dpkg/"), file("/var/lib/dpkg/.wh..wh..opq", ""),
                        file("/var/lib/dpkg/status", stanza("busybox", INSTALLED, "1", "arm64", null))));

        assertThat(Packages.scan(image).list()).containsExactly(deb("busybox", "1", "arm64", null));
    }

    @Test
    void apkInstalledDatabaseWithLicenseAndOrigin() throws Exception {
        String installed = "C:Q1abc=\nP:musl\nV:1.2.5-r0\nA:aarch64\nS:383152\nI:622592\nT:the musl c library\n"
                + "U:https://musl.libc.org/\nL:MIT\no:musl\nm:Someone <a@b>\nt:1712000000\nc:abc\n"
                + "F:lib\nR:ld-musl-aarch64.so.1\nZ:Q1xyz=\n"
                + "\n"
                + "C:Q1def=\nP:busybox-binsh\nV:1.36.1-r29\nA:aarch64\nL:GPL-2.0-only\no:busybox\n"
                + "\n"
                + "C:Q1ghi=\nP:alpine-baselayout\nV:3.6.5-r0\nA:aarch64\nL:GPL-2.0-only\no:alpine-baselayout\n";
        ResolvedImage image = image(cache, "docker.io/library/alpine",
                layer(Compress.ZSTD,
                        dir("etc"), file("etc/os-release", "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\n"
                                + "PRETTY_NAME=\"Alpine Linux v3.20\"\n"),
                        dir("lib"), dir("lib/apk"), dir("lib/apk/db"), file("lib/apk/db/installed", installed)));

        Packages found = Packages.scan(image);

        assertThat(found.list()).containsExactly(
                new Package("apk", "alpine-baselayout", "3.6.5-r0", "aarch64", "alpine-baselayout", "GPL-2.0-only"),
                new Package("apk", "busybox-binsh", "1.36.1-r29", "aarch64", "busybox", "GPL-2.0-only"),
                new Package("apk", "musl", "1.2.5-r0", "aarch64", "musl", "MIT"));
        assertThat(found.notes()).isEmpty();
        assertThat(found.distro()).isEqualTo(new Distro("alpine", "3.20.3", "Alpine Linux v3.20"));
    }

    @Test
    void distrolessStatusDirectory() throws Exception {
        // distroless writes each package's control file, without Status, plus its md5sums.
        String baseFiles = "Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: arm64\nMaintainer: x\n";
        String libc = "Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u7\nArchitecture: arm64\n";
        String netbase = "Package: netbase\nVersion: 6.4\nArchitecture: all\n";
        ResolvedImage image = image(cache, "gcr.io/distroless/base-debian12",
                gzip(dir("./etc"), file("./etc/os-release", PackagesFixtures.DEBIAN_OS_RELEASE),
                        dir("./var/lib/dpkg/status.d"),
                        file("./var/lib/dpkg/status.d/base-files", baseFiles),
                        file("./var/lib/dpkg/status.d/base-files.md5sums", "0123456789abcdef  etc/debian_version\n")),
                gzip(file("./var/lib/dpkg/status.d/libc6", libc),
                        file("./var/lib/dpkg/status.d/libc6.md5sums", "0123  lib/ld-linux-aarch64.so.1\n"),
                        file("./var/lib/dpkg/status.d/netbase", netbase)),
                plain(whiteout("var/lib/dpkg/status.d/netbase")));

        Packages found = Packages.scan(image);

        assertThat(found.list()).containsExactly(
                deb("base-files", "12.4+deb12u5", "arm64", null),
                deb("libc6", "2.36-9+deb12u7", "arm64", "glibc"));
        assertThat(found.notes()).isEmpty();
        assertThat(found.distro().versionId()).isEqualTo("12");
    }

    @Test
    void unreadableRpmDatabaseIsNoted() throws Exception {
        ResolvedImage image = image(cache, null,
                gzip(dir("var/lib/rpm"), file("var/lib/rpm/rpmdb.sqlite", "SQLite format 3\0"),
                        file("etc/os-release", "ID=\"fedora\"\nVERSION_ID=40\n")));

        Packages found = Packages.scan(image);

        assertThat(found.list()).isEmpty();
        assertThat(found.notes()).containsExactly("/var/lib/rpm/rpmdb.sqlite not read: SQLite: [SQLITE_NOTADB] File "
                + "opened that is not a database file (file is not a database)");
        assertThat(found.distro()).isEqualTo(new Distro("fedora", "40", null));
    }

    @Test
    void suseNdbDatabaseIsOnlyNoted() throws Exception {
        ResolvedImage image = image(cache, null,
                plain(file("usr/lib/sysimage/rpm/Packages.db", "ndb bytes"), file("etc/os-release", "ID=opensuse-leap\n")));

        Packages found = Packages.scan(image);

        assertThat(found.list()).isEmpty();
        assertThat(found.notes())
                .containsExactly("rpm database present, not read: /usr/lib/sysimage/rpm/Packages.db (SUSE's ndb format)");
    }

    @Test
    void imageWithoutPackageDatabaseSaysSo() throws Exception {
        Packages found = Packages.scan(image(cache, null, plain(file("app", "static binary"))));

        assertThat(found.list()).isEmpty();
        assertThat(found.notes()).containsExactly(NO_DATABASE);
        assertThat(found.distro()).isNull();
    }

    @Test
    void hardLinkedStatusIsReadThroughItsTarget() throws Exception {
        ResolvedImage image = image(cache, null,
                plain(file("var/lib/dpkg/status.d/libc6", "Package: libc6\nVersion: 2\nArchitecture: arm64\n"),
                        hardlink("var/lib/dpkg/status", "var/lib/dpkg/status.d/libc6"),
                        hardlink("lib/apk/db/installed", "lib/apk/db/installed.bak")));

        Packages found = Packages.scan(image);

        assertThat(found.list()).containsExactly(deb("libc6", "2", "arm64", null));
        assertThat(found.notes()).containsExactly(
                "/lib/apk/db/installed not read: a hard link to lib/apk/db/installed.bak, which was not read");
    }

    /** Files over a MiB are held compressed between the layer read and the listing; what comes back is the same. */
    @Test
    void largeDatabaseIsReadWhole() throws Exception {
        StringBuilder status = new StringBuilder();
        for (int i = 0; status.length() <= 3 << 20; i++) {
            status.append(stanza(String.format("pkg%05d", i), INSTALLED, "1." + i, "arm64", null)).append('\n');
        }
        int count = status.toString().split("\nPackage: ", -1).length;

        Packages found = Packages.scan(image(cache, null, gzip(file("var/lib/dpkg/status", status.toString()))));

        assertThat(found.list()).hasSize(count);
        assertThat(found.list().get(count - 1)).isEqualTo(deb(String.format("pkg%05d", count - 1), "1." + (count - 1),
                "arm64", null));
    }

    @Test
    void sameInputSameResult() throws Exception {
        ResolvedImage image = image(cache, null, debianBase(Compress.GZIP),
                plain(file("var/lib/dpkg/status", BASE_STATUS + "\n" + stanza("a", INSTALLED, "1", "arm64", null))));

        assertThat(Packages.scan(image)).isEqualTo(Packages.scan(image));
        assertThat(Packages.scan(image).list()).extracting(Package::name)
                .containsExactly("a", "base-files", "libc6");
    }

    @Test
    void brokenLayerIsReportedWithItsDigest() throws Exception {
        ResolvedImage good = image(cache, null, debianBase(Compress.GZIP));
        ResolvedImage.Layer layer = good.layers().get(0);
        Path truncated = cache.resolve("truncated");
        byte[] blob = Files.readAllBytes(layer.blob());
        Files.write(truncated, java.util.Arrays.copyOf(blob, blob.length / 2));
        ResolvedImage broken = new ResolvedImage(good.source(), null, List.of(), good.manifestDigest(),
                good.manifestBytes(), good.manifestMediaType(), good.configDigest(), good.configBytes(), "linux",
                "arm64", "v8", List.of(new ResolvedImage.Layer(layer.digest(), layer.mediaType(), layer.size(),
                        layer.diffId(), truncated)));

        assertThatThrownBy(() -> Packages.scan(broken))
                .isInstanceOf(java.io.IOException.class)
                .hasMessageStartingWith("layer " + layer.digest() + " of oci-archive /in/test.tar: ");
    }
}
