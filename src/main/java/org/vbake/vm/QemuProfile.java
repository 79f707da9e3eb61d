package org.vbake.vm;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.List;
import org.vbake.api.Arch;

/**
 * How to run one target arch under QEMU; read from {@code qemu-configs/<arch>.json}.
 * {@code tcgThread} is TCG's {@code thread=} option: {@code multi} (one host thread per vCPU, the
 * default when absent) or {@code single}.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record QemuProfile(
        String arch,
        String binary,
        String machine,
        String tcgCpu,
        String tcgThread,
        String kvmCpu,
        int memoryMb,
        int cpus,
        String console,
        String diskDevice,
        String serialBusDevice,
        String rngDevice,
        List<String> kernelArgs) {

    private static final ObjectMapper JSON = new ObjectMapper();

    public static QemuProfile load(Arch arch) {
        String resource = "/org/vbake/qemu-configs/" + arch.id() + ".json";
        try (InputStream in = QemuProfile.class.getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("missing QEMU profile " + resource);
            }
            return JSON.readValue(in, QemuProfile.class);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read QEMU profile " + resource, e);
        }
    }
}
