package org.vbake.session;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;
import org.vbake.image.GuestImage;
import org.vbake.image.GuestImages;
import org.vbake.instance.StateDir;
import org.vbake.process.ProcessRunner;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.vm.Accel;
import org.vbake.vm.KvmProbe;
import org.vbake.vm.QemuCommandLine;
import org.vbake.vm.QemuInfo;
import org.vbake.vm.QemuProfile;
import org.vbake.vm.Snapshot;
import org.vbake.vm.VmSpec;

/**
 * Gets a guest running for {@link GuestSession#start}: checks and prepares what every start needs
 * (suite, QEMU, the guest image, the instance lock, the state disk), then resumes the saved guest
 * when it is valid for this one, or boots.
 */
final class GuestLauncher {
    private final GuestOptions options;
    private final ProcessRunner runner;
    private final EventListener events;
    private final ContainerRuntime runtime;
    private final StateDir state;
    private final QemuProfile profile;
    private final GuestImage image;
    private StateDir.Lock lock;

    private final QemuInfo qemu;
    private final Accel accel;

    private GuestLauncher(GuestOptions options, ProcessRunner runner, EventListener events, ContainerRuntime runtime,
            StateDir state, QemuProfile profile, GuestImage image, QemuInfo qemu, Accel accel) {
        this.options = options;
        this.runner = runner;
        this.events = events;
        this.runtime = runtime;
        this.state = state;
        this.profile = profile;
        this.image = image;
        this.qemu = qemu;
        this.accel = accel;
    }

    static GuestLauncher prepare(GuestOptions options, ProcessRunner runner, EventListener events)
            throws VbakeException, InterruptedException {
        if (!GuestSession.SUITES.contains(options.suite())) {
            throw new BadInputException("unknown suite '" + options.suite() + "'", "choose one of: trixie, bookworm");
        }
        ContainerRuntime runtime = ContainerRuntime.of(options.runtime(), options.storageDriver());
        StateDir state = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        QemuProfile profile = QemuProfile.load(options.arch());
        if (!GuestSession.onPath(profile.binary())) {
            throw new BadInputException(profile.binary() + " is not installed",
                    "install it with: apt-get install " + (options.arch().id().equals("aarch64")
                            ? "qemu-system-arm" : "qemu-system-x86") + " (or run tests/setup-host.sh)");
        }
        long t0 = System.nanoTime();
        GuestImage image = new GuestImages(GuestSession.cacheDir(options), runner, events)
                .ensure(options.suite(), options.arch(), options.runtime(), false);
        GuestSession.phase(events, "image ready", t0);
        Path cache = GuestSession.cacheDir(options);
        QemuInfo qemu;
        try {
            qemu = QemuInfo.of(profile.binary(), profile.machine(), cache.resolve("qemu-info.json"), runner);
        } catch (IOException e) {
            throw new GuestException("cannot ask " + profile.binary() + " what it is: " + e.getMessage(), null, e);
        }
        Accel accel = Accel.TCG;
        if (options.kvm() && org.vbake.api.Arch.host().map(h -> h == options.arch()).orElse(false)) {
            KvmProbe.Verdict v = KvmProbe.probe(qemu, profile, image.kernel(), cache.resolve("kvm-verdict.json"),
                    cache.resolve("tmp"), runner);
            events.on(new Event.Debug("KVM: " + (v.works() ? "used" : "not used, TCG instead") + ": " + v.why()));
            accel = v.works() ? Accel.KVM : Accel.TCG;
        }
        return new GuestLauncher(options, runner, events, runtime, state, profile, image, qemu, accel);
    }

    StateDir.Lock lock() throws BadInputException, InterruptedException {
        try {
            state.create();
            lock = state.lock(Duration.ofMinutes(10), () -> events.on(new Event.Progress(
                    "waiting for another command using " + state.dir() + " to finish")));
            return lock;
        } catch (IOException e) {
            throw new BadInputException("cannot use state directory " + state.dir() + ": " + e.getMessage());
        }
    }

    private VmSpec baseSpec() {
        return new VmSpec(image.kernel(), image.initrd(), image.toolsDisk(), state.stateDisk(),
                state.agentSocket(), state.qmpSocket(), state.consoleLog(), state.pidFile(), accel,
                options.memoryMb(), options.cpus(), List.of("vbake.state=" + runtime.storagePath()),
                options.inputDisk(), options.outputDisk(), options.network());
    }

    /** The savable spec and what a save of it is bound to. */
    private record Savable(VmSpec spec, Snapshot binding) {
    }

    private Savable savable() throws GuestException, InterruptedException {
        try {
            Files.createDirectories(state.snapshotDir());
            VmSpec spec = baseSpec().savable(qemu.machine(), state.ramFile());
            Snapshot binding = Snapshot.expected(options.network() ? "resident" : "cold", qemu,
                    spec.accel().name(), spec.memoryMb() > 0 ? spec.memoryMb() : profile.memoryMb(),
                    spec.cpus() > 0 ? spec.cpus() : profile.cpus(), QemuCommandLine.build(profile, spec),
                    image.key(), runtime.kind().id() + "/" + runtime.driver());
            return new Savable(spec, binding);
        } catch (IOException e) {
            throw new GuestException("cannot prepare a savable guest: " + e.getMessage(), null, e);
        }
    }

    /**
     * A guest whose memory is a (sparse) file needs room for all of it: a full disk under a
     * shared mapping kills QEMU. Without the room the guest boots with ordinary memory, and is not
     * saved.
     */
    private boolean roomForRam() throws InterruptedException {
        try {
            Files.createDirectories(state.snapshotDir());
            long needed = ((long) (options.memoryMb() > 0 ? options.memoryMb() : profile.memoryMb()) << 20) + (1L << 30);
            long free = Files.getFileStore(state.snapshotDir()).getUsableSpace();
            if (free >= needed) {
                return true;
            }
            events.on(new Event.Progress(String.format(java.util.Locale.ROOT, "warning: %.1f GB free in %s, a guest "
                    + "that can be saved needs %.1f GB there; booting one that is powered off at the end",
                    free / 1e9, state.snapshotDir(), needed / 1e9)));
            return false;
        } catch (IOException e) {
            return false;
        }
    }

    /** The saved guest, resumed and prepared; null (after one warning) when there is none to use. */
    GuestSession tryResume(GuestSession.Preparation prep) throws VbakeException, InterruptedException {
        Snapshot saved = Snapshot.read(state.snapshotRecord());
        if (saved == null) {
            return null;
        }
        Savable s = savable();
        String mismatch = saved.mismatch(s.binding(), state.stateDisk(), state.ramFile(), state.savedDevices());
        try {
            // Used at most once: gone before anything else happens.
            Files.deleteIfExists(state.snapshotRecord());
        } catch (IOException e) {
            mismatch = "its record cannot be removed (" + e.getMessage() + ")";
        }
        if (mismatch != null) {
            events.on(new Event.Progress("warning: not resuming the saved guest: " + mismatch + "; booting"));
            return null;
        }
        long t0 = System.nanoTime();
        ResumedGuest guest;
        try {
            guest = ResumedGuest.restore(options, state, events, lock, runner, profile, s.spec(), s.binding(),
                    runtime);
        } catch (VbakeException | IOException e) {
            events.on(new Event.Progress("warning: could not resume the saved guest (" + e.getMessage()
                    + "); booting"));
            return null;
        }
        GuestSession.phase(events, "resume (qemu start to engine ready)", t0);
        GuestSession session = new GuestSession(options, state, runtime, events, guest);
        try {
            if (prep.stage() != null) {
                prep.stage().run(session);
            }
            if (prep.beforeEngine() != null) {
                session.restartEngine(prep.beforeEngine());
            }
            return session;
        } catch (VbakeException | InterruptedException | RuntimeException e) {
            session.close();
            throw e;
        }
    }

    /** Boots (once more when QEMU dies during the boot: a rare TCG failure). */
    GuestSession boot(GuestSession.Preparation prep, StateDir.Lock held) throws VbakeException, InterruptedException {
        try {
            return bootOnce(prep, held);
        } catch (DiedDuringBoot e) {
            // Seen a few times in several hundred boots under TCG, x86_64 guests only, never on
            // demand: QEMU gone during the boot. No command has run yet and the work before the
            // engine starts can be done again, so the guest is booted once more; the first
            // console log is kept and named.
            Path kept = e.log().resolveSibling(e.log().getFileName() + ".failed-boot");
            try {
                Files.copy(e.log(), kept, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException copyFailed) {
                kept = e.log();
            }
            events.on(new Event.Progress("warning: " + e.getMessage() + "; console log kept as " + kept
                    + "; booting once more"));
            return bootOnce(prep, lock());
        }
    }

    private GuestSession bootOnce(GuestSession.Preparation prep, StateDir.Lock held) throws VbakeException, InterruptedException {
        BootedGuest guest;
        try {
            GuestSession.ensureStateDisk(state, options, runner, events);
            Savable s = options.resume() && roomForRam() ? savable() : null;
            // Without a save, a disk may still be added later (an .ext4 export of a streamed command).
            VmSpec spec = s != null ? s.spec() : options.resume() ? baseSpec().withHotplugPort() : baseSpec();
            events.on(new Event.Debug("state dir " + state.dir() + ", console log " + state.consoleLog()
                    + ", image " + image.dir()));
            long t1 = System.nanoTime();
            guest = BootedGuest.launch(options, state, events, held, runner, profile, spec,
                    s != null ? s.binding() : null);
            GuestSession.phase(events, "qemu started", t1);
        } catch (IOException e) {
            GuestSession.closeQuietly(held);
            throw new GuestException("cannot start QEMU: " + e.getMessage(), state.qemuLog(), e);
        } catch (VbakeException | RuntimeException e) {
            GuestSession.closeQuietly(held);
            throw e;
        }
        GuestSession session = new GuestSession(options, state, runtime, events, guest);
        try {
            session.bringUp(guest, prep);
            return session;
        } catch (GuestException e) {
            boolean died = !guest.isAlive() && e.log() != null;
            session.close();
            throw died ? new DiedDuringBoot(e) : e;
        } catch (VbakeException | InterruptedException | RuntimeException e) {
            session.close();
            throw e;
        }
    }

    /** QEMU exited while the guest was booting, before any command ran. */
    private static final class DiedDuringBoot extends GuestException {
        DiedDuringBoot(GuestException failure) {
            super(failure.getMessage(), failure.log(), failure);
        }
    }
}
