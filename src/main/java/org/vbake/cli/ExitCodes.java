package org.vbake.cli;

/** Exit codes of vbake's own failures; a guest command's own exit code passes through unchanged. */
public final class ExitCodes {
    public static final int OK = 0;
    public static final int FAILURE = 1;
    public static final int BAD_INPUT = 2;
    public static final int GUEST_FAILURE = 3;
    public static final int INTERRUPTED = 130;

    private ExitCodes() {
    }
}
