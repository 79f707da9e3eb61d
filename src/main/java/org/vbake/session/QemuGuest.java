package org.vbake.session;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import com.fasterxml.jackson.databind.JsonNode;
import org.vbake.agent.AgentClient;
import org.vbake.agent.AgentProtocolException;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.agent.Protocol.Hello;
import org.vbake.agent.Protocol.PowerOffReply;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;
import org.vbake.instance.StateDir;
import org.vbake.vm.GuestPostMortem;
import org.vbake.vm.QemuCommandLine;
import org.vbake.vm.QemuDriver;
import org.vbake.vm.QmpClient;
import org.vbake.vm.Snapshot;

/**
 * A guest whose QEMU this process runs (booted or resumed): it holds the instance lock and the
 * QEMU process, and at its end either saves the guest for the next command (the state
 * filesystem synced and frozen, QEMU stopped and its device state written beside the RAM file
 * the guest's memory already lives in) or powers it off (engine stopped, disks synced and
 * unmounted). Either way no QEMU is left: a QMP {@code quit}, then a kill, make sure.
 */
abstract class QemuGuest implements Guest {

    private static final Duration POWEROFF_TIMEOUT = Duration.ofSeconds(40);
    /** A guest that panics closes the agent link a moment before QEMU exits. */
    private static final Duration LINK_TO_EXIT = Duration.ofSeconds(2);
    private static final Duration EXIT_GRACE = Duration.ofSeconds(10);
    private static final Duration SAVE_TIMEOUT = Duration.ofSeconds(60);

    protected final GuestOptions options;
    protected final StateDir state;
    protected final EventListener events;
    private final StateDir.Lock lock;
    protected final QemuDriver.Vm vm;
    private final Thread killOnExit;
    /** What a save of this guest is bound to; null when it is not to be saved (--no-resume). */
    private final Snapshot binding;
    protected AgentClient agent;
    protected Hello hello;
    private boolean diskAdded;
    private boolean ended;

    QemuGuest(GuestOptions options, StateDir state, EventListener events, StateDir.Lock lock, QemuDriver.Vm vm,
            Snapshot binding) {
        this.options = options;
        this.state = state;
        this.events = events;
        this.lock = lock;
        this.vm = vm;
        this.binding = binding;
        this.killOnExit = new Thread(vm::kill, "vbake-kill-qemu");
        Runtime.getRuntime().addShutdownHook(killOnExit);
    }

    @Override
    public AgentClient agent() {
        return agent;
    }

    @Override
    public Hello hello() {
        return hello;
    }

    @Override
    public boolean isAlive() {
        return vm.isAlive();
    }

    @Override
    public boolean isResident() {
        return false;
    }

    long qemuPid() {
        return vm.pid();
    }

    /** Connects to the agent socket QEMU serves and does the handshake, before {@code deadline}. */
    void connectAgent(long deadline) throws GuestException, InterruptedException, IOException {
        agent = openAgent(deadline);
        while (hello == null) {
            Duration left = Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
            try {
                hello = agent.handshake(left);
            } catch (AgentProtocolException e) {
                // A link that closes before the HELLO reply (seen once in CI, never reproduced)
                // is retried on a new connection while QEMU lives and the deadline allows.
                if (!vm.isAlive() || System.nanoTime() > deadline || e.getMessage().contains("speaks protocol")) {
                    throw e;
                }
                events.on(new Event.Debug("agent handshake failed (" + e.getMessage() + "); reconnecting"));
                agent.close();
                agent = null;
                agent = openAgent(deadline);
            }
        }
    }

    private AgentClient openAgent(long deadline) throws GuestException, InterruptedException {
        while (true) {
            if (!vm.isAlive()) {
                throw failure("QEMU exited before the guest came up", null);
            }
            if (System.nanoTime() > deadline) {
                throw failure("the guest's agent did not answer in time", null);
            }
            try {
                return AgentClient.connect(state.agentSocket(), Duration.ofMillis(500),
                        line -> events.on(new Event.Debug(line)), false);
            } catch (IOException e) {
                // QEMU has not created the socket yet
            }
        }
    }

    @Override
    public GuestException failure(String message, Throwable cause) {
        List<String> console = GuestPostMortem.readLines(state.consoleLog());
        for (String l : console.subList(Math.max(0, console.size() - 15), console.size())) {
            events.on(new Event.Debug("console: " + l));
        }
        String why = postMortem(console, cause instanceof AgentProtocolException ? LINK_TO_EXIT : Duration.ZERO);
        return new GuestException(why == null ? message : message + " (" + why + ")", state.consoleLog(), cause);
    }

    @Override
    public String postMortem() {
        return postMortem(GuestPostMortem.readLines(state.consoleLog()), LINK_TO_EXIT);
    }

    private String postMortem(List<String> console, Duration awaitExit) {
        if (vm.isAlive() && !awaitExit.isZero()) {
            try {
                vm.awaitExit(awaitExit);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        return GuestPostMortem.explain(vm.exitStatus(), console, GuestPostMortem.readLines(vm.qemuLog()));
    }

    @Override
    public void attachDisk(String name, Path file) throws VbakeException, InterruptedException {
        if (!vm.spec().hotplugPort()) {
            throw new IllegalStateException("a disk can only be added to a guest started with a hot-plug port");
        }
        try (QmpClient.Connection qmp = QmpClient.connect(state.qmpSocket())) {
            var node = QmpClient.args();
            node.put("driver", "raw");
            node.put("node-name", name);
            // As the disks given at boot: a discard (mke2fs's first step) becomes a hole in the file.
            node.put("discard", "unmap");
            node.putObject("file").put("driver", "file").put("filename", file.toAbsolutePath().toString())
                    .put("discard", "unmap");
            qmp.execute("blockdev-add", node);
            var dev = QmpClient.args();
            dev.put("driver", "virtio-blk-pci");
            dev.put("drive", name);
            dev.put("id", name + "-disk");
            dev.put("bus", QemuCommandLine.HOTPLUG_PORT);
            dev.put("serial", "vbake-" + name);
            qmp.execute("device_add", dev);
        } catch (IOException e) {
            throw failure("cannot add the " + name + " disk: " + e.getMessage(), e);
        }
        diskAdded = true;
    }

    @Override
    public void end(boolean save) throws InterruptedException {
        if (ended) {
            return;
        }
        ended = true;
        long t0 = System.nanoTime();
        try {
            if (save && binding != null && !diskAdded && vm.isAlive() && hello != null && agent != null
                    && agent.isOpen()) {
                if (save()) {
                    events.on(new Event.Phase("guest saved", Duration.ofNanos(System.nanoTime() - t0)));
                    return;
                }
            }
            powerOff();
            events.on(new Event.Phase("shutdown", Duration.ofNanos(System.nanoTime() - t0)));
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(killOnExit);
            } catch (IllegalStateException ignored) {
                // already shutting down: the hook will run, harmlessly
            }
            try {
                lock.close();
            } catch (IOException ignored) {
                // releasing a lock cannot usefully fail
            }
        }
    }

    /** Powers the guest off (engine stopped, disks synced and unmounted) and makes sure QEMU is gone. */
    void powerOff() throws InterruptedException {
        // Without a handshake the agent takes no POWEROFF: QEMU is stopped below instead.
        if (agent != null && hello != null && vm.isAlive()) {
            try {
                PowerOffReply reply = agent.powerOff(POWEROFF_TIMEOUT);
                if (!reply.ok()) {
                    events.on(new Event.Progress("warning: guest power-off: " + reply.message()));
                }
            } catch (IOException e) {
                events.on(new Event.Debug("power-off request failed: " + e.getMessage()));
            }
        }
        if (agent != null) {
            agent.close();
        }
        vm.stop(agent != null && hello != null ? EXIT_GRACE : Duration.ZERO);
    }

    /** After a failed restore: the lock stays with the caller, who boots instead. */
    void releaseHookOnly() {
        ended = true;
        try {
            Runtime.getRuntime().removeShutdownHook(killOnExit);
        } catch (IllegalStateException ignored) {
            // already shutting down
        }
    }

    /** Kills QEMU at once (a failed resume); the state disk is left to the next boot's journal. */
    void kill() throws InterruptedException {
        if (agent != null) {
            agent.close();
        }
        vm.kill();
        vm.stop(Duration.ZERO);
    }

    /**
     * Saves the guest for the next command: sync and freeze the state filesystem (so the disk is
     * clean whatever happens next), stop the VM, write its device state (its RAM is the RAM file
     * already), quit QEMU, and record what the saved guest is bound to. False when any step
     * fails: the caller then powers off, and the next command boots.
     */
    private boolean save() throws InterruptedException {
        Path devices = state.savedDevices();
        Path partial = devices.resolveSibling(devices.getFileName() + ".new");
        try {
            Files.deleteIfExists(state.snapshotRecord());
            ExitStatus frozen = agent.exec(new ExecRequest(List.of(GuestSession.AGENT, "suspend-prepare"), null, null,
                    false), null, java.io.OutputStream.nullOutputStream(), java.io.OutputStream.nullOutputStream());
            if (!frozen.succeeded()) {
                events.on(new Event.Debug("suspend-prepare failed: " + frozen));
                return false;
            }
            agent.close();
            Files.deleteIfExists(partial);
            try (QmpClient.Connection qmp = QmpClient.connect(state.qmpSocket())) {
                qmp.execute("stop");
                events.on(new Event.Debug("guest frozen and stopped; saving its device state"));
                pauseForTests("save");
                var caps = QmpClient.args();
                caps.putArray("capabilities").addObject().put("capability", "x-ignore-shared").put("state", true);
                qmp.execute("migrate-set-capabilities", caps);
                var uri = QmpClient.args();
                uri.put("uri", "exec:cat > '" + partial.toString().replace("'", "'\\''") + "'");
                qmp.execute("migrate", uri);
                awaitMigration(qmp, System.nanoTime() + SAVE_TIMEOUT.toNanos());
                qmp.execute("quit");
            }
            if (!vm.awaitExit(EXIT_GRACE)) {
                throw new IOException("QEMU did not quit after the save");
            }
            vm.stop(Duration.ZERO);
            try (var ch = java.nio.channels.FileChannel.open(partial, java.nio.file.StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            Files.move(partial, devices, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            binding.sealed(state.stateDisk(), state.ramFile(), devices).write(state.snapshotRecord());
            return true;
        } catch (IOException e) {
            events.on(new Event.Progress("warning: could not save the guest for the next command ("
                    + e.getMessage() + "); the next command boots"));
            try {
                Files.deleteIfExists(partial);
                Files.deleteIfExists(state.snapshotRecord());
            } catch (IOException ignored) {
                // nothing to restore from either way: no record
            }
            if (!vm.isAlive()) {
                vm.stop(Duration.ZERO);
                return true;   // QEMU is gone; the state filesystem was frozen clean before it stopped
            }
            try (QmpClient.Connection qmp = QmpClient.connect(state.qmpSocket())) {
                qmp.execute("cont");
            } catch (IOException ignored) {
                // the power-off below escalates to a kill
            }
            agent = reconnect();
            return false;
        }
    }

    /** After a failed save: the agent again, so that the power-off can be clean; null if it does not answer. */
    private AgentClient reconnect() throws InterruptedException {
        try {
            AgentClient a = AgentClient.connect(state.agentSocket(), Duration.ofSeconds(5),
                    line -> events.on(new Event.Debug(line)), false);
            a.handshake(Duration.ofSeconds(10));
            return a;
        } catch (IOException e) {
            hello = null;
            return null;
        }
    }

    /**
     * For the tests that kill QEMU in the middle of a save or a restore: {@code VBAKE_TEST_PAUSE=save:MS}
     * (or {@code resume:MS}) holds the step for that long, after a debug line says where it is.
     */
    static void pauseForTests(String step) throws InterruptedException {
        String hook = System.getenv("VBAKE_TEST_PAUSE");
        if (hook != null && hook.startsWith(step + ":")) {
            Thread.sleep(Long.parseLong(hook.substring(step.length() + 1)));
        }
    }

    /** Polls {@code query-migrate} until the migration is done. */
    static void awaitMigration(QmpClient.Connection qmp, long deadline) throws IOException, InterruptedException {
        while (true) {
            JsonNode st = qmp.execute("query-migrate");
            String status = st.path("status").asText("");
            if (status.equals("completed")) {
                return;
            }
            if (status.equals("failed") || status.equals("cancelled")) {
                throw new IOException("migration " + status + (st.has("error-desc") ? ": "
                        + st.get("error-desc").asText() : ""));
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("migration not completed in time (status " + status + ")");
            }
            Thread.sleep(10);
        }
    }
}
