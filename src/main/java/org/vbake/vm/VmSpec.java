package org.vbake.vm;

import java.nio.file.Path;
import java.util.List;

/**
 * Everything that varies between two boots of the same arch profile: files, sockets, sizes.
 *
 * @param kernelArgs appended after the profile's own arguments and the console
 * @param inputDisk  optional read-only disk (serial {@code vbake-input}) with files for the guest to import; null for none
 * @param outputDisk optional writable disk (serial {@code vbake-output}) the guest makes a filesystem on; null for none
 * @param network    a QEMU user-mode NIC (no outbound access) for ports forwarded from the host
 * @param machine    the machine type to use instead of the profile's (a pinned one, {@code virt-7.2}); null for the profile's
 * @param ramFile    guest RAM in this file, shared (so a saved guest's memory is the file itself); null for anonymous memory
 * @param hotplugPort a PCIe root port ({@code rp1}) for a disk added while the guest runs
 * @param incoming   start paused, waiting for a saved guest to be loaded ({@code -incoming defer})
 */
public record VmSpec(
        Path kernel,
        Path initrd,
        Path toolsDisk,
        Path stateDisk,
        Path agentSocket,
        Path qmpSocket,
        Path consoleLog,
        Path pidFile,
        Accel accel,
        int memoryMb,
        int cpus,
        List<String> kernelArgs,
        Path inputDisk,
        Path outputDisk,
        boolean network,
        String machine,
        Path ramFile,
        boolean hotplugPort,
        boolean incoming) {

    public VmSpec {
        kernelArgs = List.copyOf(kernelArgs);
    }

    /** A spec for a plain boot: the profile's machine, anonymous memory, no hot-plug port. */
    public VmSpec(Path kernel, Path initrd, Path toolsDisk, Path stateDisk, Path agentSocket, Path qmpSocket,
            Path consoleLog, Path pidFile, Accel accel, int memoryMb, int cpus, List<String> kernelArgs,
            Path inputDisk, Path outputDisk, boolean network) {
        this(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel, memoryMb, cpus,
                kernelArgs, inputDisk, outputDisk, network, null, null, false, false);
    }

    public VmSpec withInputDisk(Path disk) {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, disk, outputDisk, network, machine, ramFile, hotplugPort, incoming);
    }

    public VmSpec withOutputDisk(Path disk) {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, inputDisk, disk, network, machine, ramFile, hotplugPort, incoming);
    }

    /**
     * A guest that can be saved and restored: pinned machine type, RAM in {@code ramFile}, a
     * hot-plug port for disks that differ per command (every run of one state dir is the same).
     */
    public VmSpec savable(String pinnedMachine, Path ram) {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, inputDisk, outputDisk, network, pinnedMachine, ram, true, incoming);
    }

    /** With a PCIe root port for a disk added while the guest runs. */
    public VmSpec withHotplugPort() {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, inputDisk, outputDisk, network, machine, ramFile, true, incoming);
    }

    /** The same guest, started to receive a saved one. */
    public VmSpec restoring() {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, inputDisk, outputDisk, network, machine, ramFile, hotplugPort, true);
    }
}
