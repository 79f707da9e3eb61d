package org.vbake.session;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;
import org.vbake.agent.AgentClient;
import org.vbake.agent.Protocol.Hello;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.process.ProcessRunner;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StorageFile;

/**
 * Runs one engine command (vdkr/vpdmn) as its {@link Plan} says, on whatever guest it gets: a
 * resident one, the saved guest resumed, or a boot. Host inputs are staged before any guest
 * starts and streamed into it (or, for a guest booted with {@code --no-resume}, put on an input
 * disk); work that needs the engine stopped happens before it starts or around a restart; after
 * the command the store is synced (resident), copies come back, transfer files go, and the
 * storage tree is exported when asked for and the command succeeded. The CLI builds the plan and
 * the {@link Steps} (its own parts: the engine words, volumes, ports, the terminal) and renders
 * the result; everything in between is here.
 */
public final class CommandRunner {

    /**
     * What one command needs.
     *
     * @param options      the guest (with {@link GuestOptions#resume()}; an input or output disk is only used without it)
     * @param resident     the daemon link of a resident guest; null to start one (resume or boot)
     * @param staging      host files for the guest, staged before any guest starts (see {@link #streamed()})
     * @param inputStorage a storage tree staged on {@code staging} to replace the store with; null for none
     * @param transfer     the guest directory streamed files and volume copies go to (on the state disk)
     * @param syncAfter    sync the state disk after the command (a resident guest may be killed any time)
     * @param export       the storage tree to write after a successful command; null for none
     */
    public record Plan(GuestOptions options, ResidentLink resident, InputDisk staging, Path inputStorage,
            String transfer, boolean syncAfter, Export export) {

        /** Inputs go into the running guest through the agent rather than on a disk attached at boot. */
        public boolean streamed() {
            return resident != null || options.resume();
        }
    }

    /** A resident guest's daemon, after the handshake. */
    public record ResidentLink(AgentClient client, Hello hello) {
    }

    /**
     * The storage tree, after the command.
     *
     * @param tar            a {@code .tar*} file opened before the guest started; null for an ext4 image
     * @param partition      an {@code .ext4} target; null for a tar
     * @param outputDisk     the sparse disk the guest makes the ext4 image on (beside the target)
     * @param withContainers keep the engine's containers
     * @param mtimeClamp     SOURCE_DATE_EPOCH, or null
     */
    public record Export(StorageFile tar, Path partition, Path outputDisk, boolean withContainers, Long mtimeClamp) {
    }

    /** The command's own parts, from the CLI. */
    public interface Steps {
        /** Work with the engine stopped (docker RepoDigests). */
        default void beforeEngine(GuestSession session) throws VbakeException, InterruptedException {
        }

        /** True when {@link #beforeEngine} has work. */
        default boolean needsEngineStopped() {
            return false;
        }

        /** Once the guest runs and its inputs are there: e.g. volumes copied in, ports forwarded. */
        default void prepare(GuestSession session) throws VbakeException, InterruptedException {
        }

        /** The command; returns its exit code. */
        int run(GuestSession session) throws VbakeException, InterruptedException, IOException;

        /** After the command: e.g. volumes copied back; returns the exit code to report. */
        default int finish(GuestSession session, int code) throws VbakeException, InterruptedException {
            return code;
        }

        /** Whether {@link #prepare} put files in the transfer directory (volume copies). */
        default boolean usesTransfer() {
            return false;
        }

        /** Whether they must stay in the guest (a detached container's volumes). */
        default boolean keepTransfer() {
            return false;
        }
    }

    private final ProcessRunner runner;
    private final EventListener events;
    private final Consumer<String> warnings;

    /** @param warnings lines for the user that are not progress (the CLI prints them on stderr) */
    public CommandRunner(ProcessRunner runner, EventListener events, Consumer<String> warnings) {
        this.runner = runner;
        this.events = events;
        this.warnings = warnings;
    }

    /**
     * Gets the guest, runs the command, exports, and ends the guest (saved for the next command,
     * powered off, or let go). {@code onGuest} gets the session as soon as there is one (signal
     * forwarding).
     */
    public int execute(Plan plan, Steps steps, Consumer<GuestSession> onGuest)
            throws VbakeException, InterruptedException, IOException {
        if (plan.resident() != null && plan.export() != null && plan.export().partition() != null) {
            throw new BadInputException("--storage " + plan.export().partition() + ": an .ext4 partition image needs a "
                    + "guest of its own", "use .tar/.tar.gz/.tar.zst, or stop the resident guest first ('vmemres stop')");
        }
        GuestOptions options = plan.options();
        InputDisk staging = plan.staging();
        boolean staged = staging.hasFiles();
        boolean stopEngine = plan.inputStorage() != null || steps.needsEngineStopped();
        GuestSession.BeforeEngine before = s -> {
            if (plan.inputStorage() != null) {
                StorageTrees.unpack(s, staging, events);
            }
            steps.beforeEngine(s);
        };
        if (!plan.streamed() && staged) {
            options = options.withInputDisk(staging.build(runner));
        }
        if (!plan.streamed() && plan.export() != null && plan.export().partition() != null) {
            options = options.withOutputDisk(plan.export().outputDisk());
        }
        GuestSession session;
        AutoCloseable exclusive = null;
        if (plan.resident() != null) {
            session = GuestSession.attach(options, plan.resident().client(), plan.resident().hello(), events);
        } else {
            GuestSession.BeforeEngine upload = staged && plan.streamed() ? s -> s.upload(staging) : null;
            session = GuestSession.start(options, runner, events,
                    new GuestSession.Preparation(upload, stopEngine ? before : null));
        }
        try (session) {
            onGuest.accept(session);
            int code;
            try {
                if (plan.resident() != null) {
                    exclusive = stopEngine ? session.exclusive() : null;
                    if (staged) {
                        session.upload(staging);
                    }
                    if (stopEngine) {
                        session.restartEngine(before);
                    }
                }
                steps.prepare(session);
                code = steps.run(session);
                if (plan.syncAfter()) {
                    // A resident guest may be killed at any time: what the engine wrote (layer
                    // files are not fsync'd by it) goes to the state disk now.
                    session.check(List.of("sync", "-f", session.runtime().storagePath()), "sync the state disk");
                }
                code = steps.finish(session, code);
            } finally {
                if (steps.usesTransfer() && !steps.keepTransfer()) {
                    removeTransfer(session, plan.transfer());
                } else if (plan.streamed() && staged) {
                    removeTransfer(session, staging.guestRoot());
                }
                release(exclusive);
            }
            if (plan.export() != null) {
                if (code != 0) {
                    warnings.accept("not writing " + target(plan.export()) + ": the command failed");
                } else {
                    export(session, plan.export());
                }
            }
            return code;
        }
    }

    private void export(GuestSession session, Export export) throws VbakeException, InterruptedException {
        StorageExporter exporter = new StorageExporter(events);
        if (export.partition() != null) {
            if (session.options().resume()) {
                // Added now: the saved guest had no such disk (this guest is powered off at its end).
                session.guest().attachDisk("output", export.outputDisk());
            }
            exporter.exportPartition(session, export.outputDisk(), export.partition(), export.withContainers(),
                    export.mtimeClamp());
            return;
        }
        // On a resident guest, other clients' commands wait while the tree is read.
        AutoCloseable alone = session.exclusive();
        try {
            exporter.export(session, export.tar(), export.withContainers(), export.mtimeClamp());
        } finally {
            release(alone);
        }
    }

    private static Path target(Export export) {
        return export.partition() != null ? export.partition() : export.tar().target();
    }

    private void removeTransfer(GuestSession session, String transfer) throws InterruptedException {
        if (!session.isAlive()) {
            return;
        }
        try {
            session.check(List.of("rm", "-rf", transfer), "remove " + transfer);
        } catch (VbakeException e) {
            warnings.accept("warning: " + e.getMessage());
        }
    }

    private static void release(AutoCloseable c) throws VbakeException {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (VbakeException e) {
            throw e;
        } catch (Exception e) {
            throw new VbakeException(1, "cannot release the resident guest: " + e.getMessage(), null, e);
        }
    }

    /** Deletes the output disk of an ext4 export that did not finish (it is renamed into place when it does). */
    public static void discard(Export export) {
        if (export != null && export.outputDisk() != null) {
            try {
                Files.deleteIfExists(export.outputDisk());
            } catch (IOException ignored) {
                // a hidden .partial file is all that can remain, swept by the next export
            }
        }
    }
}
