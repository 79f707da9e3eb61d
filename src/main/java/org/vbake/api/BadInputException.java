package org.vbake.api;

/** Bad usage or bad input: exit code 2. */
public class BadInputException extends VbakeException {
    public BadInputException(String message) {
        super(2, message, null, null);
    }

    public BadInputException(String message, String hint) {
        super(2, message, hint, null);
    }
}
