package org.vbake.image;

import java.io.IOException;

/**
 * Malformed input found while streaming (a truncated tar, corrupt gzip data). It travels as an
 * {@link IOException} through stream APIs and is turned into a
 * {@link org.vbake.api.BadInputException} naming the file where the reader regains control.
 */
final class CorruptInputException extends IOException {

    private static final long serialVersionUID = 1L;

    CorruptInputException(String message, Throwable cause) {
        super(message, cause);
    }
}
