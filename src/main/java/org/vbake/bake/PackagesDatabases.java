package org.vbake.bake;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;

/** Parsers for the text databases of dpkg and apk, and for os-release. Lenient: what cannot be understood is skipped. */
final class PackagesDatabases {

    private PackagesDatabases() {
    }

    /**
     * The installed packages in a dpkg status file, or in one distroless {@code status.d} file.
     *
     * @param statusRequired true for {@code var/lib/dpkg/status}, where dpkg always writes
     *                       {@code Status:}; distroless {@code status.d} files are control files
     *                       that often have none, and everything listed there is installed
     */
    static List<Package> dpkg(String text, boolean statusRequired) {
        List<Package> result = new ArrayList<>();
        for (Map<String, String> stanza : stanzas(text)) {
            String name = stanza.get("package");
            if (name == null || name.isEmpty()) {
                continue;
            }
            String status = stanza.get("status");
            if (status == null ? statusRequired : !installed(status)) {
                continue;
            }
            result.add(new Package(Packages.DPKG, name, stanza.get("version"), stanza.get("architecture"),
                    sourceName(stanza.get("source")), null));
        }
        return result;
    }

    /**
     * dpkg's Status is {@code want flag state}; the files are on disk exactly when the state is
     * {@code installed}, whatever is wanted next ({@code hold ok installed} is installed too).
     */
    private static boolean installed(String status) {
        String[] words = status.trim().split("\\s+");
        return words.length == 3 && words[2].equals("installed");
    }

    /** {@code Source: glibc (2.36-9)} names the source package and, when it differs, its version. */
    private static String sourceName(String source) {
        if (source == null) {
            return null;
        }
        int paren = source.indexOf('(');
        String name = (paren >= 0 ? source.substring(0, paren) : source).trim();
        return name.isEmpty() ? null : name;
    }

    /** Deb822 paragraphs with lower-cased field names; continuation lines are dropped (no field read here spans lines). */
    private static List<Map<String, String>> stanzas(String text) {
        List<Map<String, String>> result = new ArrayList<>();
        Map<String, String> current = new HashMap<>();
        for (String line : text.split("\n", -1)) {
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            if (line.isBlank()) {
                if (!current.isEmpty()) {
                    result.add(current);
                    current = new HashMap<>();
                }
                continue;
            }
            if (line.charAt(0) == ' ' || line.charAt(0) == '\t' || line.charAt(0) == '#') {
                continue;
            }
            int colon = line.indexOf(':');
            if (colon > 0) {
                current.putIfAbsent(line.substring(0, colon).trim().toLowerCase(Locale.ROOT),
                        line.substring(colon + 1).trim());
            }
        }
        if (!current.isEmpty()) {
            result.add(current);
        }
        return result;
    }

    /** The packages in apk's {@code lib/apk/db/installed}: blocks of {@code X:value} lines. */
    static List<Package> apk(String text) {
        List<Package> result = new ArrayList<>();
        Map<Character, String> block = new HashMap<>();
        for (String line : (text + "\n\n").split("\n", -1)) {
            if (line.endsWith("\r")) {
                line = line.substring(0, line.length() - 1);
            }
            if (line.isEmpty()) {
                String name = block.get('P');
                if (name != null && !name.isEmpty()) {
                    result.add(new Package(Packages.APK, name, block.get('V'), block.get('A'), block.get('o'),
                            block.get('L')));
                }
                block.clear();
            } else if (line.length() >= 2 && line.charAt(1) == ':') {
                String value = line.substring(2).trim();
                block.putIfAbsent(line.charAt(0), value.isEmpty() ? null : value);
            }
        }
        return result;
    }

    /** {@code ID}, {@code VERSION_ID} and {@code PRETTY_NAME} of an os-release file; null without an ID. */
    static Distro osRelease(String text) {
        Map<String, String> values = new HashMap<>();
        for (String line : text.split("\n")) {
            line = line.strip();
            int eq = line.indexOf('=');
            if (line.startsWith("#") || eq <= 0) {
                continue;
            }
            values.put(line.substring(0, eq), unquote(line.substring(eq + 1)));
        }
        String id = values.get("ID");
        if (id == null || id.isEmpty()) {
            return null;
        }
        String versionId = values.get("VERSION_ID");
        return new Distro(id, versionId == null || versionId.isEmpty() ? null : versionId, values.get("PRETTY_NAME"));
    }

    /** Shell-style quoting as os-release(5) allows it: single quotes literal, double quotes with backslash escapes. */
    private static String unquote(String v) {
        if (v.length() >= 2 && v.charAt(0) == '\'' && v.endsWith("'")) {
            return v.substring(1, v.length() - 1);
        }
        if (v.length() >= 2 && v.charAt(0) == '"' && v.endsWith("\"")) {
            StringBuilder b = new StringBuilder();
            for (int i = 1; i < v.length() - 1; i++) {
                char c = v.charAt(i);
                if (c == '\\' && i + 1 < v.length() - 1) {
                    c = v.charAt(++i);
                }
                b.append(c);
            }
            return b.toString();
        }
        return v;
    }
}
