package org.vbake.api;

import java.nio.file.Path;

/** The guest or QEMU failed: exit code 3; the hint names the log to read. */
public class GuestException extends VbakeException {
    private final Path log;

    public GuestException(String message, Path log, Throwable cause) {
        super(3, message, log == null ? null : "see " + log, cause);
        this.log = log;
    }

    public Path log() {
        return log;
    }
}
