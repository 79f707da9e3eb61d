package org.vbake.session;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import java.util.List;
import org.vbake.agent.Protocol.EngineReady;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;
import org.vbake.instance.StateDir;
import org.vbake.process.ProcessRunner;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.vm.QemuDriver;
import org.vbake.vm.QemuProfile;
import org.vbake.vm.QmpClient;
import org.vbake.vm.Snapshot;
import org.vbake.vm.VmSpec;

/**
 * The guest an earlier command saved, restored instead of booted: the same QEMU command line
 * with {@code -incoming defer}, its device state loaded (its memory is the RAM file), resumed,
 * the agent's handshake, the wall clock set from the host and the state filesystem thawed, and
 * the engine, which was running when it was saved, answering again. Each step has a deadline;
 * the caller boots instead when any fails.
 */
final class ResumedGuest extends QemuGuest {

    private static final Duration QMP_WAIT = Duration.ofSeconds(10);
    private static final Duration LOAD_WAIT = Duration.ofSeconds(30);
    private static final Duration AGENT_WAIT = Duration.ofSeconds(15);
    private static final Duration THAW_WAIT = Duration.ofSeconds(15);
    private static final Duration ENGINE_WAIT = Duration.ofSeconds(30);

    private ResumedGuest(GuestOptions options, StateDir state, EventListener events, StateDir.Lock lock,
            QemuDriver.Vm vm, Snapshot binding) {
        super(options, state, events, lock, vm, binding);
    }

    @Override
    public String how() {
        return "resumed";
    }

    /**
     * Restores the saved guest. The record was checked and removed by the caller (a snapshot is
     * used once); the caller holds {@code lock}, which this guest takes over on success.
     *
     * @throws GuestException when a step fails or misses its deadline; QEMU is gone then and the
     *                        lock still the caller's
     */
    static ResumedGuest restore(GuestOptions options, StateDir state, EventListener events, StateDir.Lock lock,
            ProcessRunner runner, QemuProfile profile, VmSpec spec, Snapshot binding, ContainerRuntime runtime)
            throws VbakeException, InterruptedException, IOException {
        QemuDriver.Vm vm = new QemuDriver(runner, events).start(profile, spec.restoring(), state.qemuLog());
        ResumedGuest guest = new ResumedGuest(options, state, events, lock, vm, binding);
        try {
            guest.resume(runtime);
            return guest;
        } catch (VbakeException | InterruptedException | RuntimeException e) {
            guest.kill();
            guest.releaseHookOnly();
            throw e;
        }
    }

    private void resume(ContainerRuntime runtime) throws VbakeException, InterruptedException {
        QmpClient.Connection[] qmp = new QmpClient.Connection[1];
        try {
            Readiness.await(List.of(
                    new Readiness.Probe("qemu up", QMP_WAIT, "QEMU did not open its control socket", deadline -> {
                        while (qmp[0] == null) {
                            if (!vm.isAlive()) {
                                throw new IOException("QEMU exited");
                            }
                            try {
                                qmp[0] = QmpClient.connect(state.qmpSocket());
                            } catch (IOException e) {
                                Readiness.pause(deadline, "no QMP socket");
                            }
                        }
                    }),
                    new Readiness.Probe("saved guest loaded", LOAD_WAIT, "the saved device state could not be loaded",
                            deadline -> {
                                var caps = QmpClient.args();
                                caps.putArray("capabilities").addObject().put("capability", "x-ignore-shared")
                                        .put("state", true);
                                qmp[0].execute("migrate-set-capabilities", caps);
                                var uri = QmpClient.args();
                                uri.put("uri", "exec:cat '" + state.savedDevices().toString().replace("'", "'\\''")
                                        + "'");
                                qmp[0].execute("migrate-incoming", uri);
                                events.on(new Event.Debug("loading the saved guest"));
                                pauseForTests("resume");
                                awaitMigration(qmp[0], deadline);
                                qmp[0].execute("cont");
                            }),
                    new Readiness.Probe("agent answers", AGENT_WAIT, "the resumed guest's agent did not answer",
                            this::connectAgent),
                    new Readiness.Probe("clock set, state thawed", THAW_WAIT, "the guest could not thaw its state disk",
                            deadline -> thaw()),
                    new Readiness.Probe("engine answers", ENGINE_WAIT, "the " + runtime.kind().id()
                            + " engine did not answer after the resume", deadline -> {
                                EngineReady r = agent.startEngine(runtime.engine(ENGINE_WAIT.toMillis(), options.network()),
                                        ENGINE_WAIT);
                                if (!r.ok()) {
                                    throw new IOException(r.message());
                                }
                            })),
                    events, this::failure);
        } finally {
            if (qmp[0] != null) {
                try {
                    qmp[0].close();
                } catch (IOException ignored) {
                    // the connection was only for the restore
                }
            }
        }
        // The saved memory is this guest's memory from now on: the saved device state is spent.
        try {
            Files.deleteIfExists(state.savedDevices());
        } catch (IOException ignored) {
            // unusable anyway: its record is gone
        }
    }

    /** The guest's clock stopped when it was saved: set it, then thaw the state filesystem. */
    private void thaw() throws IOException, InterruptedException {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long now = System.currentTimeMillis() * 1_000_000L;
        ExitStatus st = agent.exec(new ExecRequest(List.of(GuestSession.AGENT, "resume-finish", "--clock",
                Long.toString(now)), null, null, false), null, OutputStream.nullOutputStream(), err);
        if (!st.succeeded()) {
            throw new IOException("resume-finish: " + err.toString(StandardCharsets.UTF_8).strip());
        }
        events.on(new Event.Debug(err.toString(StandardCharsets.UTF_8).strip()));
    }
}
