package org.vbake.session;

import java.io.IOException;
import java.nio.file.Files;
import org.vbake.api.EventListener;
import org.vbake.instance.StateDir;
import org.vbake.process.ProcessRunner;
import org.vbake.vm.QemuDriver;
import org.vbake.vm.QemuProfile;
import org.vbake.vm.Snapshot;
import org.vbake.vm.VmSpec;

/**
 * A guest booted for this command: kernel, initramfs, tools and state disks, then the agent's
 * handshake; the engine is started by {@link GuestSession}. A boot changes the state disk, so
 * whatever saved guest there was is thrown away first.
 */
final class BootedGuest extends QemuGuest {

    private BootedGuest(GuestOptions options, StateDir state, EventListener events, StateDir.Lock lock,
            QemuDriver.Vm vm, Snapshot binding) {
        super(options, state, events, lock, vm, binding);
    }

    @Override
    public String how() {
        return "booted";
    }

    /**
     * Starts QEMU for {@code spec} (the caller holds {@code lock}, which this guest takes over).
     *
     * @param binding what a save at the end is bound to; null for a guest that is not saved
     */
    static BootedGuest launch(GuestOptions options, StateDir state, EventListener events, StateDir.Lock lock,
            ProcessRunner runner, QemuProfile profile, VmSpec spec, Snapshot binding) throws IOException {
        discardSnapshot(state);
        QemuDriver.Vm vm = new QemuDriver(runner, events).start(profile, spec, state.qemuLog());
        return new BootedGuest(options, state, events, lock, vm, binding);
    }

    /** Removes a saved guest: its record first, so a half-removed one is never restored. */
    static void discardSnapshot(StateDir state) throws IOException {
        Files.deleteIfExists(state.snapshotRecord());
        Files.deleteIfExists(state.savedDevices());
        // A new guest's memory file starts empty (and sparse).
        Files.deleteIfExists(state.ramFile());
    }
}
