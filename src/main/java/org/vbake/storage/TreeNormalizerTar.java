package org.vbake.storage;

import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;
import org.vbake.api.BadInputException;

/**
 * The tar reading and writing behind {@link TreeNormalizer}: headers are read without their
 * contents (which stay in the input file, found again by offset), and written back exactly as the
 * guest's exporter (Go's archive/tar, PAX format) would write them, so an entry that needs no
 * change keeps its bytes. Names, link targets and PAX values are held as ISO-8859-1 strings: one
 * char per byte, so names that are not UTF-8 and binary xattr values (security.capability) go
 * through untouched, and comparing chars is comparing unsigned bytes.
 */
final class TreeNormalizerTar {

    static final int BLOCK = 512;

    private static final int NAME_SIZE = 100;
    private static final int PREFIX_SIZE = 155;

    private TreeNormalizerTar() {
    }

    /** One tar entry: its header, and where its content lies in the input file. */
    static final class Entry {
        /** Path below the root without "./" or a trailing slash; "" is the root itself. */
        String path;
        byte type;
        long mode;
        long uid;
        long gid;
        long size;
        long mtime;
        /** Symlink target as written; for a hardlink the target's path (cleaned like {@link #path}). */
        String linkname = "";
        String uname = "";
        String gname = "";
        long devMajor;
        long devMinor;
        /** PAX records other than the ones rebuilt from the fields above (path, size, uid...); null if none. */
        TreeMap<String, String> records;
        /** Offset of the content in the input file. */
        long dataOffset;
        /** Replacement content; null keeps the input's. */
        byte[] newContent;
        /** Position in the output order, once sorted. */
        int order;

        boolean isDir() {
            return type == '5';
        }

        boolean isHardlink() {
            return type == '1';
        }

        boolean isSymlink() {
            return type == '2';
        }

        boolean isRegular() {
            return type == '0' || type == '7';
        }

        boolean hasData() {
            return type != '1' && type != '2' && type != '3' && type != '4' && type != '5' && type != '6';
        }

        /** The name as the exporter writes it: "./", "./dir/", "./file". */
        String tarName() {
            if (path.isEmpty()) {
                return "./";
            }
            return isDir() ? "./" + path + "/" : "./" + path;
        }

        String tarLinkname() {
            return isHardlink() ? "./" + linkname : linkname;
        }

        long outputSize() {
            return newContent != null ? newContent.length : size;
        }
    }

    static byte[] bytes(String latin1) {
        return latin1.getBytes(StandardCharsets.ISO_8859_1);
    }

    /**
     * Cleans a tar name to a path below the root: no "./" prefix, no trailing slash, "" for the
     * root. Absolute names and names that climb out are refused, as the importer refuses them.
     */
    static String cleanPath(String name, String what) throws BadInputException {
        String n = name;
        while (n.startsWith("./")) {
            n = n.substring(2);
        }
        while (n.endsWith("/")) {
            n = n.substring(0, n.length() - 1);
        }
        if (n.equals(".")) {
            n = "";
        }
        if (name.startsWith("/") || n.equals("..") || n.startsWith("../") || n.endsWith("/..")
                || n.contains("/../") || n.contains("//") || n.contains("/./") || n.endsWith("/.")) {
            throw new BadInputException(what + " " + name + ": not a clean path below the root");
        }
        return n;
    }

    /**
     * Reads headers one by one through a large buffer, skipping contents by position, so a tree of
     * gigabytes costs one pass over its headers.
     */
    static final class Reader {
        private final FileChannel channel;
        private final long fileSize;
        private final String file;
        private final ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        private long bufStart = -1;
        private int bufLen;
        private long pos;

        Reader(FileChannel channel, String file) throws IOException {
            this.channel = channel;
            this.fileSize = channel.size();
            this.file = file;
        }

        /** The next entry, or null at the end of the archive. */
        Entry next() throws IOException, BadInputException {
            TreeMap<String, String> pax = null;
            String longName = null;
            String longLink = null;
            while (true) {
                long at = pos;
                byte[] h = block(pos);
                if (h == null) {
                    return null; // EOF on a block boundary: as good as the end marker
                }
                if (isZero(h)) {
                    return null;
                }
                verifyChecksum(h, at);
                byte type = h[156];
                long size = number(h, 124, 12, at);
                if (size < 0) {
                    throw bad(at, "negative size");
                }
                long data = pos + BLOCK;
                long next = data + padded(size);
                if (type == 'x' || type == 'L' || type == 'K') {
                    if (size > (64 << 20) || next > fileSize) {
                        throw bad(at, "extended header of " + size + " bytes");
                    }
                    byte[] content = read(data, (int) size);
                    pos = next;
                    if (type == 'x') {
                        if (pax == null) {
                            pax = new TreeMap<>();
                        }
                        parsePax(content, pax, at);
                    } else {
                        int end = content.length;
                        while (end > 0 && content[end - 1] == 0) {
                            end--;
                        }
                        String s = new String(content, 0, end, StandardCharsets.ISO_8859_1);
                        if (type == 'L') {
                            longName = s;
                        } else {
                            longLink = s;
                        }
                    }
                    continue;
                }
                if (type == 'g') {
                    throw bad(at, "global PAX header; the exporter never writes one");
                }
                if (type == 'S' || type == 'V' || type == 'M' || type == 'N') {
                    throw bad(at, "GNU entry type '" + (char) type + "' is not supported");
                }
                boolean posix = h[257] == 'u' && h[258] == 's' && h[259] == 't' && h[260] == 'a' && h[261] == 'r'
                        && h[262] == 0;
                boolean gnu = h[257] == 'u' && h[262] == ' ';
                Entry e = new Entry();
                String name = string(h, 0, NAME_SIZE);
                if (posix) {
                    String prefix = string(h, 345, PREFIX_SIZE);
                    if (!prefix.isEmpty()) {
                        name = prefix + "/" + name;
                    }
                }
                if (longName != null) {
                    name = longName;
                }
                e.type = type == 0 ? (byte) (name.endsWith("/") ? '5' : '0') : type;
                e.mode = number(h, 100, 8, at);
                e.uid = number(h, 108, 8, at);
                e.gid = number(h, 116, 8, at);
                e.size = size;
                e.mtime = number(h, 136, 12, at);
                String link = string(h, 157, NAME_SIZE);
                if (longLink != null) {
                    link = longLink;
                }
                if (posix || gnu) {
                    e.uname = string(h, 265, 32);
                    e.gname = string(h, 297, 32);
                    e.devMajor = number(h, 329, 8, at);
                    e.devMinor = number(h, 337, 8, at);
                }
                if (pax != null) {
                    for (Map.Entry<String, String> r : pax.entrySet()) {
                        String k = r.getKey();
                        String v = r.getValue();
                        switch (k) {
                            case "path" -> name = v;
                            case "linkpath" -> link = v;
                            case "size" -> e.size = paxNumber(v, k, at);
                            case "uid" -> e.uid = paxNumber(v, k, at);
                            case "gid" -> e.gid = paxNumber(v, k, at);
                            case "uname" -> e.uname = v;
                            case "gname" -> e.gname = v;
                            default -> {
                                if (k.startsWith("GNU.sparse.")) {
                                    throw bad(at, "sparse files are not supported");
                                }
                                if (e.records == null) {
                                    e.records = new TreeMap<>();
                                }
                                e.records.put(k, v);
                            }
                        }
                    }
                }
                e.path = cleanPath(name, "entry");
                e.linkname = e.isHardlink() ? cleanPath(link, "hardlink target") : link;
                if (!e.hasData()) {
                    e.size = 0;
                }
                e.dataOffset = data;
                // Like Go's reader: a header-only type has no content, whatever its size field says.
                next = data + (e.hasData() ? padded(e.size) : 0);
                if (next > fileSize) {
                    throw bad(at, "truncated archive: " + e.tarName() + " needs " + e.size + " bytes");
                }
                pos = next;
                return e;
            }
        }

        /** Reads {@code len} bytes at {@code offset}. */
        byte[] read(long offset, int len) throws IOException {
            byte[] out = new byte[len];
            ByteBuffer b = ByteBuffer.wrap(out);
            long p = offset;
            while (b.hasRemaining()) {
                int n = channel.read(b, p);
                if (n < 0) {
                    throw new EOFException(file + ": truncated at byte " + p);
                }
                p += n;
            }
            return out;
        }

        private byte[] block(long offset) throws IOException, BadInputException {
            if (offset + BLOCK > fileSize) {
                if (offset == fileSize) {
                    return null;
                }
                throw bad(offset, "truncated header");
            }
            if (bufStart < 0 || offset < bufStart || offset + BLOCK > bufStart + bufLen) {
                buf.clear();
                long p = offset;
                while (buf.hasRemaining()) {
                    int n = channel.read(buf, p);
                    if (n <= 0) {
                        break;
                    }
                    p += n;
                }
                bufStart = offset;
                bufLen = buf.position();
            }
            byte[] h = new byte[BLOCK];
            System.arraycopy(buf.array(), (int) (offset - bufStart), h, 0, BLOCK);
            return h;
        }

        private BadInputException bad(long at, String why) {
            return new BadInputException(file + ": " + why + " (header at byte " + at + ")");
        }

        private void verifyChecksum(byte[] h, long at) throws BadInputException {
            long stored = number(h, 148, 8, at);
            long unsigned = 0;
            long signed = 0;
            for (int i = 0; i < BLOCK; i++) {
                int b = (i >= 148 && i < 156) ? ' ' : h[i];
                unsigned += b & 0xff;
                signed += b;
            }
            if (stored != unsigned && stored != signed) {
                throw bad(at, "not a tar archive (bad header checksum)");
            }
        }

        private long number(byte[] h, int off, int len, long at) throws BadInputException {
            if ((h[off] & 0x80) != 0) {
                // GNU base-256: two's complement, big-endian, top bit of the first byte is the marker.
                long v = (h[off] & 0x40) != 0 ? -1 : 0;
                v = (v << 6) | (h[off] & 0x3f);
                for (int i = 1; i < len; i++) {
                    v = (v << 8) | (h[off + i] & 0xff);
                }
                return v;
            }
            long v = 0;
            int i = off;
            int end = off + len;
            while (i < end && (h[i] == ' ' || h[i] == 0)) {
                i++;
            }
            for (; i < end && h[i] != ' ' && h[i] != 0; i++) {
                if (h[i] < '0' || h[i] > '7') {
                    throw bad(at, "bad octal number in header");
                }
                v = (v << 3) | (h[i] - '0');
            }
            return v;
        }

        private long paxNumber(String v, String key, long at) throws BadInputException {
            try {
                return Long.parseLong(v);
            } catch (NumberFormatException e) {
                throw bad(at, "bad PAX " + key + " record '" + v + "'");
            }
        }

        private void parsePax(byte[] data, Map<String, String> into, long at) throws BadInputException {
            int i = 0;
            while (i < data.length) {
                if (data[i] == 0) {
                    break; // padding some writers leave
                }
                int sp = i;
                while (sp < data.length && data[sp] != ' ') {
                    sp++;
                }
                int len;
                try {
                    len = Integer.parseInt(new String(data, i, sp - i, StandardCharsets.US_ASCII));
                } catch (NumberFormatException e) {
                    throw bad(at, "bad PAX record length");
                }
                int end = i + len;
                if (len <= 0 || end > data.length || data[end - 1] != '\n') {
                    throw bad(at, "bad PAX record");
                }
                int eq = sp + 1;
                while (eq < end && data[eq] != '=') {
                    eq++;
                }
                if (eq >= end) {
                    throw bad(at, "PAX record without '='");
                }
                String key = new String(data, sp + 1, eq - sp - 1, StandardCharsets.ISO_8859_1);
                String value = new String(data, eq + 1, end - 1 - (eq + 1), StandardCharsets.ISO_8859_1);
                into.put(key, value);
                i = end;
            }
        }

        private static String string(byte[] h, int off, int len) {
            int end = off;
            while (end < off + len && h[end] != 0) {
                end++;
            }
            return end == off ? "" : new String(h, off, end - off, StandardCharsets.ISO_8859_1);
        }
    }

    static long padded(long size) {
        return (size + BLOCK - 1) / BLOCK * BLOCK;
    }

    private static boolean isZero(byte[] h) {
        for (byte b : h) {
            if (b != 0) {
                return false;
            }
        }
        return true;
    }

    /**
     * Writes headers the way Go's archive/tar writes a {@code Format: PAX} header from the exporter:
     * plain USTAR (with the prefix field for long names) when nothing needs PAX, otherwise a PAX
     * extended header named {@code dir/PaxHeaders.0/file} with the records in key order.
     */
    static final class Writer {
        private final OutputStream out;

        Writer(OutputStream out) {
            this.out = out;
        }

        void writeHeader(Entry e) throws IOException {
            String name = e.tarName();
            String link = e.tarLinkname();
            long size = e.outputSize();
            TreeMap<String, String> pax = new TreeMap<>();
            if (e.records != null) {
                pax.putAll(e.records);
            }
            boolean ustar = pax.isEmpty();
            // What USTAR cannot hold goes into records; USTAR stays possible only for a long
            // ASCII name it can split.
            if (!isAscii(name) || name.length() > NAME_SIZE) {
                pax.put("path", name);
                if (splitUstar(name) == null) {
                    ustar = false;
                }
            }
            if (!isAscii(link) || link.length() > NAME_SIZE) {
                pax.put("linkpath", link);
                ustar = false;
            }
            if (!isAscii(e.uname) || e.uname.length() > 32) {
                pax.put("uname", e.uname);
                ustar = false;
            }
            if (!isAscii(e.gname) || e.gname.length() > 32) {
                pax.put("gname", e.gname);
                ustar = false;
            }
            if (!fitsOctal(8, e.uid)) {
                pax.put("uid", Long.toString(e.uid));
                ustar = false;
            }
            if (!fitsOctal(8, e.gid)) {
                pax.put("gid", Long.toString(e.gid));
                ustar = false;
            }
            if (!fitsOctal(12, size)) {
                pax.put("size", Long.toString(size));
                ustar = false;
            }
            if (!fitsOctal(12, e.mtime)) {
                pax.putIfAbsent("mtime", Long.toString(e.mtime));
                ustar = false;
            }
            if (!fitsOctal(8, e.mode) || !fitsOctal(8, e.devMajor) || !fitsOctal(8, e.devMinor)) {
                throw new IOException(name + ": mode or device number too large for a tar header");
            }
            byte[] h = new byte[BLOCK];
            if (ustar) {
                String[] split = name.length() > NAME_SIZE ? splitUstar(name) : null;
                template(h, split != null ? split[1] : name, link, e, size, false);
                if (split != null) {
                    putString(h, 345, PREFIX_SIZE, split[0]);
                }
            } else {
                StringBuilder data = new StringBuilder();
                for (Map.Entry<String, String> r : pax.entrySet()) {
                    data.append(paxRecord(r.getKey(), r.getValue()));
                }
                writeRawFile(paxHeaderName(name), bytes(data.toString()));
                template(h, toAscii(name), toAscii(link), e, size, true);
            }
            finish(h);
            write(h);
        }

        /** Copies content; the caller writes exactly the header's size and then calls {@link #pad}. */
        void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
        }

        void write(byte[] b) throws IOException {
            write(b, 0, b.length);
        }

        void pad(long size) throws IOException {
            int rest = (int) (padded(size) - size);
            if (rest > 0) {
                write(new byte[rest]);
            }
        }

        /** The end-of-archive marker: two zero blocks, as Go writes it (no padding to a record size). */
        void close() throws IOException {
            write(new byte[2 * BLOCK]);
            out.flush();
        }

        private void writeRawFile(String name, byte[] data) throws IOException {
            byte[] h = new byte[BLOCK];
            String n = toAscii(name);
            if (n.length() > NAME_SIZE) {
                n = n.substring(0, NAME_SIZE);
            }
            while (n.endsWith("/")) {
                n = n.substring(0, n.length() - 1);
            }
            h[156] = 'x';
            putString(h, 0, NAME_SIZE, n);
            putOctal(h, 100, 8, 0);
            putOctal(h, 108, 8, 0);
            putOctal(h, 116, 8, 0);
            putOctal(h, 124, 12, data.length);
            putOctal(h, 136, 12, 0);
            finish(h);
            write(h);
            write(data);
            pad(data.length);
        }

        private static void template(byte[] h, String name, String link, Entry e, long size, boolean lenient) {
            h[156] = e.type;
            putString(h, 0, NAME_SIZE, name);
            putString(h, 157, NAME_SIZE, link);
            putOctal(h, 100, 8, e.mode);
            putOctal(h, 108, 8, fitsOctal(8, e.uid) ? e.uid : 0);
            putOctal(h, 116, 8, fitsOctal(8, e.gid) ? e.gid : 0);
            putOctal(h, 124, 12, fitsOctal(12, size) ? size : 0);
            putOctal(h, 136, 12, fitsOctal(12, e.mtime) ? e.mtime : 0);
            putString(h, 265, 32, lenient ? toAscii(e.uname) : e.uname);
            putString(h, 297, 32, lenient ? toAscii(e.gname) : e.gname);
            putOctal(h, 329, 8, e.devMajor);
            putOctal(h, 337, 8, e.devMinor);
        }

        /** Sets the USTAR magic and the checksum (six octal digits, NUL, space). */
        private static void finish(byte[] h) {
            System.arraycopy(new byte[] {'u', 's', 't', 'a', 'r', 0, '0', '0'}, 0, h, 257, 8);
            long sum = 0;
            for (int i = 0; i < BLOCK; i++) {
                sum += (i >= 148 && i < 156) ? ' ' : (h[i] & 0xff);
            }
            putOctal(h, 148, 7, sum);
            h[155] = ' ';
        }
    }

    /** Go's path.Join(dir, "PaxHeaders.0", file) for the exporter's clean "./" names. */
    static String paxHeaderName(String name) {
        int slash = name.lastIndexOf('/');
        String dir = name.substring(0, slash + 1);
        String file = name.substring(slash + 1);
        String d = dir;
        while (d.startsWith("./")) {
            d = d.substring(2);
        }
        while (d.endsWith("/")) {
            d = d.substring(0, d.length() - 1);
        }
        StringBuilder sb = new StringBuilder();
        if (!d.isEmpty() && !d.equals(".")) {
            sb.append(d).append('/');
        }
        sb.append("PaxHeaders.0");
        if (!file.isEmpty()) {
            sb.append('/').append(file);
        }
        return sb.toString();
    }

    /** Go's formatPAXRecord: the length counts itself. */
    static String paxRecord(String key, String value) {
        int size = key.length() + value.length() + 3;
        size += Integer.toString(size).length();
        String record = size + " " + key + "=" + value + "\n";
        if (record.length() != size) {
            size = record.length();
            record = size + " " + key + "=" + value + "\n";
        }
        return record;
    }

    /** Go's splitUSTARPath: {prefix, suffix}, or null when the name cannot be split. */
    static String[] splitUstar(String name) {
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

    static boolean isAscii(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c >= 0x80 || c == 0) {
                return false;
            }
        }
        return true;
    }

    /** Go's toASCII: bytes of 0x80 and above (any part of a multi-byte or invalid sequence) and NULs dropped. */
    static String toAscii(String s) {
        if (isAscii(s)) {
            return s;
        }
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x80 && c != 0) {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    static boolean fitsOctal(int fieldLen, long x) {
        int bits = (fieldLen - 1) * 3;
        return x >= 0 && (fieldLen >= 22 || x < (1L << bits));
    }

    /** Go's formatString: truncates silently; a name cut at a slash loses its trailing slashes. */
    private static void putString(byte[] h, int off, int len, String s) {
        byte[] b = bytes(s);
        System.arraycopy(b, 0, h, off, Math.min(len, b.length));
        if (b.length < len) {
            h[off + b.length] = 0;
        }
        if (b.length > len && h[off + len - 1] == '/') {
            int n = len;
            while (n > 0 && b[n - 1] == '/') {
                n--;
            }
            h[off + n] = 0;
        }
    }

    /** Go's formatOctal: zero-padded, leaving room for a NUL. */
    private static void putOctal(byte[] h, int off, int len, long x) {
        String s = Long.toOctalString(x);
        int n = len - s.length() - 1;
        if (n > 0) {
            s = "0".repeat(n) + s;
        }
        putString(h, off, len, s);
    }
}
