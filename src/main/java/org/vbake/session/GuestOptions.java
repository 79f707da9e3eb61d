package org.vbake.session;

import java.nio.file.Path;
import java.time.Duration;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/**
 * What a user chooses about a guest.
 *
 * @param stateRoot     null for the default ({@code ~/.vdkr/<arch>})
 * @param stateSizeMb   size of a new state disk (sparse file)
 * @param storageDriver engine storage driver ({@code overlay2}/{@code vfs} for docker, {@code overlay}/{@code vfs}
 *                      for podman); null for the runtime's default
 * @param inputDisk     read-only disk image with files to import, attached as serial {@code vbake-input}; null for none
 * @param outputDisk    writable disk image for a filesystem the guest makes (serial {@code vbake-output}); null for none
 * @param resume        resume the guest the last command on this state dir saved, and save this one at the end
 *                      (false: boot, and power off at the end)
 * @param kvm           use KVM when the target is the host's arch and KVM really runs a guest here (probed once)
 */
public record GuestOptions(
        Arch arch,
        RuntimeKind runtime,
        String suite,
        Path stateRoot,
        Path cacheDir,
        int memoryMb,
        int cpus,
        long stateSizeMb,
        Duration bootTimeout,
        String storageDriver,
        Path inputDisk,
        Path outputDisk,
        boolean network,
        boolean resume,
        boolean kvm) {

    public static final String DEFAULT_SUITE = "trixie";

    public static GuestOptions defaults(Arch arch, RuntimeKind runtime) {
        return new GuestOptions(arch, runtime, DEFAULT_SUITE, null, null, 0, 0, 32 * 1024, Duration.ofMinutes(3),
                null, null, null, false, true, true);
    }

    public GuestOptions withSuite(String s) {
        return new GuestOptions(arch, runtime, s, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, resume, kvm);
    }

    public GuestOptions withStateRoot(Path p) {
        return new GuestOptions(arch, runtime, suite, p, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, resume, kvm);
    }

    public GuestOptions withCacheDir(Path p) {
        return new GuestOptions(arch, runtime, suite, stateRoot, p, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, resume, kvm);
    }

    public GuestOptions withResources(int mem, int n) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, mem, n, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, resume, kvm);
    }

    public GuestOptions withStorageDriver(String driver) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                driver, inputDisk, outputDisk, network, resume, kvm);
    }

    /** With a user-mode NIC for published ports (resident guests). */
    public GuestOptions withNetwork(boolean on) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, on, resume, kvm);
    }

    /** Whether to resume a saved guest and save this one (see {@code resume}). */
    public GuestOptions withResume(boolean on) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, on, kvm);
    }

    /** Whether KVM may be used (it still is only when it really works here). */
    public GuestOptions withKvm(boolean on) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, outputDisk, network, resume, on);
    }

    public GuestOptions withInputDisk(Path disk) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, disk, outputDisk, network, resume, kvm);
    }

    public GuestOptions withOutputDisk(Path disk) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout,
                storageDriver, inputDisk, disk, network, resume, kvm);
    }
}
