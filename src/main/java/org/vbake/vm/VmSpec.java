package org.vbake.vm;

import java.nio.file.Path;
import java.util.List;

/**
 * Everything that varies between two boots of the same arch profile: files, sockets, sizes.
 *
 * @param kernelArgs appended after the profile's own arguments and the console
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
        List<String> kernelArgs) {

    public VmSpec {
        kernelArgs = List.copyOf(kernelArgs);
    }
}
