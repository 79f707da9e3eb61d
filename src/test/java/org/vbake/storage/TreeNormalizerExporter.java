package org.vbake.storage;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A directory tree held in memory and written as a tar exactly as {@code vbake-agent export-tree}
 * (vm-images/agent/tree.go) writes a real one, so tests need no binary fixtures.
 *
 * <p>The walk is the exporter's: the root as {@code ./}, then depth first with the names of each
 * directory sorted bytewise ({@code sort.Strings}); directories end in a slash; the first path of an
 * inode with several links carries the content and xattrs, every later one is a TypeLink header
 * with the inode's mode, owner and mtime. Each header is then encoded the way Go's archive/tar
 * encodes a {@code Format: PAX} header, re-implemented here from Go's writer.go, common.go,
 * strconv.go and format.go (Go 1.19) rather than taken from {@link TreeNormalizerTar}, so that the
 * tests can hold the normalizer's codec against it: plain USTAR (with the prefix field for a long
 * name it can split) unless something needs PAX; otherwise an extended header named
 * {@code dir/PaxHeaders.0/file} with the records in key order, and a main header whose name and
 * link are cut to ASCII and to their field, with 0 in numeric fields that do not fit. Two zero
 * blocks end the archive, without padding to a record size.
 *
 * <p>Names, link targets and xattr values are strings of bytes, one char per byte (ISO-8859-1),
 * as in {@link TreeNormalizerTar}: {@code "caf\u00e9"} is the non-UTF-8 name with the byte 0xe9,
 * {@link #utf8} gives the bytes of a Unicode name. Parent directories are created as needed
 * (0755). Names are not checked, so a test can also write the names a hostile tar would hold.
 */
final class TreeNormalizerExporter {

    /** The exporter's {@code --mtime-clamp} in vbake's bakes: what the engine wrote is clamped to it. */
    static final long CLAMP = 1750000000L;

    private static final int BLOCK = 512;
    private static final int NAME_SIZE = 100;
    private static final int PREFIX_SIZE = 155;

    /** An inode: what every path that links to it shares. */
    static final class Node {
        final char type;
        long mode;
        long uid;
        long gid;
        long mtime;
        byte[] content = new byte[0];
        String target = "";
        long devMajor;
        long devMinor;
        final TreeMap<String, String> xattrs = new TreeMap<>();

        private Node(char type, long mode, long mtime) {
            this.type = type;
            this.mode = mode;
            this.mtime = mtime;
        }

        Node mode(long m) {
            mode = m;
            return this;
        }

        Node owner(long u, long g) {
            uid = u;
            gid = g;
            return this;
        }

        Node mtime(long t) {
            mtime = t;
            return this;
        }

        /** An extended attribute; the value is a string of bytes. */
        Node xattr(String name, String value) {
            xattrs.put(name, value);
            return this;
        }

        Node xattr(String name, byte[] value) {
            return xattr(name, new String(value, StandardCharsets.ISO_8859_1));
        }
    }

    private final Map<String, Node> nodes = new HashMap<>();
    private final Map<String, TreeSet<String>> children = new HashMap<>();
    private long mtime = CLAMP;

    TreeNormalizerExporter() {
        nodes.put("", new Node('5', 0755, mtime));
    }

    /** The bytes of a Unicode string in UTF-8, one char per byte. */
    static String utf8(String s) {
        return new String(s.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
    }

    /** The mtime of what is created from here on (an engine's files, or an image's). */
    TreeNormalizerExporter mtime(long t) {
        mtime = t;
        return this;
    }

    Node root() {
        return nodes.get("");
    }

    /** The inode at {@code path}, or null. */
    Node node(String path) {
        return nodes.get(path);
    }

    /** The directory at {@code path}, created (0755) if missing. */
    Node dir(String path) {
        Node n = nodes.get(path);
        if (n == null) {
            return add(path, new Node('5', 0755, mtime));
        }
        if (n.type != '5') {
            throw new IllegalArgumentException(path + " is not a directory");
        }
        return n;
    }

    Node dir(String path, long mode) {
        return dir(path).mode(mode);
    }

    Node file(String path, String content) {
        return file(path, content.getBytes(StandardCharsets.ISO_8859_1));
    }

    Node file(String path, byte[] content) {
        Node n = add(path, new Node('0', 0644, mtime));
        n.content = content.clone();
        return n;
    }

    Node symlink(String path, String target) {
        Node n = add(path, new Node('2', 0777, mtime));
        n.target = target;
        return n;
    }

    /** A character ('3') or block ('4') device; char 0/0 is how overlayfs marks a deleted file. */
    Node device(String path, char type, long major, long minor) {
        Node n = add(path, new Node(type, 0644, mtime));
        n.devMajor = major;
        n.devMinor = minor;
        return n;
    }

    Node fifo(String path) {
        return add(path, new Node('6', 0644, mtime));
    }

    /** Another path to the inode at {@code existing}. */
    Node hardlink(String path, String existing) {
        Node n = nodes.get(existing);
        if (n == null || n.type == '5') {
            throw new IllegalArgumentException(existing + ": no file to link to");
        }
        return add(path, n);
    }

    private Node add(String path, Node n) {
        if (path.isEmpty() || nodes.containsKey(path)) {
            throw new IllegalArgumentException("./" + path + " exists already");
        }
        int slash = path.lastIndexOf('/');
        String parent = slash < 0 ? "" : path.substring(0, slash);
        dir(parent);
        children.computeIfAbsent(parent, k -> new TreeSet<>()).add(path.substring(slash + 1));
        nodes.put(path, n);
        return n;
    }

    /** Every path in the order of the walk ("" is the root). */
    List<String> walkOrder() {
        List<String> out = new ArrayList<>();
        walk("", out);
        return out;
    }

    private void walk(String rel, List<String> out) {
        out.add(rel);
        // A TreeSet of one-char-per-byte strings is in bytewise order, as Go's sort.Strings.
        for (String child : children.getOrDefault(rel, new TreeSet<>())) {
            walk(rel.isEmpty() ? child : rel + "/" + child, out);
        }
    }

    Path write(Path tar) throws IOException {
        Files.write(tar, toTar());
        return tar;
    }

    /** The tar the exporter writes for this tree. */
    byte[] toTar() {
        Map<Node, Integer> links = new IdentityHashMap<>();
        for (Node n : nodes.values()) {
            links.merge(n, 1, Integer::sum);
        }
        Map<Node, String> first = new IdentityHashMap<>();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (String rel : walkOrder()) {
            Node n = nodes.get(rel);
            // exporter.entry(): the header is filled from the inode's stat first.
            Header h = new Header();
            h.name = "./" + rel;
            h.mode = n.mode & 07777;
            h.uid = n.uid;
            h.gid = n.gid;
            h.mtime = n.mtime;
            if (n.type != '5' && links.get(n) > 1) {
                String target = first.putIfAbsent(n, h.name);
                if (target != null) {
                    h.type = '1';
                    h.linkname = target;
                    writeHeader(out, h);
                    continue;
                }
            }
            h.type = n.type;
            switch (n.type) {
                case '5' -> {
                    if (!rel.isEmpty()) {
                        h.name += "/";
                    }
                }
                case '0' -> h.size = n.content.length;
                case '2' -> h.linkname = n.target;
                case '3', '4' -> {
                    h.devMajor = n.devMajor;
                    h.devMinor = n.devMinor;
                }
                default -> {
                }
            }
            for (Map.Entry<String, String> x : n.xattrs.entrySet()) {
                h.pax.put("SCHILY.xattr." + x.getKey(), x.getValue());
            }
            writeHeader(out, h);
            if (n.type == '0') {
                out.write(n.content, 0, n.content.length);
                out.write(new byte[padding(n.content.length)], 0, padding(n.content.length));
            }
        }
        // Writer.Close: two zero blocks.
        out.write(new byte[2 * BLOCK], 0, 2 * BLOCK);
        return out.toByteArray();
    }

    /** The fields of a tar.Header the exporter sets. */
    private static final class Header {
        String name;
        String linkname = "";
        char type;
        long mode;
        long uid;
        long gid;
        long size;
        long mtime;
        long devMajor;
        long devMinor;
        /** PAXRecords: the xattrs. */
        final TreeMap<String, String> pax = new TreeMap<>();
    }

    /** Writer.WriteHeader for a header with {@code Format: FormatPAX}. */
    private static void writeHeader(ByteArrayOutputStream out, Header h) {
        // Header.allowedFormats, for what the exporter can put in a header.
        boolean ustar = h.pax.isEmpty(); // "only PAX supports PAXRecords"
        TreeMap<String, String> records = new TreeMap<>(h.pax);
        if (!isAscii(h.name) || h.name.length() > NAME_SIZE) {
            records.put("path", h.name);
            if (splitUstarPath(h.name) == null) {
                ustar = false;
            }
        }
        if (!isAscii(h.linkname) || h.linkname.length() > NAME_SIZE) {
            records.put("linkpath", h.linkname);
            ustar = false;
        }
        ustar &= numeric(records, "uid", h.uid, 8);
        ustar &= numeric(records, "gid", h.gid, 8);
        ustar &= numeric(records, "size", h.size, 12);
        ustar &= numeric(records, "mtime", h.mtime, 12); // whole seconds: formatPAXTime is the number
        if (!fitsInOctal(8, h.mode) || !fitsInOctal(8, h.devMajor) || !fitsInOctal(8, h.devMinor)) {
            throw new IllegalArgumentException(h.name + ": PAX cannot encode the mode or device");
        }

        byte[] blk = new byte[BLOCK];
        if (ustar) {
            // writeUSTARHeader
            String[] split = splitUstarPath(h.name);
            template(blk, split != null ? split[1] : h.name, h.linkname, h);
            formatString(blk, 345, PREFIX_SIZE, split != null ? split[0] : "");
        } else {
            // writePAXHeader: the records, sorted by key, in a file of their own...
            StringBuilder data = new StringBuilder();
            for (Map.Entry<String, String> r : records.entrySet()) {
                data.append(formatPaxRecord(r.getKey(), r.getValue()));
            }
            int slash = h.name.lastIndexOf('/');
            writeRawFile(out, pathJoin(h.name.substring(0, slash + 1), "PaxHeaders.0", h.name.substring(slash + 1)),
                    data.toString().getBytes(StandardCharsets.ISO_8859_1));
            // ...then the main header, its strings cut to ASCII.
            template(blk, toAscii(h.name), toAscii(h.linkname), h);
        }
        setFormatAndChecksum(blk);
        out.write(blk, 0, BLOCK);
    }

    /** verifyNumeric: a number USTAR's octal field cannot hold goes into a record. */
    private static boolean numeric(Map<String, String> records, String key, long value, int field) {
        if (fitsInOctal(field, value)) {
            return true;
        }
        records.put(key, Long.toString(value));
        return false;
    }

    /** templateV7Plus with formatOctal, which writes 0 where a number does not fit. */
    private static void template(byte[] blk, String name, String linkname, Header h) {
        blk[156] = (byte) h.type;
        formatString(blk, 0, NAME_SIZE, name);
        formatString(blk, 157, NAME_SIZE, linkname);
        formatOctal(blk, 100, 8, h.mode);
        formatOctal(blk, 108, 8, h.uid);
        formatOctal(blk, 116, 8, h.gid);
        formatOctal(blk, 124, 12, h.size);
        formatOctal(blk, 136, 12, h.mtime);
        formatString(blk, 265, 32, ""); // Uname: the exporter sets none
        formatString(blk, 297, 32, ""); // Gname
        formatOctal(blk, 329, 8, h.devMajor);
        formatOctal(blk, 337, 8, h.devMinor);
    }

    /** writeRawFile: a minimal 'x' header, then the records. */
    private static void writeRawFile(ByteArrayOutputStream out, String name, byte[] data) {
        String n = toAscii(name);
        if (n.length() > NAME_SIZE) {
            n = n.substring(0, NAME_SIZE);
        }
        while (n.endsWith("/")) {
            n = n.substring(0, n.length() - 1);
        }
        byte[] blk = new byte[BLOCK];
        blk[156] = 'x';
        formatString(blk, 0, NAME_SIZE, n);
        formatOctal(blk, 100, 8, 0);
        formatOctal(blk, 108, 8, 0);
        formatOctal(blk, 116, 8, 0);
        formatOctal(blk, 124, 12, data.length);
        formatOctal(blk, 136, 12, 0);
        setFormatAndChecksum(blk);
        out.write(blk, 0, BLOCK);
        out.write(data, 0, data.length);
        out.write(new byte[padding(data.length)], 0, padding(data.length));
    }

    /** block.setFormat(FormatUSTAR | FormatPAX): magic "ustar\0", version "00", then the checksum. */
    private static void setFormatAndChecksum(byte[] blk) {
        byte[] magic = {'u', 's', 't', 'a', 'r', 0, '0', '0'};
        System.arraycopy(magic, 0, blk, 257, magic.length);
        long sum = 0;
        for (int i = 0; i < BLOCK; i++) {
            sum += (i >= 148 && i < 156) ? ' ' : blk[i] & 0xff;
        }
        formatOctal(blk, 148, 7, sum);
        blk[155] = ' ';
    }

    /** formatString: copies what fits, NUL-terminates if there is room, drops slashes it cut at. */
    private static void formatString(byte[] blk, int off, int len, String s) {
        byte[] b = s.getBytes(StandardCharsets.ISO_8859_1);
        System.arraycopy(b, 0, blk, off, Math.min(len, b.length));
        if (b.length < len) {
            blk[off + b.length] = 0;
        }
        if (b.length > len && blk[off + len - 1] == '/') {
            int n = len;
            while (n > 0 && b[n - 1] == '/') {
                n--;
            }
            blk[off + n] = 0;
        }
    }

    /** formatOctal: zero-padded, leaving room for a NUL; 0 when the value does not fit. */
    private static void formatOctal(byte[] blk, int off, int len, long x) {
        String s = Long.toOctalString(fitsInOctal(len, x) ? x : 0);
        if (len - s.length() - 1 > 0) {
            s = "0".repeat(len - s.length() - 1) + s;
        }
        formatString(blk, off, len, s);
    }

    private static boolean fitsInOctal(int n, long x) {
        return x >= 0 && (n >= 22 || x < 1L << ((n - 1) * 3));
    }

    /** splitUSTARPath: {prefix, suffix}, or null. */
    private static String[] splitUstarPath(String name) {
        int length = name.length();
        if (length <= NAME_SIZE || !isAscii(name)) {
            return null;
        } else if (length > PREFIX_SIZE + 1) {
            length = PREFIX_SIZE + 1;
        } else if (name.charAt(length - 1) == '/') {
            length--;
        }
        int i = name.substring(0, length).lastIndexOf('/');
        int nlen = name.length() - i - 1;
        if (i <= 0 || nlen > NAME_SIZE || nlen == 0 || i > PREFIX_SIZE) {
            return null;
        }
        return new String[] {name.substring(0, i), name.substring(i + 1)};
    }

    /** formatPAXRecord: "LEN key=value\n", the length counting itself. */
    private static String formatPaxRecord(String k, String v) {
        int size = k.length() + v.length() + 3;
        size += Integer.toString(size).length();
        String record = size + " " + k + "=" + v + "\n";
        if (record.length() != size) {
            size = record.length();
            record = size + " " + k + "=" + v + "\n";
        }
        return record;
    }

    /**
     * Go's isASCII ranges over runes: a byte of 0x80 and above, alone or in a UTF-8 sequence, is
     * never ASCII; neither is NUL.
     */
    private static boolean isAscii(String s) {
        return s.chars().allMatch(c -> c != 0 && c < 0x80);
    }

    /** toASCII drops whole runes of 0x80 and above, so every byte of 0x80 and above, and NULs. */
    private static String toAscii(String s) {
        StringBuilder sb = new StringBuilder();
        s.chars().filter(c -> c != 0 && c < 0x80).forEach(c -> sb.append((char) c));
        return sb.toString();
    }

    /** path.Join: the non-empty elements joined by slashes, then path.Clean. */
    private static String pathJoin(String... elems) {
        List<String> parts = new ArrayList<>();
        for (String e : elems) {
            if (!e.isEmpty()) {
                parts.add(e);
            }
        }
        return parts.isEmpty() ? "" : pathClean(String.join("/", parts));
    }

    /** path.Clean. */
    private static String pathClean(String p) {
        boolean rooted = p.startsWith("/");
        Deque<String> out = new ArrayDeque<>();
        for (String c : p.split("/")) {
            if (c.isEmpty() || c.equals(".")) {
                continue;
            }
            if (c.equals("..")) {
                if (!out.isEmpty() && !out.peekLast().equals("..")) {
                    out.removeLast();
                } else if (!rooted) {
                    out.addLast("..");
                }
            } else {
                out.addLast(c);
            }
        }
        String r = (rooted ? "/" : "") + String.join("/", out);
        return r.isEmpty() ? "." : r;
    }

    private static int padding(long size) {
        return (int) ((BLOCK - size % BLOCK) % BLOCK);
    }
}
