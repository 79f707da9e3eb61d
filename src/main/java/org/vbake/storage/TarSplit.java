package org.vbake.storage;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.zip.GZIPInputStream;
import org.vbake.api.BadInputException;

/**
 * The tar-split files both engines keep beside each layer (docker's {@code tar-split.json.gz},
 * containers/storage's {@code ID.tar-split.gz}): one JSON object per line saying which raw bytes
 * of the layer tar (headers, padding, the end marker) come between the files, and each file's
 * name, size and CRC-64, so that {@code save} can rebuild the layer byte for byte from the
 * unpacked files. Read by vbatts/tar-split's JSON unpacker, which ignores the positions and
 * concatenates the segments.
 *
 * <p>vbake writes these files in one <b>canonical form</b>, whoever made them: adjacent raw
 * segments merged into one (so how the engine's reader happened to chunk trailing padding, and the
 * empty last segment tar-split 0.11.2 adds, no longer matter), no empty segments, positions counted
 * again from 0, strings escaped as Go 1.22+'s encoding/json escapes them, and gzip made by
 * {@link CanonicalGzip}. The rebuilt layer is the same, so the engines' {@code save} gives the
 * same diff IDs; and a tree written by the engine and one written on the host compare equal.
 */
public final class TarSplit {

    static final int FILE_TYPE = 1;
    static final int SEGMENT_TYPE = 2;

    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    private static final long[] CRC64_TABLE = crc64Table();
    private static final long[][] SLICES = slices(CRC64_TABLE);
    private static final JsonFactory JSON = new JsonFactory();

    private TarSplit() {
    }

    /**
     * Writes entries in the canonical form: raw bytes are collected until the next file entry (or
     * the end), then written as one segment.
     */
    public static final class Packer {
        private final OutputStream out;
        private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
        private final ByteArrayOutputStream line = new ByteArrayOutputStream(256);
        private int position;

        /** @param out where the JSON lines go (typically a {@link CanonicalGzip} stream); not closed here */
        public Packer(OutputStream out) {
            this.out = out;
        }

        /** Raw archive bytes that are not file content. */
        public void raw(byte[] b, int off, int len) {
            pending.write(b, off, len);
        }

        public void raw(byte[] b) {
            raw(b, 0, b.length);
        }

        /**
         * One tar entry (every type has one).
         *
         * @param name  the header's name as parsed, raw bytes
         * @param size  the header's size as parsed (0 for none)
         * @param crc64 the CRC-64 of the content read, or null when the size is 0
         */
        public void file(byte[] name, long size, byte[] crc64) throws IOException {
            flushSegment();
            line.reset();
            ascii("{\"type\":1");
            if (name.length > 0) {
                if (validUtf8(name)) {
                    ascii(",\"name\":");
                    jsonString(name, line);
                } else {
                    ascii(",\"name_raw\":\"");
                    ascii(Base64.getEncoder().encodeToString(name));
                    ascii("\"");
                }
            }
            if (size != 0) {
                ascii(",\"size\":" + size);
            }
            ascii(",\"payload\":");
            if (crc64 == null) {
                ascii("null");
            } else {
                ascii("\"" + Base64.getEncoder().encodeToString(crc64) + "\"");
            }
            ascii(",\"position\":" + position++ + "}\n");
            line.writeTo(out);
        }

        /** Writes what is pending; call once after the last bytes of the stream. */
        public void finish() throws IOException {
            flushSegment();
        }

        private void flushSegment() throws IOException {
            if (pending.size() == 0) {
                return;
            }
            line.reset();
            ascii("{\"type\":2,\"payload\":\"");
            ascii(Base64.getEncoder().encodeToString(pending.toByteArray()));
            ascii("\",\"position\":" + position++ + "}\n");
            line.writeTo(out);
            pending.reset();
        }

        private void ascii(String s) {
            line.writeBytes(s.getBytes(StandardCharsets.US_ASCII));
        }
    }

    /**
     * Re-encodes a tar-split file (gzip of JSON lines, as any version of either engine wrote it)
     * in the canonical form, gzipped by {@link CanonicalGzip}.
     *
     * @throws BadInputException when it is not a gzip of tar-split JSON lines
     */
    public static byte[] canonical(byte[] gzipped, String what) throws BadInputException {
        ByteArrayOutputStream result = new ByteArrayOutputStream(gzipped.length);
        try (InputStream in = new GZIPInputStream(new ByteArrayInputStream(gzipped), 1 << 16);
                OutputStream gz = CanonicalGzip.open(result)) {
            Packer packer = new Packer(gz);
            try (JsonParser p = JSON.createParser(in)) {
                for (JsonToken t = p.nextToken(); t != null; t = p.nextToken()) {
                    if (t != JsonToken.START_OBJECT) {
                        throw new BadInputException(what + ": not a tar-split file (expected a JSON object)");
                    }
                    readEntry(p, packer, what);
                }
            }
            packer.finish();
        } catch (IOException e) {
            throw new BadInputException(what + ": not a readable tar-split file: " + e.getMessage());
        }
        return result.toByteArray();
    }

    private static void readEntry(JsonParser p, Packer packer, String what) throws IOException {
        int type = 0;
        byte[] name = null;
        long size = 0;
        byte[] payload = null;
        for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
            String field = p.currentName();
            t = p.nextToken();
            switch (field) {
                case "type" -> type = p.getIntValue();
                case "name" -> name = t == JsonToken.VALUE_NULL ? null : p.getText().getBytes(StandardCharsets.UTF_8);
                case "name_raw" -> name = t == JsonToken.VALUE_NULL ? null : Base64.getDecoder().decode(p.getText());
                case "size" -> size = p.getLongValue();
                case "payload" -> payload = t == JsonToken.VALUE_NULL ? null : Base64.getDecoder().decode(p.getText());
                case "position" -> {
                    // Renumbered.
                }
                default -> p.skipChildren();
            }
        }
        if (type == SEGMENT_TYPE) {
            if (payload != null) {
                packer.raw(payload);
            }
        } else if (type == FILE_TYPE) {
            packer.file(name == null ? new byte[0] : name, size, payload);
        } else {
            throw new IOException("entry of unknown type " + type);
        }
    }

    /** The CRC-64 (ISO polynomial, as Go's hash/crc64) tar-split keeps of each file's content, big-endian. */
    public static final class Crc64 {
        private long crc = ~0L;

        public void update(byte[] b, int off, int len) {
            long c = crc;
            int i = off;
            int end = off + len;
            // Eight bytes at a time (slicing-by-8, as Go's hash/crc64 does), then the rest one by one.
            for (; i + 8 <= end; i += 8) {
                c ^= (b[i] & 0xffL) | (b[i + 1] & 0xffL) << 8 | (b[i + 2] & 0xffL) << 16 | (b[i + 3] & 0xffL) << 24
                        | (b[i + 4] & 0xffL) << 32 | (b[i + 5] & 0xffL) << 40 | (b[i + 6] & 0xffL) << 48
                        | (b[i + 7] & 0xffL) << 56;
                c = SLICES[7][(int) (c & 0xff)] ^ SLICES[6][(int) ((c >>> 8) & 0xff)]
                        ^ SLICES[5][(int) ((c >>> 16) & 0xff)] ^ SLICES[4][(int) ((c >>> 24) & 0xff)]
                        ^ SLICES[3][(int) ((c >>> 32) & 0xff)] ^ SLICES[2][(int) ((c >>> 40) & 0xff)]
                        ^ SLICES[1][(int) ((c >>> 48) & 0xff)] ^ SLICES[0][(int) (c >>> 56)];
            }
            for (; i < end; i++) {
                c = CRC64_TABLE[(int) ((c ^ b[i]) & 0xff)] ^ (c >>> 8);
            }
            crc = c;
        }

        /** The bytewise definition, for tests of the fast path. */
        static long bytewise(byte[] b) {
            long c = ~0L;
            for (byte x : b) {
                c = CRC64_TABLE[(int) ((c ^ x) & 0xff)] ^ (c >>> 8);
            }
            return ~c;
        }

        public byte[] bigEndian() {
            long v = ~crc;
            byte[] out = new byte[8];
            for (int i = 7; i >= 0; i--) {
                out[i] = (byte) v;
                v >>>= 8;
            }
            return out;
        }
    }

    private static long[] crc64Table() {
        long poly = 0xD800000000000000L;
        long[] table = new long[256];
        for (int i = 0; i < 256; i++) {
            long crc = i;
            for (int j = 0; j < 8; j++) {
                crc = (crc & 1) == 1 ? (crc >>> 1) ^ poly : crc >>> 1;
            }
            table[i] = crc;
        }
        return table;
    }

    private static long[][] slices(long[] t0) {
        long[][] t = new long[8][256];
        t[0] = t0;
        for (int k = 1; k < 8; k++) {
            for (int i = 0; i < 256; i++) {
                t[k][i] = (t[k - 1][i] >>> 8) ^ t0[(int) (t[k - 1][i] & 0xff)];
            }
        }
        return t;
    }

    /** Go's utf8.Valid. */
    static boolean validUtf8(byte[] b) {
        int i = 0;
        while (i < b.length) {
            int c = b[i] & 0xff;
            if (c < 0x80) {
                i++;
                continue;
            }
            int n;
            int min;
            if (c >= 0xc2 && c <= 0xdf) {
                n = 1;
                min = 0x80;
            } else if (c >= 0xe0 && c <= 0xef) {
                n = 2;
                min = 0x800;
            } else if (c >= 0xf0 && c <= 0xf4) {
                n = 3;
                min = 0x10000;
            } else {
                return false;
            }
            if (i + n >= b.length) {
                return false;
            }
            int cp = c & (0x3f >> n);
            for (int k = 1; k <= n; k++) {
                int cc = b[i + k] & 0xff;
                if ((cc & 0xc0) != 0x80) {
                    return false;
                }
                cp = (cp << 6) | (cc & 0x3f);
            }
            if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
                return false;
            }
            i += n + 1;
        }
        return true;
    }

    /**
     * Go's encoding/json string encoding with HTML escaping (as json.Encoder does by default), in
     * its Go 1.22+ form ({@code \b} and {@code \f} short escapes); {@code s} is valid UTF-8.
     */
    static void jsonString(byte[] s, ByteArrayOutputStream out) {
        out.write('"');
        int i = 0;
        while (i < s.length) {
            int b = s[i] & 0xff;
            if (b < 0x80) {
                if (b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&') {
                    out.write(b);
                } else {
                    switch (b) {
                        case '"', '\\' -> {
                            out.write('\\');
                            out.write(b);
                        }
                        case '\b' -> out.writeBytes(new byte[] {'\\', 'b'});
                        case '\f' -> out.writeBytes(new byte[] {'\\', 'f'});
                        case '\n' -> out.writeBytes(new byte[] {'\\', 'n'});
                        case '\r' -> out.writeBytes(new byte[] {'\\', 'r'});
                        case '\t' -> out.writeBytes(new byte[] {'\\', 't'});
                        default -> out.writeBytes(new byte[] {'\\', 'u', '0', '0', HEX[b >> 4], HEX[b & 0xf]});
                    }
                }
                i++;
                continue;
            }
            // U+2028 and U+2029 (E2 80 A8 / E2 80 A9) are escaped; other runes go as they are.
            if (b == 0xe2 && i + 2 < s.length && (s[i + 1] & 0xff) == 0x80
                    && ((s[i + 2] & 0xff) == 0xa8 || (s[i + 2] & 0xff) == 0xa9)) {
                out.writeBytes(new byte[] {'\\', 'u', '2', '0', '2', (s[i + 2] & 0xff) == 0xa8 ? (byte) '8' : (byte) '9'});
                i += 3;
                continue;
            }
            out.write(b);
            i++;
        }
        out.write('"');
    }
}
