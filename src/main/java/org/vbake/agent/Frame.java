package org.vbake.agent;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * One protocol frame: a type, a channel (0 for link-level frames) and an opaque payload.
 * The channel is an unsigned 32-bit number on the wire; it is kept in an {@code int} and only
 * printed as unsigned, because the host never allocates channels anywhere near 2^31.
 */
public record Frame(FrameType type, int channel, byte[] payload) {

    private static final byte[] EMPTY = new byte[0];

    public Frame {
        Objects.requireNonNull(type, "type");
        payload = payload == null ? EMPTY : payload;
        if (payload.length > FrameCodec.MAX_PAYLOAD) {
            throw new IllegalArgumentException(
                    type + " payload of " + payload.length + " bytes exceeds " + FrameCodec.MAX_PAYLOAD);
        }
    }

    /** The payload decoded as UTF-8, for control frames and diagnostics. */
    public String payloadText() {
        return new String(payload, StandardCharsets.UTF_8);
    }

    // Records compare arrays by identity; frames are compared by content in tests and logs.
    @Override
    public boolean equals(Object o) {
        return o instanceof Frame f
                && f.type == type && f.channel == channel && Arrays.equals(f.payload, payload);
    }

    @Override
    public int hashCode() {
        return Objects.hash(type, channel) * 31 + Arrays.hashCode(payload);
    }

    @Override
    public String toString() {
        String ch = Integer.toUnsignedString(channel);
        if (type.isJson()) {
            String text = payloadText();
            if (text.length() > 200) {
                text = text.substring(0, 200) + "...";
            }
            return type + " ch=" + ch + " " + text;
        }
        return type + " ch=" + ch + " (" + payload.length + " bytes)";
    }
}
