package org.vbake.cli;

import java.io.IOException;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.process.ProcessRunner;
import org.vbake.session.GuestSession;

/**
 * A host directory into the guest and back, through the agent's tree tools built for the host
 * ({@code export-tree} here and {@code import-tree} there; {@code export-tree} there and
 * {@code merge-tree} here): hardlinks, FIFOs, modes, byte-exact names, atomic per file. Used by
 * {@code -v} volumes and {@code cp}.
 */
final class HostCopy {

    private static final Duration TIMEOUT = Duration.ofHours(2);
    static final String WARNING = "merge-tree: warning: ";

    private final GuestSession session;
    private final ProcessRunner runner;
    private final Path helper;
    private final EventListener events;

    HostCopy(GuestSession session, ProcessRunner runner, Path helper, EventListener events) {
        this.session = session;
        this.runner = runner;
        this.helper = helper;
        this.events = events;
    }

    /** {@code host} (a directory) becomes the guest directory {@code guest}. */
    void in(Path host, String guest) throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        session.copyIn(guest, out -> {
            List<String> errors = new ArrayList<>();
            ProcessRunner.Result r = runner.pipe(List.of(helper.toString(), "export-tree", "--root", host.toString(),
                    "--skip-xattr", "security.selinux"), null, out, TIMEOUT, errors::add);
            errors.forEach(line -> events.on(new Event.Debug(line)));
            if (!r.ok()) {
                throw new IOException(errors.isEmpty() ? "exit code " + r.exitCode() : errors.get(errors.size() - 1));
            }
        });
        events.on(new Event.Phase(host + " copied in", Duration.ofNanos(System.nanoTime() - t0)));
    }

    /**
     * The guest directory {@code guest} merged over {@code host} (new and changed entries; nothing
     * else touched). What the host user could not keep goes to {@code warnings} in one line.
     */
    void out(String guest, Path host, Consumer<String> warnings) throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        AtomicReference<Exception> failure = new AtomicReference<>();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        PipedInputStream in = new PipedInputStream(1 << 20);
        Thread merger;
        try {
            PipedOutputStream out = new PipedOutputStream(in);
            merger = new Thread(() -> {
                try (in) {
                    ProcessRunner.Result r = runner.pipe(List.of(helper.toString(), "merge-tree", "--root",
                            host.toString()), in, null, TIMEOUT, errors::add);
                    in.transferTo(java.io.OutputStream.nullOutputStream());
                    if (!r.ok()) {
                        failure.set(new IOException(lastError(errors, r.exitCode())));
                    }
                } catch (IOException | RuntimeException e) {
                    failure.set(e);
                }
            }, "vbake-copy-out");
            merger.setDaemon(true);
            merger.start();
            try (out) {
                session.copyOut(guest, out);
            } catch (IOException e) {
                // the merger failed first: reported below
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        merger.join();
        for (String line : errors) {
            if (line.startsWith(WARNING)) {
                warnings.accept(host + ": " + line.substring(WARNING.length()));
            }
        }
        if (failure.get() != null) {
            throw new VbakeException(ExitCodes.FAILURE, "cannot copy back to " + host + ": "
                    + failure.get().getMessage(), null, failure.get());
        }
        events.on(new Event.Phase(host + " copied out", Duration.ofNanos(System.nanoTime() - t0)));
    }

    private static String lastError(List<String> errors, int code) {
        for (int i = errors.size() - 1; i >= 0; i--) {
            if (!errors.get(i).startsWith(WARNING)) {
                return errors.get(i).replaceFirst("^merge-tree: ", "");
            }
        }
        return "exit code " + code;
    }
}
