package org.vbake.bake;

import java.io.IOException;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import org.vbake.image.ResolvedImage;

/**
 * The OS packages an image's final filesystem says are installed, read from the package managers'
 * own databases, so that a bake can list what it put into the storage tree.
 *
 * @param list   sorted by {@link #ORDER}: type, name, arch, version
 * @param notes  what could not be read or was not found, in a stable order; empty when nothing to say
 * @param distro from {@code /etc/os-release} (or {@code /usr/lib/os-release}); null when there is none
 */
public record Packages(List<Package> list, List<String> notes, Distro distro) {

    /** dpkg: {@code var/lib/dpkg/status} and distroless' {@code var/lib/dpkg/status.d/*}. */
    public static final String DPKG = "dpkg";
    /** apk: {@code lib/apk/db/installed}. */
    public static final String APK = "apk";
    /**
     * rpm: {@code rpmdb.sqlite} (SQLite) and {@code Packages} (Berkeley DB) under
     * {@code usr/lib/sysimage/rpm/} or {@code var/lib/rpm/}; SUSE's ndb {@code Packages.db} is only
     * named in notes.
     */
    public static final String RPM = "rpm";

    /** The order of {@link #list()}; nulls first so that it is total. */
    public static final Comparator<Package> ORDER = Comparator
            .comparing(Package::type)
            .thenComparing(Package::name)
            .thenComparing(Package::arch, Comparator.nullsFirst(Comparator.naturalOrder()))
            .thenComparing(Package::version, Comparator.nullsFirst(Comparator.naturalOrder()))
            .thenComparing(Package::sourcePackage, Comparator.nullsFirst(Comparator.naturalOrder()))
            .thenComparing(Package::license, Comparator.nullsFirst(Comparator.naturalOrder()));

    public Packages {
        list = List.copyOf(list);
        notes = List.copyOf(notes);
    }

    /**
     * One installed package.
     *
     * @param type          {@link #DPKG}, {@link #APK} or {@link #RPM} (which database it came from)
     * @param name          package name
     * @param version       as the database spells it (dpkg epochs included); for rpm its EVR,
     *                      {@code [epoch:]version-release}, the epoch only when the package has one;
     *                      null if missing
     * @param arch          {@code arm64}, {@code all}, {@code aarch64}, {@code noarch}; null if missing
     * @param sourcePackage dpkg {@code Source:} without its version, apk origin ({@code o:}), the name of
     *                      rpm's source rpm ({@code openssl} of {@code openssl-3.0.7-27.el9.src.rpm}); null
     *                      when not given
     * @param license       apk {@code L:}, rpm's License tag, as written there (SPDX or free text); always
     *                      null for dpkg, whose status file carries none
     */
    public record Package(String type, String name, String version, String arch, String sourcePackage,
            String license) {

        public Package {
            Objects.requireNonNull(type, "type");
            Objects.requireNonNull(name, "name");
        }
    }

    /**
     * The distribution from os-release, used for package URLs ({@code pkg:deb/debian/..?distro=debian-12}).
     *
     * @param id         {@code ID}: {@code debian}, {@code alpine}, {@code ubuntu}; never null
     * @param versionId  {@code VERSION_ID}: {@code 12}, {@code 3.20.3}; null for rolling releases (sid)
     * @param prettyName {@code PRETTY_NAME}, may be null
     */
    public record Distro(String id, String versionId, String prettyName) {

        public Distro {
            Objects.requireNonNull(id, "id");
        }
    }

    /**
     * Reads the package databases of {@code image} by streaming its layers bottom to top, applying
     * OCI whiteouts and replacements, without extracting anything to disk. What cannot be read (an
     * ndb rpm database, a malformed rpm header, a database over the size limit) is reported in
     * {@link #notes()}.
     *
     * @throws IOException a layer blob that cannot be read or is not a (gzip, zstd or plain) tar;
     *                     the message names the layer
     */
    public static Packages scan(ResolvedImage image) throws IOException {
        return PackagesScanner.scan(image);
    }
}
