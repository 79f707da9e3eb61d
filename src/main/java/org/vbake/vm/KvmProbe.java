package org.vbake.vm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.vbake.process.ProcessRunner;

/**
 * Whether KVM really runs a guest on this host. {@code /dev/kvm} may exist and open while a KVM
 * guest hangs (nested virtualisation without the CPU flags), so the guest kernel is booted under
 * KVM with no root disk and a short deadline: a kernel that gets as far as its panic (and so
 * exits QEMU, with {@code panic=-1 -no-reboot}) proves it. The verdict is remembered per host
 * (machine id, kernel release, QEMU version) in the cache.
 */
public final class KvmProbe {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration DEADLINE = Duration.ofSeconds(10);

    private KvmProbe() {
    }

    /** The verdict, and how it was reached (for a --debug line). */
    public record Verdict(boolean works, String why) {
    }

    /**
     * @param qemu    the QEMU to probe (the target's, which must be the host's arch)
     * @param kernel  a kernel for this arch (the guest image's)
     * @param cacheFile where verdicts are remembered
     */
    public static Verdict probe(QemuInfo qemu, QemuProfile profile, Path kernel, Path cacheFile, Path scratchDir,
            ProcessRunner runner) throws InterruptedException {
        if (!Files.exists(Path.of("/dev/kvm"))) {
            return new Verdict(false, "no /dev/kvm");
        }
        if (!Files.isReadable(Path.of("/dev/kvm")) || !Files.isWritable(Path.of("/dev/kvm"))) {
            return new Verdict(false, "/dev/kvm is not readable and writable by this user");
        }
        String key = hostKey() + "|" + qemu.version();
        ObjectNode cache = read(cacheFile);
        JsonNode hit = cache.path(key);
        if (hit.isObject()) {
            return new Verdict(hit.path("works").asBoolean(), hit.path("why").asText() + " (remembered)");
        }
        Verdict v = run(qemu, profile, kernel, scratchDir, runner);
        ObjectNode entry = cache.putObject(key);
        entry.put("works", v.works());
        entry.put("why", v.why());
        write(cacheFile, cache);
        return v;
    }

    private static Verdict run(QemuInfo qemu, QemuProfile profile, Path kernel, Path scratchDir, ProcessRunner runner)
            throws InterruptedException {
        Path console = scratchDir.resolve("kvm-probe-" + ProcessHandle.current().pid() + ".log");
        List<String> argv = new ArrayList<>(List.of("timeout", "-s", "KILL", Long.toString(DEADLINE.toSeconds()),
                qemu.binary().toString(), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-machine", profile.machine(), "-accel", "kvm", "-cpu", profile.kvmCpu(), "-m", "256",
                "-kernel", kernel.toString(), "-append", "console=" + profile.console() + " panic=-1",
                "-serial", "file:" + console));
        try {
            Files.createDirectories(scratchDir);
            long t0 = System.nanoTime();
            ProcessRunner.Result r = runner.run(argv, Map.of(), DEADLINE.plusSeconds(10), line -> { });
            long ms = (System.nanoTime() - t0) / 1_000_000;
            String log = Files.exists(console) ? Files.readString(console, java.nio.charset.StandardCharsets.ISO_8859_1)
                    : "";
            if (r.exitCode() == 137 || r.exitCode() == 124) {
                return new Verdict(false, "a KVM guest did not finish booting in " + DEADLINE.toSeconds() + " s");
            }
            if (log.contains("Kernel panic") || log.contains("VFS:")) {
                return new Verdict(true, "a KVM guest booted to its kernel panic in " + ms + " ms");
            }
            return new Verdict(false, "a KVM guest ended without booting (exit " + r.exitCode() + ")");
        } catch (IOException e) {
            return new Verdict(false, "the probe could not run: " + e.getMessage());
        } finally {
            try {
                Files.deleteIfExists(console);
            } catch (IOException ignored) {
                // a small log in the scratch dir
            }
        }
    }

    private static String hostKey() {
        String machineId;
        String release;
        try {
            machineId = Files.readString(Path.of("/etc/machine-id")).strip();
        } catch (IOException e) {
            machineId = "unknown";
        }
        try {
            release = Files.readString(Path.of("/proc/sys/kernel/osrelease")).strip();
        } catch (IOException e) {
            release = "unknown";
        }
        return machineId + "|" + release;
    }

    private static ObjectNode read(Path file) {
        try {
            JsonNode n = JSON.readTree(Files.readAllBytes(file));
            return n instanceof ObjectNode o ? o : JSON.createObjectNode();
        } catch (IOException e) {
            return JSON.createObjectNode();
        }
    }

    private static void write(Path file, ObjectNode cache) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(file.getFileName() + "." + ProcessHandle.current().pid());
            Files.write(tmp, JSON.writeValueAsBytes(cache));
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException ignored) {
            // probed again next time
        }
    }
}
