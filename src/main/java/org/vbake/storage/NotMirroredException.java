package org.vbake.storage;

/**
 * The host writer cannot prove it writes what the engine would for this input (a sparse file, an
 * entry type or an engine version it does not know): the bake goes through the engine instead.
 */
public final class NotMirroredException extends Exception {

    public NotMirroredException(String reason) {
        super(reason);
    }
}
