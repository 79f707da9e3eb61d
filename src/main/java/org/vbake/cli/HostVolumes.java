package org.vbake.cli;

import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.session.GuestSession;
import org.vbake.storage.HostTrees;

/**
 * {@code -v HOST_DIR:CTR[:ro]} for a container in the guest, by copying: the host directory is
 * copied onto the guest's state disk before the command, the option rewritten to that copy, and
 * after a foreground command the copy comes back over the host directory (new and changed files;
 * nothing on the host is deleted). {@code :ro} volumes are not copied back. A detached container
 * keeps its copy in the guest: what it writes later does not reach the host.
 */
final class HostVolumes {

    private final GuestSession session;
    private final RunArgs runArgs;
    private final String guestRoot;
    private final EventListener events;
    private final PrintStream err;
    private final String prog;

    HostVolumes(GuestSession session, RunArgs runArgs, String guestRoot, EventListener events, PrintStream err,
            String prog) {
        this.session = session;
        this.runArgs = runArgs;
        this.guestRoot = guestRoot;
        this.events = events;
        this.err = err;
        this.prog = prog;
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
            long t0 = System.nanoTime();
            session.copyIn(guest, out -> HostTrees.writeTar(host, out));
            events.on(new Event.Phase("volume " + host + " copied in", Duration.ofNanos(System.nanoTime() - t0)));
            // Indexes are relative to the words after the verb.
            rewritten.set(v.index() + 1, v.rewritten(guest));
        }
        if (runArgs.detach()) {
            err.println(prog + ": note: -v copies " + (n == 1 ? "the directory" : "the directories")
                    + " into the guest; a detached container's later writes stay there");
        }
        return rewritten;
    }

    /** Copies the guest's copies back over the host directories (not {@code :ro}, not for {@code -d}). */
    void copyOut() throws VbakeException, InterruptedException {
        if (runArgs.detach()) {
            return;
        }
        int n = 0;
        for (RunArgs.HostVolume v : runArgs.volumes()) {
            String guest = guestRoot + "/" + n++;
            if (v.readOnly()) {
                continue;
            }
            long t0 = System.nanoTime();
            AtomicReference<Exception> failure = new AtomicReference<>();
            PipedInputStream in = new PipedInputStream(1 << 20);
            Thread extractor;
            try {
                PipedOutputStream out = new PipedOutputStream(in);
                extractor = new Thread(() -> {
                    try (in) {
                        HostTrees.extractTar(in, v.host());
                        in.transferTo(java.io.OutputStream.nullOutputStream());
                    } catch (IOException | RuntimeException e) {
                        failure.set(e);
                    }
                }, "vbake-volume-out");
                extractor.setDaemon(true);
                extractor.start();
                try (out) {
                    session.copyOut(guest, out);
                } catch (IOException e) {
                    // the extractor failed first: reported below
                }
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            extractor.join();
            if (failure.get() != null) {
                throw new VbakeException(ExitCodes.FAILURE, "cannot copy the volume back to " + v.host() + ": "
                        + failure.get().getMessage(), null, failure.get());
            }
            events.on(new Event.Phase("volume " + v.host() + " copied out", Duration.ofNanos(System.nanoTime() - t0)));
        }
    }
}
