package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.GZIPInputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.archivers.tar.TarConstants;
import org.junit.jupiter.api.Test;

/**
 * The layer reader against what the engines need from it: every header read as Go reads it, and
 * a tar-split description from which the layer's exact bytes come back (so {@code save} in the
 * engine gives the original diff ID), whatever writer made the layer.
 */
class LayerTarTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    record Read(List<LayerTar.Header> headers, Map<String, byte[]> contents, byte[] tarSplitGz, LayerTar.Summary summary) {
    }

    static Read read(byte[] tar) throws Exception {
        List<LayerTar.Header> headers = new ArrayList<>();
        Map<String, byte[]> contents = new HashMap<>();
        ByteArrayOutputStream gz = new ByteArrayOutputStream();
        LayerTar.Summary s;
        try (var out = CanonicalGzip.open(gz)) {
            TarSplit.Packer p = new TarSplit.Packer(out);
            s = LayerTar.read(new ByteArrayInputStream(tar), p, (h, c) -> {
                headers.add(h);
                contents.put(h.name(), c.readAllBytes());
            });
        }
        return new Read(headers, contents, gz.toByteArray(), s);
    }

    /** What {@code save} does with a tar-split file: segments as they are, file contents from the unpacked files. */
    static byte[] assemble(byte[] tarSplitGz, Map<String, byte[]> contents) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        String json = new String(new GZIPInputStream(new ByteArrayInputStream(tarSplitGz)).readAllBytes(),
                StandardCharsets.UTF_8);
        int position = 0;
        for (String line : json.split("\n")) {
            JsonNode e = JSON.readTree(line);
            assertThat(e.get("position").asInt()).isEqualTo(position++);
            if (e.get("type").asInt() == 2) {
                out.write(Base64.getDecoder().decode(e.get("payload").asText()));
                continue;
            }
            String name = e.has("name_raw")
                    ? new String(Base64.getDecoder().decode(e.get("name_raw").asText()), StandardCharsets.ISO_8859_1)
                    : new String(e.path("name").asText("").getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
            long size = e.path("size").asLong(0);
            if (size > 0) {
                byte[] c = contents.get(name);
                assertThat(c).as(name).hasSize((int) size);
                TarSplit.Crc64 crc = new TarSplit.Crc64();
                crc.update(c, 0, c.length);
                assertThat(Base64.getEncoder().encodeToString(crc.bigEndian())).isEqualTo(e.get("payload").asText());
                out.write(c);
            } else {
                assertThat(e.get("payload").isNull()).isTrue();
            }
        }
        return out.toByteArray();
    }

    private static byte[] commonsTar(int longFileMode, int bigNumberMode, boolean padRecord) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream t = new TarArchiveOutputStream(bytes, padRecord ? 10240 : 512)) {
            t.setLongFileMode(longFileMode);
            t.setBigNumberMode(bigNumberMode);
            TarArchiveEntry d = new TarArchiveEntry("etc/", TarConstants.LF_DIR);
            d.setMode(040755);
            t.putArchiveEntry(d);
            t.closeArchiveEntry();
            byte[] hello = "hello\n".getBytes(StandardCharsets.UTF_8);
            TarArchiveEntry f = new TarArchiveEntry("etc/hello");
            f.setSize(hello.length);
            f.setMode(0100644);
            f.setUserId(3_000_000L);
            f.setGroupId(70_000L);
            t.putArchiveEntry(f);
            t.write(hello);
            t.closeArchiveEntry();
            byte[] big = new byte[70_001];
            new Random(1).nextBytes(big);
            TarArchiveEntry b = new TarArchiveEntry("x".repeat(120) + "/" + "y".repeat(130));
            b.setSize(big.length);
            t.putArchiveEntry(b);
            t.write(big);
            t.closeArchiveEntry();
            TarArchiveEntry l = new TarArchiveEntry("etc/hard", TarConstants.LF_LINK);
            l.setLinkName("etc/hello");
            t.putArchiveEntry(l);
            t.closeArchiveEntry();
            TarArchiveEntry s = new TarArchiveEntry("etc/sym", TarConstants.LF_SYMLINK);
            s.setLinkName("hello");
            t.putArchiveEntry(s);
            t.closeArchiveEntry();
            TarArchiveEntry c = new TarArchiveEntry("dev/null", TarConstants.LF_CHR);
            c.setDevMajor(1);
            c.setDevMinor(3);
            t.putArchiveEntry(c);
            t.closeArchiveEntry();
        }
        return bytes.toByteArray();
    }

    @Test
    void layersFromEveryWriterComeBackByteForByteFromTheirTarSplit() throws Exception {
        for (byte[] tar : List.of(
                commonsTar(TarArchiveOutputStream.LONGFILE_POSIX, TarArchiveOutputStream.BIGNUMBER_POSIX, false),
                commonsTar(TarArchiveOutputStream.LONGFILE_GNU, TarArchiveOutputStream.BIGNUMBER_STAR, true),
                // Bytes after the end marker (a record pad, or junk a writer left) are kept too.
                concat(commonsTar(TarArchiveOutputStream.LONGFILE_POSIX, TarArchiveOutputStream.BIGNUMBER_POSIX,
                        false), new byte[3000]))) {
            Read r = read(tar);
            assertThat(assemble(r.tarSplitGz(), r.contents())).isEqualTo(tar);
            assertThat(r.summary().bytes()).isEqualTo(tar.length);
            assertThat(r.headers()).extracting(LayerTar.Header::name).containsExactly("etc/", "etc/hello",
                    "x".repeat(120) + "/" + "y".repeat(130), "etc/hard", "etc/sym", "dev/null");
            LayerTar.Header hello = r.headers().get(1);
            assertThat(hello.uid()).isEqualTo(3_000_000L);
            assertThat(hello.gid()).isEqualTo(70_000L);
            assertThat(hello.mode() & 07777).isEqualTo(0644);
            assertThat(r.headers().get(3).linkname()).isEqualTo("etc/hello");
            assertThat(r.headers().get(5).devMinor()).isEqualTo(3);
        }
    }

    @Test
    void paxRecordsGiveNamesAttributesAndTimes() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream t = new TarArchiveOutputStream(bytes, 512)) {
            TarArchiveEntry f = new TarArchiveEntry("bin/capped");
            byte[] cap = {1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
            f.addPaxHeader("SCHILY.xattr.security.capability", new String(cap, StandardCharsets.ISO_8859_1));
            f.addPaxHeader("mtime", "1700000000.75");
            f.addPaxHeader("path", "bin/caps\u00e9");
            f.setSize(1);
            t.putArchiveEntry(f);
            t.write('c');
            t.closeArchiveEntry();
        }
        byte[] tar = bytes.toByteArray();
        Read r = read(tar);
        LayerTar.Header h = r.headers().get(0);
        assertThat(h.name()).isEqualTo(new String("bin/caps\u00e9".getBytes(StandardCharsets.UTF_8),
                StandardCharsets.ISO_8859_1));
        assertThat(h.mtime()).isEqualTo(1700000000L);
        assertThat(h.xattrs()).containsKey("security.capability");
        assertThat(assemble(r.tarSplitGz(), r.contents())).isEqualTo(tar);
    }

    @Test
    void negativePaxTimesRoundDownAsGoDoes() throws Exception {
        assertThat(LayerTar.paxTime("-5.25")).containsExactly(-6, 750_000_000L);
        assertThat(LayerTar.paxTime("12")).containsExactly(12, 0);
        assertThatThrownBy(() -> LayerTar.paxTime("1e3")).isInstanceOf(NotMirroredException.class);
    }

    @Test
    void sparseFilesAndUnknownTypesAreNotMirrored() throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream t = new TarArchiveOutputStream(bytes, 512)) {
            TarArchiveEntry f = new TarArchiveEntry("sparse");
            f.addPaxHeader("GNU.sparse.major", "1");
            f.addPaxHeader("GNU.sparse.minor", "0");
            f.setSize(0);
            t.putArchiveEntry(f);
            t.closeArchiveEntry();
        }
        assertThatThrownBy(() -> read(bytes.toByteArray())).isInstanceOf(NotMirroredException.class)
                .hasMessageContaining("sparse");
        byte[] tar = commonsTar(TarArchiveOutputStream.LONGFILE_POSIX, TarArchiveOutputStream.BIGNUMBER_POSIX, false);
        tar[156] = 'V'; // the first header becomes a volume label
        fixChecksum(tar, 0);
        assertThatThrownBy(() -> read(tar)).isInstanceOf(NotMirroredException.class).hasMessageContaining("type 'V'");
    }

    @Test
    void emptyAndTruncatedStreams() throws Exception {
        Read empty = read(new byte[1024]);
        assertThat(empty.headers()).isEmpty();
        assertThat(assemble(empty.tarSplitGz(), Map.of())).isEqualTo(new byte[1024]);
        assertThat(read(new byte[0]).headers()).isEmpty();
        byte[] tar = commonsTar(TarArchiveOutputStream.LONGFILE_POSIX, TarArchiveOutputStream.BIGNUMBER_POSIX, false);
        assertThatThrownBy(() -> read(java.util.Arrays.copyOf(tar, 700))).isInstanceOf(Exception.class);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static void fixChecksum(byte[] tar, int at) {
        for (int i = 148; i < 156; i++) {
            tar[at + i] = ' ';
        }
        long sum = 0;
        for (int i = 0; i < 512; i++) {
            sum += tar[at + i] & 0xff;
        }
        byte[] octal = String.format("%06o\0 ", sum).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(octal, 0, tar, at + 148, 8);
    }
}
