package org.vbake.agent;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/**
 * Reads and writes the length-prefixed frames of the agent protocol:
 * {@code u32 length | u8 type | u32 channel | payload}, all big-endian, where length counts
 * type + channel + payload.
 */
public final class FrameCodec {

    /** Largest payload a frame may carry. */
    public static final int MAX_PAYLOAD = 1 << 20;
    /** Largest STDIN/STDOUT/STDERR chunk a sender puts in one frame. */
    public static final int MAX_DATA_CHUNK = 64 * 1024;
    /** type byte + channel. */
    static final int MIN_LENGTH = 5;
    static final long MAX_LENGTH = MAX_PAYLOAD + MIN_LENGTH;
    private static final int HEADER = 4 + MIN_LENGTH;

    private FrameCodec() {
    }

    /**
     * Reads one frame.
     *
     * @throws EOFException when the stream ends cleanly between frames (the peer closed the link)
     * @throws AgentProtocolException for a length out of bounds, an unknown type, or a stream that
     *     ends inside a frame; the protocol does not resynchronise, so the link is dead after this
     */
    public static Frame read(InputStream in) throws IOException {
        DataInputStream data = in instanceof DataInputStream d ? d : new DataInputStream(in);
        int first = data.read();
        if (first < 0) {
            throw new EOFException("agent link closed");
        }
        try {
            long length = ((long) first << 24) | (data.readUnsignedByte() << 16)
                    | (data.readUnsignedByte() << 8) | data.readUnsignedByte();
            if (length < MIN_LENGTH || length > MAX_LENGTH) {
                throw new AgentProtocolException("bad frame length " + length
                        + " (must be " + MIN_LENGTH + ".." + MAX_LENGTH + ")");
            }
            int code = data.readUnsignedByte();
            FrameType type = FrameType.fromCode(code);
            if (type == null) {
                throw new AgentProtocolException(String.format("unknown frame type 0x%02X", code));
            }
            int channel = data.readInt();
            byte[] payload = new byte[(int) length - MIN_LENGTH];
            data.readFully(payload);
            return new Frame(type, channel, payload);
        } catch (EOFException e) {
            throw new AgentProtocolException("agent link closed in the middle of a frame", e);
        }
    }

    /**
     * Writes one frame with a single {@code write} call and flushes, so a frame is never split
     * by a concurrent writer even on streams that do not buffer; callers still serialise writes.
     */
    public static void write(OutputStream out, Frame frame) throws IOException {
        byte[] payload = frame.payload();
        int length = MIN_LENGTH + payload.length;
        byte[] buf = new byte[HEADER + payload.length];
        putInt(buf, 0, length);
        buf[4] = frame.type().code();
        putInt(buf, 5, frame.channel());
        System.arraycopy(payload, 0, buf, HEADER, payload.length);
        out.write(buf);
        out.flush();
    }

    private static void putInt(byte[] buf, int at, int value) {
        buf[at] = (byte) (value >>> 24);
        buf[at + 1] = (byte) (value >>> 16);
        buf[at + 2] = (byte) (value >>> 8);
        buf[at + 3] = (byte) value;
    }
}
