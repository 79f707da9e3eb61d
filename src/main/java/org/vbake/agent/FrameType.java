package org.vbake.agent;

/**
 * The frame types of agent protocol version 1, with their wire codes (docs/agent-protocol.md).
 * The enum constant names are the names the protocol document uses.
 */
public enum FrameType {
    HELLO(0x01, true),
    EXEC(0x02, true),
    STDIN(0x03, false),
    STDOUT(0x04, false),
    STDERR(0x05, false),
    EXIT(0x06, true),
    SIGNAL(0x07, true),
    WINDOW(0x08, true),
    ENGINE(0x09, true),
    ENGINE_READY(0x0A, true),
    POWEROFF(0x0B, true),
    ERROR(0x0C, true),
    RESIZE(0x0D, true),
    // Spoken only between vbake clients and a resident guest's daemon; the agent never sees them.
    LOCK(0x20, true),
    STATUS(0x21, true),
    FORWARD(0x22, true);

    private static final FrameType[] BY_CODE = new FrameType[256];

    static {
        for (FrameType t : values()) {
            BY_CODE[t.code & 0xFF] = t;
        }
    }

    private final byte code;
    private final boolean json;

    FrameType(int code, boolean json) {
        this.code = (byte) code;
        this.json = json;
    }

    /** The type byte on the wire. */
    public byte code() {
        return code;
    }

    /** True for control frames (JSON payload), false for data frames (raw bytes). */
    public boolean isJson() {
        return json;
    }

    /** The type for a wire code, or {@code null} when protocol version 1 does not define it. */
    public static FrameType fromCode(int code) {
        return code < 0 || code > 0xFF ? null : BY_CODE[code];
    }
}
