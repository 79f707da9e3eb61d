package org.vbake.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.HostAgent;
import org.vbake.process.ProcessRunner;
import org.vbake.session.GuestSession;

/**
 * {@code -v HOST_DIR:CTR[:ro]} for a container in the guest, by copying: the host directory is
 * copied onto the guest's state disk before the command, the option rewritten to that copy, and
 * after a foreground command the copy comes back over the host directory (new and changed files;
 * nothing on the host is deleted). {@code :ro} volumes are not copied back. A detached container
 * keeps its copy in the guest: what it writes later does not reach the host.
 *
 * <p>Both directions go through the agent's own tree tools built for the host ({@link HostAgent}):
 * hardlinks, FIFOs, modes and names that are not UTF-8 come through as they are; each file comes
 * back atomically under a fresh temporary name, so no name the container chooses gets in the way.
 * What a non-root user cannot keep (device nodes, setuid/setgid bits, other users' files) is
 * named in one warning.
 */
final class HostVolumes {

    private final GuestSession session;
    private final RunArgs runArgs;
    private final String guestRoot;
    private final EventListener events;
    private final PrintStream err;
    private final String prog;
    private final Path hostAgent;
    private final ProcessRunner runner;

    HostVolumes(GuestSession session, RunArgs runArgs, String guestRoot, EventListener events, PrintStream err,
            String prog, Path hostAgent, ProcessRunner runner) {
        this.session = session;
        this.runArgs = runArgs;
        this.guestRoot = guestRoot;
        this.events = events;
        this.err = err;
        this.prog = prog;
        this.hostAgent = hostAgent;
        this.runner = runner;
    }

    /**
     * Before any boot: each host side must be a directory, or not exist yet (it is made, as the
     * engine makes a missing bind source).
     */
    static void check(RunArgs runArgs) throws BadInputException {
        for (RunArgs.HostVolume v : runArgs.volumes()) {
            Path host = v.host();
            if (Files.exists(host) && !Files.isDirectory(host)) {
                throw new BadInputException("-v " + host + ": is not a directory; only directories can be shared "
                        + "with the guest (they are copied in and back)");
            }
            try {
                Files.createDirectories(host);
            } catch (IOException e) {
                throw new BadInputException("-v " + host + ": cannot create the directory (" + e.getMessage() + ")");
            }
        }
    }

    /** True when the copies must stay in the guest (a detached container uses them). */
    boolean keepInGuest() {
        return runArgs.detach();
    }

    /** Copies each host directory in and returns the command with the options rewritten. */
    List<String> copyIn(List<String> command) throws VbakeException, InterruptedException {
        List<String> rewritten = new ArrayList<>(command);
        int n = 0;
        for (RunArgs.HostVolume v : runArgs.volumes()) {
            Path host = v.host();
            String guest = guestRoot + "/" + n++;
            new HostCopy(session, runner, hostAgent, events).in(host, guest);
            // Indexes are relative to the words after the verb.
            rewritten.set(v.index() + 1, v.rewritten(guest));
        }
        if (runArgs.detach()) {
            err.println(prog + ": note: -v copies " + (n == 1 ? "the directory" : "the directories")
                    + " into the guest; a detached container's later writes stay there");
        }
        return rewritten;
    }

    /**
     * Copies the guest's copies back over the host directories (not {@code :ro}, not for
     * {@code -d}). Every volume is tried; the first failure is thrown after all were.
     */
    void copyOut() throws VbakeException, InterruptedException {
        if (runArgs.detach()) {
            return;
        }
        int n = 0;
        VbakeException first = null;
        for (RunArgs.HostVolume v : runArgs.volumes()) {
            String guest = guestRoot + "/" + n++;
            if (v.readOnly()) {
                continue;
            }
            try {
                copyOut(guest, v.host());
            } catch (VbakeException e) {
                if (first == null) {
                    first = e;
                } else {
                    err.println(prog + ": " + e.getMessage());
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private void copyOut(String guest, Path host) throws VbakeException, InterruptedException {
        try {
            new HostCopy(session, runner, hostAgent, events).out(guest, host, w -> err.println(prog + ": warning: " + w));
        } catch (VbakeException e) {
            throw new VbakeException(ExitCodes.FAILURE, e.getMessage().replace("cannot copy back to",
                    "cannot copy the volume back to"), null, e.getCause());
        }
    }
}
