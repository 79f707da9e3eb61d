package org.vbake.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class FrameCodecTest {

    private static byte[] encode(Frame frame) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        FrameCodec.write(out, frame);
        return out.toByteArray();
    }

    private static Frame decode(byte[] bytes) throws IOException {
        return FrameCodec.read(new ByteArrayInputStream(bytes));
    }

    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            b[i] = (byte) values[i];
        }
        return b;
    }

    @Test
    void layoutIsBigEndianLengthTypeChannelPayload() throws IOException {
        Frame frame = new Frame(FrameType.STDOUT, 0x01020304, "hi".getBytes(StandardCharsets.US_ASCII));

        assertThat(encode(frame)).containsExactly(
                0x00, 0x00, 0x00, 0x07, // length: type + channel + 2 payload bytes
                0x04,                   // STDOUT
                0x01, 0x02, 0x03, 0x04, // channel
                'h', 'i');
    }

    @Test
    void emptyStdinIsTheSmallestFrame() throws IOException {
        byte[] wire = encode(new Frame(FrameType.STDIN, 1, new byte[0]));

        assertThat(wire).containsExactly(0, 0, 0, 5, 0x03, 0, 0, 0, 1);
        assertThat(decode(wire)).isEqualTo(new Frame(FrameType.STDIN, 1, null));
    }

    @Test
    void controlFramePayloadIsTheJsonText() throws IOException {
        byte[] json = "{\"code\":3}".getBytes(StandardCharsets.UTF_8);
        byte[] wire = encode(new Frame(FrameType.EXIT, 0x0A0B, json));

        assertThat(Arrays.copyOfRange(wire, 0, 9)).containsExactly(0, 0, 0, 15, 0x06, 0, 0, 0x0A, 0x0B);
        assertThat(Arrays.copyOfRange(wire, 9, wire.length)).isEqualTo(json);
    }

    @Test
    void channelIsUnsigned() throws IOException {
        byte[] wire = encode(new Frame(FrameType.EXIT, 0xFFFFFFFF, new byte[0]));

        assertThat(Arrays.copyOfRange(wire, 5, 9)).containsExactly(0xFF, 0xFF, 0xFF, 0xFF);
        assertThat(decode(wire).channel()).isEqualTo(0xFFFFFFFF);
        assertThat(decode(wire).toString()).contains("ch=4294967295");
    }

    @Test
    void everyTypeRoundTrips() throws IOException {
        Random random = new Random(42);
        for (FrameType type : FrameType.values()) {
            byte[] payload = new byte[random.nextInt(300)];
            random.nextBytes(payload);
            Frame frame = new Frame(type, random.nextInt(), payload);

            assertThat(decode(encode(frame))).isEqualTo(frame);
        }
    }

    @Test
    void typeCodesMatchTheProtocolDocument() {
        assertThat(FrameType.values()).extracting(FrameType::code).containsExactly(
                (byte) 0x01, (byte) 0x02, (byte) 0x03, (byte) 0x04, (byte) 0x05, (byte) 0x06,
                (byte) 0x07, (byte) 0x08, (byte) 0x09, (byte) 0x0A, (byte) 0x0B, (byte) 0x0C, (byte) 0x0D,
                (byte) 0x20, (byte) 0x21, (byte) 0x22);
        assertThat(FrameType.fromCode(0x0A)).isEqualTo(FrameType.ENGINE_READY);
        assertThat(FrameType.fromCode(0x00)).isNull();
        assertThat(FrameType.fromCode(0x0E)).isNull();
    }

    @Test
    void largestPayloadRoundTrips() throws IOException {
        byte[] payload = new byte[FrameCodec.MAX_PAYLOAD];
        new Random(1).nextBytes(payload);
        Frame frame = new Frame(FrameType.STDOUT, 7, payload);

        byte[] wire = encode(frame);

        assertThat(Arrays.copyOfRange(wire, 0, 4)).containsExactly(0x00, 0x10, 0x00, 0x05);
        assertThat(decode(wire)).isEqualTo(frame);
    }

    @Test
    void payloadOverOneMebibyteCannotBeBuilt() {
        assertThatThrownBy(() -> new Frame(FrameType.STDIN, 1, new byte[FrameCodec.MAX_PAYLOAD + 1]))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void readsConsecutiveFrames() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Frame first = new Frame(FrameType.STDOUT, 1, bytes(1, 2, 3));
        Frame second = new Frame(FrameType.STDERR, 2, bytes(4));
        FrameCodec.write(out, first);
        FrameCodec.write(out, second);
        ByteArrayInputStream in = new ByteArrayInputStream(out.toByteArray());

        assertThat(FrameCodec.read(in)).isEqualTo(first);
        assertThat(FrameCodec.read(in)).isEqualTo(second);
        assertThatThrownBy(() -> FrameCodec.read(in)).isExactlyInstanceOf(EOFException.class);
    }

    @Test
    void lengthBelowFiveIsRejected() {
        assertThatThrownBy(() -> decode(bytes(0, 0, 0, 4, 0x04, 0, 0, 0)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("bad frame length 4");
    }

    @Test
    void lengthAboveOneMebibytePlusFiveIsRejected() {
        // 0x00100006 = 1 MiB + 6: rejected from the header alone, before any payload is read.
        assertThatThrownBy(() -> decode(bytes(0x00, 0x10, 0x00, 0x06, 0x04, 0, 0, 0, 1)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("bad frame length 1048582");
    }

    @Test
    void lengthWithTopBitSetIsRejectedNotNegative() {
        assertThatThrownBy(() -> decode(bytes(0x80, 0, 0, 0, 0x04, 0, 0, 0, 1)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("bad frame length 2147483648");
    }

    @Test
    void unknownTypeIsRejected() {
        assertThatThrownBy(() -> decode(bytes(0, 0, 0, 5, 0x0E, 0, 0, 0, 1)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("unknown frame type 0x0E");
        assertThatThrownBy(() -> decode(bytes(0, 0, 0, 5, 0x00, 0, 0, 0, 1)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("unknown frame type 0x00");
    }

    @Test
    void emptyStreamIsEndOfLink() {
        assertThatThrownBy(() -> decode(new byte[0])).isExactlyInstanceOf(EOFException.class);
    }

    @Test
    void streamEndingInsideTheHeaderIsAProtocolError() {
        assertThatThrownBy(() -> decode(bytes(0, 0, 0, 9, 0x04, 0)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("middle of a frame")
                .hasCauseInstanceOf(EOFException.class);
    }

    @Test
    void streamEndingInsideThePayloadIsAProtocolError() {
        assertThatThrownBy(() -> decode(bytes(0, 0, 0, 9, 0x04, 0, 0, 0, 1, 'a', 'b')))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("middle of a frame");
    }
}
