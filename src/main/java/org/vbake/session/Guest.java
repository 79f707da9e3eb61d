package org.vbake.session;

import java.nio.file.Path;
import org.vbake.agent.AgentClient;
import org.vbake.agent.Protocol.Hello;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;

/**
 * A running guest, however it came to run: booted for this command ({@link BootedGuest}),
 * restored from the guest an earlier command saved ({@link ResumedGuest}), or a resident one a
 * daemon keeps ({@link ResidentGuest}). Commands go through its agent link; {@link #end} is what
 * differs most: save it for the next command, power it off, or just let go of it.
 */
public interface Guest {

    /** The agent link (for a resident guest: the link to its daemon, which relays). */
    AgentClient agent();

    /** The agent's handshake reply. */
    Hello hello();

    /** False once QEMU has exited; always true for a resident guest (its daemon watches it). */
    boolean isAlive();

    /** True for a resident guest: inputs are streamed to it and commands share it with other clients. */
    boolean isResident();

    /** How this guest came to run, for messages: {@code booted}, {@code resumed}, {@code resident}. */
    String how();

    /** Why the guest went away (QEMU's exit status, its last words, the console's cause), or null. */
    String postMortem();

    /** A failure of this guest: the message with the reason when one is known, naming the log to read. */
    GuestException failure(String message, Throwable cause);

    /**
     * Adds a disk while the guest runs (serial {@code vbake-NAME}), for what differs per command
     * (an {@code .ext4} export's output disk). A guest with a disk added is powered off at its end
     * instead of saved: the next one must have the devices the saved one had.
     */
    void attachDisk(String name, Path file) throws VbakeException, InterruptedException;

    /**
     * Ends this command's use of the guest. {@code save}: keep it for the next command (a saved
     * guest it resumes) when it can be; otherwise, or when saving fails, a clean power-off. A
     * resident guest stays up. Nothing is left running either way.
     */
    void end(boolean save) throws InterruptedException;
}
