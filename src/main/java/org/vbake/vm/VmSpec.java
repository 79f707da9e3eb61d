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
        boolean network) {

    public VmSpec {
        kernelArgs = List.copyOf(kernelArgs);
    }

    public VmSpec withInputDisk(Path disk) {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, disk, outputDisk, network);
    }

    public VmSpec withOutputDisk(Path disk) {
        return new VmSpec(kernel, initrd, toolsDisk, stateDisk, agentSocket, qmpSocket, consoleLog, pidFile, accel,
                memoryMb, cpus, kernelArgs, inputDisk, disk, network);
    }
}
