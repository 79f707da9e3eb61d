package org.vbake.api;

/** A failure vbake can explain in one line; {@link #exitCode()} is what the CLI exits with. */
public class VbakeException extends Exception {

    private final int exitCode;
    private final String hint;

    public VbakeException(int exitCode, String message, String hint, Throwable cause) {
        super(message, cause);
        this.exitCode = exitCode;
        this.hint = hint;
    }

    public int exitCode() {
        return exitCode;
    }

    /** What the user can do or read next (a log path), or null. */
    public String hint() {
        return hint;
    }
}
