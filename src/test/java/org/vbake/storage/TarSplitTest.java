package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.zip.GZIPInputStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.vbake.api.BadInputException;

/** The canonical form of tar-split files, against values vbatts/tar-split itself writes. */
class TarSplitTest {

    private static String gunzip(byte[] gz) throws Exception {
        return new String(new GZIPInputStream(new ByteArrayInputStream(gz)).readAllBytes(), StandardCharsets.UTF_8);
    }

    private static byte[] gzip(String s) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(s.getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    @Test
    void crc64IsGosIsoTable() {
        // tar-split's payload for a 6-byte "hello\n" file.
        TarSplit.Crc64 crc = new TarSplit.Crc64();
        byte[] b = "hello\n".getBytes(StandardCharsets.US_ASCII);
        crc.update(b, 0, b.length);
        assertThat(Base64.getEncoder().encodeToString(crc.bigEndian())).isEqualTo("YUw+7uLYEAA=");
    }

    @Test
    void theEightBytesAtATimeCrcIsTheBytewiseOne() {
        java.util.Random r = new java.util.Random(3);
        for (int len : new int[] {0, 1, 7, 8, 9, 63, 64, 65, 1000, 100_003}) {
            byte[] b = new byte[len];
            r.nextBytes(b);
            TarSplit.Crc64 crc = new TarSplit.Crc64();
            // In pieces of odd sizes, as a stream hands them over.
            for (int off = 0; off < len; off += 13) {
                crc.update(b, off, Math.min(13, len - off));
            }
            long want = TarSplit.Crc64.bytewise(b);
            assertThat(java.nio.ByteBuffer.wrap(crc.bigEndian()).getLong()).as("length " + len).isEqualTo(want);
        }
    }

    @Test
    void anEnginesTarSplitBecomesOneCanonicalForm() throws Exception {
        // As tar-split 0.11.2 (bookworm) writes it: the end marker and trailing padding split
        // across reads, an empty last segment, Go 1.19's \u0008 escape.
        String engine = "{\"type\":2,\"payload\":\"QUJD\",\"position\":0}\n"
                + "{\"type\":1,\"name\":\"a\\u0008\\u003cb\",\"size\":6,\"payload\":\"YUw+7uLYEAA=\",\"position\":1}\n"
                + "{\"type\":2,\"payload\":\"AAAA\",\"position\":2}\n"
                + "{\"type\":2,\"payload\":\"AAAA\",\"position\":3}\n"
                + "{\"type\":2,\"payload\":\"\",\"position\":4}\n";
        byte[] canonical = TarSplit.canonical(gzip(engine), "x");
        assertThat(gunzip(canonical)).isEqualTo(
                "{\"type\":2,\"payload\":\"QUJD\",\"position\":0}\n"
                + "{\"type\":1,\"name\":\"a\\b\\u003cb\",\"size\":6,\"payload\":\"YUw+7uLYEAA=\",\"position\":1}\n"
                + "{\"type\":2,\"payload\":\"AAAAAAAA\",\"position\":2}\n");
        // A fixed point, and the same bytes on every host: no time, OS unknown.
        assertThat(TarSplit.canonical(canonical, "x")).isEqualTo(canonical);
        assertThat(canonical).startsWith(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff);
    }

    @Test
    void namesThatAreNotUtf8GoRawAndEmptyFilesHaveNoPayload() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        TarSplit.Packer p = new TarSplit.Packer(out);
        p.file(new byte[] {'b', 'a', 'd', (byte) 0xff}, 0, null);
        p.file("\u2028".getBytes(StandardCharsets.UTF_8), 0, null);
        p.raw(new byte[] {1, 2});
        p.finish();
        assertThat(out.toString(StandardCharsets.UTF_8)).isEqualTo(
                "{\"type\":1,\"name_raw\":\"YmFk/w==\",\"payload\":null,\"position\":0}\n"
                + "{\"type\":1,\"name\":\"\\u2028\",\"payload\":null,\"position\":1}\n"
                + "{\"type\":2,\"payload\":\"AQI=\",\"position\":2}\n");
    }

    @Test
    void somethingElseIsRefused() throws Exception {
        assertThatThrownBy(() -> TarSplit.canonical("not gzip".getBytes(StandardCharsets.US_ASCII), "f"))
                .isInstanceOf(BadInputException.class).hasMessageContaining("f: not a readable tar-split file");
        assertThatThrownBy(() -> TarSplit.canonical(gzip("[1,2]"), "f")).isInstanceOf(BadInputException.class);
    }
}
