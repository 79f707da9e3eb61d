package org.vbake.bake;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * Real rpm databases for tests, made by Debian's rpm tools: two tiny packages built with rpmbuild
 * and installed with {@code rpm --justdb} into a SQLite database, and Berkeley DB copies of it
 * written by Berkeley DB's own {@code db_load}.
 */
final class RpmFixtures {

    private RpmFixtures() {
    }

    /** One has an epoch, a compound SPDX license and is noarch; the other a subpackage of another source. */
    static final String HELLO_SPEC = """
            Name: hello-vbake
            Version: 1.2.3
            Release: 4.fc40
            Epoch: 2
            Summary: a test package with an epoch
            License: GPL-2.0-or-later AND BSD-3-Clause
            BuildArch: noarch
            %description
            A test package with an epoch.
            %files
            """;

    static final String TINY_SPEC = """
            Name: tiny
            Version: 0.9
            Release: 1.fc40
            Summary: the source of libtiny
            License: MIT
            %description
            The source package.
            %package -n libtiny
            Summary: a subpackage
            %description -n libtiny
            A subpackage, so its source rpm is named after another package.
            %files -n libtiny
            """;

    static final String FEDORA_OS_RELEASE = "NAME=\"Fedora Linux\"\nVERSION=\"40 (Container Image)\"\nID=fedora\n"
            + "VERSION_ID=40\nPRETTY_NAME=\"Fedora Linux 40 (Container Image)\"\n";

    /** Whether Debian's rpm package (rpm, rpmbuild) is installed. */
    static boolean rpmTools() {
        return onPath("rpm") && onPath("rpmbuild");
    }

    /** Berkeley DB's loader, from Debian's db5.3-util (or db-util's unversioned name); null when absent. */
    static String dbLoad() {
        for (String name : List.of("db5.3_load", "db_load")) {
            if (onPath(name)) {
                return name;
            }
        }
        return null;
    }

    private static boolean onPath(String tool) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, tool))) {
                return true;
            }
        }
        return false;
    }

    /**
     * Builds both packages and installs them into {@code work/root}; returns the root, whose
     * {@code var/lib/rpm} holds {@code rpmdb.sqlite} (and rpm's empty {@code -wal} and {@code -shm}).
     */
    static Path installedRoot(Path work) throws IOException, InterruptedException {
        Path top = work.resolve("rpmbuild");
        Path root = work.resolve("root");
        Files.createDirectories(root);
        List<String> rpms = new ArrayList<>();
        for (Map.Entry<String, String> spec : Map.of("hello.spec", HELLO_SPEC, "tiny.spec", TINY_SPEC).entrySet()) {
            Path file = work.resolve(spec.getKey());
            Files.writeString(file, spec.getValue());
            // x86_64 whatever the build host is, so that the expected arch is fixed.
            run(work, "rpmbuild", "--define", "_topdir " + top, "--target", "x86_64", "-bb", file.toString());
        }
        try (var found = Files.walk(top.resolve("RPMS"))) {
            found.filter(p -> p.toString().endsWith(".rpm")).sorted().forEach(p -> rpms.add(p.toString()));
        }
        List<String> install = new ArrayList<>(List.of("rpm", "--root", root.toString(), "--dbpath", "/var/lib/rpm",
                "--define", "_db_backend sqlite", "-i", "--justdb", "--nodeps", "--noscripts", "--ignorearch",
                "--ignoreos"));
        install.addAll(rpms);
        run(work, install.toArray(String[]::new));
        return root;
    }

    /** {@code NAME EVR ARCH LICENSE SOURCERPM} per package, as rpm itself reads the database in {@code dbpath}. */
    static String rpmQuery(Path work, Path dbpath, String backend) throws IOException, InterruptedException {
        return run(work, "rpm", "--dbpath", dbpath.toString(), "--define", "_db_backend " + backend, "-qa",
                "--qf", "%{NAME} %{EVR} %{ARCH} %{LICENSE} %{SOURCERPM}\\n");
    }

    /** The header blobs of an rpmdb.sqlite by its row number, read with plain SQL. */
    static Map<Integer, byte[]> sqliteHeaders(Path db) throws SQLException {
        Map<Integer, byte[]> headers = new TreeMap<>();
        try (Connection c = DriverManager.getConnection("jdbc:sqlite:" + db.toUri() + "?immutable=1");
                Statement s = c.createStatement();
                ResultSet rows = s.executeQuery("SELECT hnum, blob FROM Packages")) {
            while (rows.next()) {
                headers.put(rows.getInt(1), rows.getBytes(2));
            }
        }
        return headers;
    }

    /**
     * A Berkeley DB hash database laid out as rpm's {@code Packages}: native-order uint32 keys, the
     * headers as values, and record 0 holding the last instance number. Written by {@code db_load}
     * from its dump format, so the page layout is the library's, not ours.
     */
    static Path berkeleyDb(Path work, Map<Integer, byte[]> headers, int pageSize, boolean bigEndian)
            throws IOException, InterruptedException {
        HexFormat hex = HexFormat.of();
        StringBuilder dump = new StringBuilder("VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize=" + pageSize + "\n"
                + "db_lorder=" + (bigEndian ? 4321 : 1234) + "\nHEADER=END\n");
        ByteOrder order = bigEndian ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
        dump.append(' ').append(hex.formatHex(ByteBuffer.allocate(4).order(order).putInt(0).array())).append('\n');
        dump.append(' ').append(hex.formatHex(ByteBuffer.allocate(4).order(order).putInt(headers.size()).array()))
                .append('\n');
        for (Map.Entry<Integer, byte[]> h : headers.entrySet()) {
            dump.append(' ').append(hex.formatHex(ByteBuffer.allocate(4).order(order).putInt(h.getKey()).array()))
                    .append('\n');
            dump.append(' ').append(hex.formatHex(h.getValue())).append('\n');
        }
        dump.append("DATA=END\n");
        Path dir = Files.createDirectories(work.resolve("bdb-" + pageSize + (bigEndian ? "-be" : "-le")));
        Path input = work.resolve(dir.getFileName() + ".dump");
        Files.writeString(input, dump);
        run(work, dbLoad(), "-f", input.toString(), dir.resolve("Packages").toString());
        return dir;
    }

    /** Runs a tool to completion; its stdout, or an exception with its output when it fails. */
    static String run(Path dir, String... argv) throws IOException, InterruptedException {
        Path out = Files.createTempFile(dir, "out", ".txt");
        Path err = Files.createTempFile(dir, "err", ".txt");
        Process p = new ProcessBuilder(argv).directory(dir.toFile()).redirectInput(ProcessBuilder.Redirect.from(
                Path.of("/dev/null").toFile())).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", argv) + ": no exit after 120 s");
        }
        String stdout = Files.readString(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", argv) + ": exit " + p.exitValue() + "\n" + stdout
                    + Files.readString(err, StandardCharsets.UTF_8));
        }
        return stdout;
    }
}
