package org.vbake.storage;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Reads an uncompressed layer tar the way the engines do: headers parsed as Go's archive/tar
 * (vbatts/tar-split's fork, which both engines run every layer through) parses them, the raw bytes
 * between file contents handed to a {@link TarSplit.Packer}, and each entry with its content handed
 * to a visitor. Anything the engines would read differently from what this class can prove it
 * reads the same (sparse files, unknown entry types, malformed headers) ends the read with
 * {@link NotMirroredException}: the host writer then leaves the layer to the engine.
 *
 * <p>Names, link targets and PAX values are ISO-8859-1 strings, one char per byte, as in
 * {@link TreeNormalizerTar}.
 */
public final class LayerTar {

    static final int BLOCK = 512;

    /** Entry types; the engines give the others an error or a meaning this class does not mirror. */
    public static final byte REG = '0';
    public static final byte LINK = '1';
    public static final byte SYMLINK = '2';
    public static final byte CHAR = '3';
    public static final byte BLOCK_DEV = '4';
    public static final byte DIR = '5';
    public static final byte FIFO = '6';
    public static final byte GLOBAL = 'g';

    private static final long MAX_SECONDS = 9223372036L; // Go's maxTime, time.Unix(0, 1<<63-1)

    private LayerTar() {
    }

    /**
     * One entry as Go's reader returns it.
     *
     * @param name       the name as parsed (PAX path, GNU long name, prefix joined), not cleaned
     * @param type       one of the constants above (a pre-POSIX '\0' is already '0' or '5')
     * @param size       the size as parsed; header-only types may declare one and still have no content
     * @param mtime      whole seconds of the modification time, rounded down
     * @param mtimeNanos the nanoseconds past {@code mtime}
     * @param xattrs     SCHILY.xattr.* records by attribute name, in key order
     */
    public record Header(String name, byte type, long mode, long uid, long gid, long size, long mtime,
            long mtimeNanos, String linkname, long devMajor, long devMinor, Map<String, String> xattrs) {

        /** The mtime os.Chtimes leaves behind in both engines: times before 1970 or after 2262 become 0. */
        public long boundedMtime() {
            return mtime < 0 || mtime > MAX_SECONDS ? 0 : mtime;
        }

        /** Whether the content that follows the header is the file's (regular files only). */
        public boolean hasContent() {
            return type == REG;
        }
    }

    /** Gets each entry; {@code content} holds exactly the entry's content (empty unless regular). */
    public interface Visitor {
        void entry(Header header, InputStream content) throws IOException, NotMirroredException;
    }

    /** What a read found. */
    public record Summary(long bytes, int entries) {
    }

    /**
     * Reads {@code in} to its end (bytes after the end-of-archive marker included, as the engines
     * read and hash them).
     */
    public static Summary read(InputStream in, TarSplit.Packer packer, Visitor visitor)
            throws IOException, NotMirroredException {
        return new Reader(in, packer).run(visitor);
    }

    private static final class Reader {
        private final InputStream in;
        private final TarSplit.Packer packer;
        private final byte[] block = new byte[BLOCK];
        private final byte[] buffer = new byte[1 << 16];
        private long bytes;
        private int entries;

        Reader(InputStream in, TarSplit.Packer packer) {
            this.in = in;
            this.packer = packer;
        }

        Summary run(Visitor visitor) throws IOException, NotMirroredException {
            long pad = 0;
            while (true) {
                Header h = next(pad);
                if (h == null) {
                    break;
                }
                long contentSize = h.hasContent() ? h.size() : 0;
                pad = pendingPad;
                TarSplit.Crc64 crc = new TarSplit.Crc64();
                ContentStream content = new ContentStream(contentSize, crc);
                visitor.entry(h, content);
                content.drain();
                entries++;
                packer.file(TreeNormalizerTar.bytes(h.name()), h.size(), h.size() > 0 ? crc.bigEndian() : null);
            }
            // What follows the end marker is read and kept too.
            for (int n; (n = in.read(buffer)) > 0; ) {
                bytes += n;
                packer.raw(buffer, 0, n);
            }
            packer.finish();
            return new Summary(bytes, entries);
        }

        /** The next entry, with the raw bytes before it accounted; null at the end of the archive. */
        private Header next(long pad) throws IOException, NotMirroredException {
            Map<String, String> pax = null;
            String longName = null;
            String longLink = null;
            while (true) {
                if (pad > 0) {
                    byte[] p = new byte[(int) pad];
                    readFully(p, p.length, "padding");
                    packer.raw(p);
                    pad = 0;
                }
                int n = readUpTo(block, BLOCK);
                packer.raw(block, 0, n);
                if (n == 0) {
                    return null; // end of stream where a header would start: Go takes it as the end
                }
                if (n < BLOCK) {
                    throw new NotMirroredException("the tar ends inside a header");
                }
                if (isZero(block)) {
                    n = readUpTo(block, BLOCK);
                    if (n == 0) {
                        return null;
                    }
                    if (n < BLOCK) {
                        throw new NotMirroredException("the tar ends inside its end marker");
                    }
                    packer.raw(block, 0, n);
                    if (isZero(block)) {
                        return null;
                    }
                    throw new NotMirroredException("a zero block followed by a header");
                }
                RawHeader raw = parse(block);
                byte type = raw.type;
                if (type == 'x' || type == 'g') {
                    byte[] data = readData(raw.size, "PAX header");
                    pad = padding(raw.size);
                    Map<String, String> records = parsePax(data);
                    if (type == 'g') {
                        Header g = new Header(raw.name, GLOBAL, 0, 0, 0, 0, 0, 0, "", 0, 0, Map.of());
                        checkNoSparse(records);
                        // Go returns the global header as an entry without a size; the padding of
                        // its records is read before the next header, after this entry's record.
                        pendingPad = pad;
                        return g;
                    }
                    pax = records;
                    continue;
                }
                if (type == 'L' || type == 'K') {
                    byte[] data = readData(raw.size, "GNU long name");
                    pad = padding(raw.size);
                    String s = cString(data, 0, data.length);
                    if (type == 'L') {
                        longName = s;
                    } else {
                        longLink = s;
                    }
                    continue;
                }
                return finish(raw, pax, longName, longLink);
            }
        }

        /** The padding to read before the next header, once the entry just returned is done. */
        private long pendingPad;

        private Header finish(RawHeader raw, Map<String, String> pax, String longName, String longLink)
                throws IOException, NotMirroredException {
            String name = raw.name;
            String link = raw.linkname;
            long uid = raw.uid;
            long gid = raw.gid;
            long size = raw.size;
            long mtime = raw.mtime;
            long nanos = 0;
            Map<String, String> xattrs = new TreeMap<>();
            if (pax != null) {
                checkNoSparse(pax);
                for (Map.Entry<String, String> r : pax.entrySet()) {
                    String k = r.getKey();
                    String v = r.getValue();
                    if (v.isEmpty()) {
                        if (k.startsWith("SCHILY.xattr.")) {
                            // docker 26 sets it with an empty value, docker 20.10 skips it.
                            throw new NotMirroredException("an extended attribute with an empty value ("
                                    + k.substring(13) + ")");
                        }
                        continue;
                    }
                    try {
                        switch (k) {
                            case "path" -> name = v;
                            case "linkpath" -> link = v;
                            case "uid" -> uid = Long.parseLong(v);
                            case "gid" -> gid = Long.parseLong(v);
                            case "size" -> size = Long.parseLong(v);
                            case "mtime" -> {
                                long[] t = paxTime(v);
                                mtime = t[0];
                                nanos = t[1];
                            }
                            case "atime", "ctime" -> paxTime(v);
                            default -> {
                                if (k.startsWith("SCHILY.xattr.")) {
                                    xattrs.put(k.substring(13), v);
                                }
                            }
                        }
                    } catch (NumberFormatException e) {
                        throw new NotMirroredException("a malformed PAX record " + k);
                    }
                }
            }
            if (longName != null && !longName.isEmpty()) {
                name = longName;
            }
            if (longLink != null && !longLink.isEmpty()) {
                link = longLink;
            }
            byte type = raw.type;
            if (type == 0) {
                type = name.endsWith("/") ? DIR : REG;
            }
            switch (type) {
                case REG, LINK, SYMLINK, CHAR, BLOCK_DEV, DIR, FIFO -> {
                }
                case 'S' -> throw new NotMirroredException("a sparse file (" + printable(name) + ")");
                default -> throw new NotMirroredException("an entry of type '" + (char) type + "' ("
                        + printable(name) + ")");
            }
            if (size < 0) {
                throw new NotMirroredException("a negative size");
            }
            Header h = new Header(name, type, raw.mode, uid, gid, size, mtime, nanos, link, raw.devMajor,
                    raw.devMinor, Collections.unmodifiableMap(xattrs));
            pendingPad = padding(h.hasContent() ? size : 0);
            return h;
        }

        private void checkNoSparse(Map<String, String> pax) throws NotMirroredException {
            for (String k : pax.keySet()) {
                if (k.startsWith("GNU.sparse.")) {
                    throw new NotMirroredException("a sparse file (PAX " + k + ")");
                }
            }
        }

        private byte[] readData(long size, String what) throws IOException, NotMirroredException {
            if (size < 0 || size > (16 << 20)) {
                throw new NotMirroredException("a " + what + " of " + size + " bytes");
            }
            byte[] data = new byte[(int) size];
            readFully(data, data.length, what);
            packer.raw(data);
            return data;
        }

        private void readFully(byte[] b, int len, String what) throws IOException, NotMirroredException {
            int n = readUpTo(b, len);
            if (n < len) {
                throw new NotMirroredException("the tar ends inside a " + what);
            }
        }

        private int readUpTo(byte[] b, int len) throws IOException {
            int n = 0;
            while (n < len) {
                int r = in.read(b, n, len - n);
                if (r < 0) {
                    break;
                }
                n += r;
            }
            bytes += n;
            return n;
        }

        /** Exactly {@code size} bytes of content, checksummed as they pass. */
        private final class ContentStream extends InputStream {
            private long left;
            private final TarSplit.Crc64 crc;

            ContentStream(long size, TarSplit.Crc64 crc) {
                this.left = size;
                this.crc = crc;
            }

            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (left == 0) {
                    return -1;
                }
                int n = in.read(b, off, (int) Math.min(len, left));
                if (n < 0) {
                    throw new EOFException("the tar ends inside a file's content");
                }
                left -= n;
                bytes += n;
                crc.update(b, off, n);
                return n;
            }

            void drain() throws IOException {
                while (left > 0) {
                    read(buffer, 0, (int) Math.min(buffer.length, left));
                }
            }
        }
    }

    /** A header block's own fields, before PAX records and GNU long names apply. */
    private record RawHeader(String name, byte type, long mode, long uid, long gid, long size, long mtime,
            String linkname, long devMajor, long devMinor) {
    }

    /** Go's readHeader for one non-zero block. */
    static RawHeader parse(byte[] h) throws NotMirroredException {
        long sum = octal(h, 148, 8, true);
        long unsigned = 0;
        long signed = 0;
        for (int i = 0; i < BLOCK; i++) {
            int b = i >= 148 && i < 156 ? ' ' : h[i];
            unsigned += b & 0xff;
            signed += (byte) b;
        }
        if (sum != unsigned && sum != signed) {
            throw new NotMirroredException("a tar header with a bad checksum");
        }
        String magic = new String(h, 257, 6, StandardCharsets.ISO_8859_1);
        String version = new String(h, 263, 2, StandardCharsets.ISO_8859_1);
        String trailer = new String(h, 508, 4, StandardCharsets.ISO_8859_1);
        boolean ustar = magic.equals("ustar\0");
        boolean star = ustar && trailer.equals("tar\0");
        boolean gnu = magic.equals("ustar ") && version.equals(" \0");
        String name = cString(h, 0, 100);
        String link = cString(h, 157, 100);
        long size = numeric(h, 124, 12);
        long mode = numeric(h, 100, 8);
        long uid = numeric(h, 108, 8);
        long gid = numeric(h, 116, 8);
        long mtime = numeric(h, 136, 12);
        long major = 0;
        long minor = 0;
        if (ustar || gnu) {
            major = numeric(h, 329, 8);
            minor = numeric(h, 337, 8);
            String prefix = "";
            if (star) {
                prefix = cString(h, 345, 131);
            } else if (ustar) {
                prefix = cString(h, 345, 155);
            } else if (h[345] != 0 || h[357] != 0) {
                // GNU atime/ctime fields that do not parse are an old Go writer's prefix; not mirrored.
                numeric(h, 345, 12);
                numeric(h, 357, 12);
            }
            if (!prefix.isEmpty()) {
                name = prefix + "/" + name;
            }
        }
        return new RawHeader(name, h[156], mode, uid, gid, size, mtime, link, major, minor);
    }

    /** Go's parseNumeric: base-256 when the top bit is set, else octal. */
    static long numeric(byte[] h, int off, int len) throws NotMirroredException {
        if ((h[off] & 0x80) != 0) {
            boolean negative = (h[off] & 0x40) != 0;
            int inv = negative ? 0xff : 0;
            long x = 0;
            for (int i = 0; i < len; i++) {
                int c = (h[off + i] & 0xff) ^ inv;
                if (i == 0) {
                    c &= 0x7f;
                }
                if ((x >>> 56) != 0) {
                    throw new NotMirroredException("a base-256 number too large");
                }
                x = (x << 8) | c;
            }
            if (x < 0) {
                throw new NotMirroredException("a base-256 number too large");
            }
            return negative ? ~x : x;
        }
        return octal(h, off, len, false);
    }

    private static long octal(byte[] h, int off, int len, boolean checksum) throws NotMirroredException {
        int start = off;
        int end = off + len;
        while (start < end && (h[start] == ' ' || h[start] == 0)) {
            start++;
        }
        while (end > start && (h[end - 1] == ' ' || h[end - 1] == 0)) {
            end--;
        }
        long v = 0;
        for (int i = start; i < end; i++) {
            if (h[i] == 0) {
                break; // Go parses up to the first NUL
            }
            if (h[i] < '0' || h[i] > '7') {
                throw new NotMirroredException(checksum ? "a tar header with a bad checksum"
                        : "a malformed number in a tar header");
            }
            if ((v >>> 61) != 0) {
                throw new NotMirroredException("a number too large in a tar header");
            }
            v = (v << 3) | (h[i] - '0');
        }
        return v;
    }

    /** Go's parseString: up to the first NUL. */
    static String cString(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) {
            end++;
        }
        return new String(b, off, end - off, StandardCharsets.ISO_8859_1);
    }

    /** Go's parsePAX (records in a map: a later one wins) with parsePAXRecord's checks. */
    static Map<String, String> parsePax(byte[] data) throws NotMirroredException {
        Map<String, String> records = new LinkedHashMap<>();
        String s = new String(data, StandardCharsets.ISO_8859_1);
        int pos = 0;
        while (pos < s.length()) {
            int sp = s.indexOf(' ', pos);
            if (sp < 0) {
                throw new NotMirroredException("a malformed PAX record");
            }
            long n;
            try {
                n = Long.parseLong(s.substring(pos, sp));
            } catch (NumberFormatException e) {
                throw new NotMirroredException("a malformed PAX record");
            }
            if (n < 5 || pos + n > s.length() || pos + n <= sp + 1) {
                throw new NotMirroredException("a malformed PAX record");
            }
            int end = (int) (pos + n);
            if (s.charAt(end - 1) != '\n') {
                throw new NotMirroredException("a malformed PAX record");
            }
            String rec = s.substring(sp + 1, end - 1);
            int eq = rec.indexOf('=');
            if (eq <= 0) {
                throw new NotMirroredException("a malformed PAX record");
            }
            String k = rec.substring(0, eq);
            String v = rec.substring(eq + 1);
            boolean nameLike = k.equals("path") || k.equals("linkpath") || k.equals("uname") || k.equals("gname");
            if (nameLike ? v.indexOf('\0') >= 0 : k.indexOf('\0') >= 0) {
                throw new NotMirroredException("a PAX record with a NUL");
            }
            if (k.equals("GNU.sparse.offset") || k.equals("GNU.sparse.numbytes")) {
                throw new NotMirroredException("a sparse file (PAX " + k + ")");
            }
            records.put(k, v);
            pos = end;
        }
        return records;
    }

    /** Go's parsePAXTime: {seconds (rounded down), nanoseconds}. */
    static long[] paxTime(String v) throws NotMirroredException {
        int dot = v.indexOf('.');
        String ss = dot < 0 ? v : v.substring(0, dot);
        String sn = dot < 0 ? "" : v.substring(dot + 1);
        long secs;
        try {
            secs = Long.parseLong(ss);
        } catch (NumberFormatException e) {
            throw new NotMirroredException("a malformed PAX time '" + v + "'");
        }
        if (sn.isEmpty()) {
            return new long[] {secs, 0};
        }
        for (int i = 0; i < sn.length(); i++) {
            if (sn.charAt(i) < '0' || sn.charAt(i) > '9') {
                throw new NotMirroredException("a malformed PAX time '" + v + "'");
            }
        }
        sn = sn.length() < 9 ? (sn + "000000000").substring(0, 9) : sn.substring(0, 9);
        long nanos = Long.parseLong(sn);
        if (ss.startsWith("-") && nanos > 0) {
            // time.Unix(secs, -nanos): one second less, and the rest past it.
            return new long[] {secs - 1, 1_000_000_000L - nanos};
        }
        return new long[] {secs, nanos};
    }

    private static long padding(long size) {
        return (BLOCK - size % BLOCK) % BLOCK;
    }

    private static boolean isZero(byte[] b) {
        for (byte x : b) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }

    public static String printable(String latin1) {
        StringBuilder sb = new StringBuilder();
        for (char c : latin1.toCharArray()) {
            sb.append(c >= 0x20 && c < 0x7f ? String.valueOf(c) : String.format("\\x%02x", (int) c));
        }
        return sb.toString();
    }
}
