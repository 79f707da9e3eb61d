package org.vbake.vm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.vbake.api.Arch;

/**
 * Pins the QEMU argv per arch with golden files, so any change to how guests are started shows
 * up as a diff in review. After an intended change, regenerate them with
 * {@code mvn test -Dtest=QemuCommandLineTest -Dgolden.update=true} and review the diff.
 */
class QemuCommandLineTest {

    private static final Path GOLDEN_DIR = Path.of(System.getProperty("basedir", System.getProperty("user.dir")))
            .resolve("src/test/resources/golden");

    @ParameterizedTest
    @EnumSource(Arch.class)
    void argvMatchesGoldenFile(Arch arch) throws IOException {
        List<String> argv = QemuCommandLine.build(QemuProfile.load(arch), spec("/s", Accel.TCG, 0, 0));
        Path golden = GOLDEN_DIR.resolve("qemu-" + arch.id() + ".argv");

        // One argument per line only works while no argument contains a line break.
        assertThat(argv).noneMatch(a -> a.contains("\n") || a.contains("\r"));
        if (Boolean.getBoolean("golden.update")) {
            Files.createDirectories(golden.getParent());
            Files.writeString(golden, String.join("\n", argv) + "\n", StandardCharsets.UTF_8);
        }
        assertThat(golden)
                .as("golden file missing; create it with mvn test -Dtest=QemuCommandLineTest -Dgolden.update=true")
                .isRegularFile();
        assertThat(argv)
                .as("argv for %s differs from %s; if intended, rerun with -Dgolden.update=true and review the diff",
                        arch, golden)
                .containsExactlyElementsOf(Files.readAllLines(golden, StandardCharsets.UTF_8));
    }

    @ParameterizedTest
    @EnumSource(Arch.class)
    void profileDefaultsApplyWhenSpecSaysZero(Arch arch) {
        QemuProfile profile = QemuProfile.load(arch);

        List<String> argv = QemuCommandLine.build(profile, spec("/s", Accel.TCG, 0, 0));

        assertThat(profile.arch()).isEqualTo(arch.id());
        assertThat(argv.get(0)).isEqualTo(arch.qemuBinary());
        assertThat(valueOf(argv, "-m")).isEqualTo(Integer.toString(profile.memoryMb()));
        assertThat(valueOf(argv, "-smp")).isEqualTo(Integer.toString(profile.cpus()));
    }

    @Test
    void kvmUsesTheHostCpuAndNoTcgOptions() {
        List<String> argv = QemuCommandLine.build(QemuProfile.load(Arch.X86_64), spec("/s", Accel.KVM, 0, 0));

        assertThat(argv).containsSubsequence("-accel", "kvm", "-cpu", "host");
        assertThat(valueOf(argv, "-accel")).isEqualTo("kvm");
        assertThat(argv).noneMatch(a -> a.contains("tcg"));
        assertThat(argv).filteredOn("-cpu"::equals).hasSize(1);
    }

    @Test
    void tcgUsesTheProfileCpu() {
        QemuProfile profile = QemuProfile.load(Arch.AARCH64);

        List<String> argv = QemuCommandLine.build(profile, spec("/s", Accel.TCG, 0, 0));

        assertThat(valueOf(argv, "-accel")).startsWith("tcg");
        assertThat(valueOf(argv, "-cpu")).isEqualTo(profile.tcgCpu());
    }

    @Test
    void commaInAPathIsDoubledInsideOptionLists() {
        List<String> argv = QemuCommandLine.build(QemuProfile.load(Arch.AARCH64), spec("/s/a,b", Accel.TCG, 0, 0));

        assertThat(argv).contains(
                "if=none,id=tools,file=/s/a,,b/tools.squashfs,format=raw,readonly=on",
                "if=none,id=state,file=/s/a,,b/state.ext4,format=raw,cache=writeback,discard=unmap",
                "file,id=console,path=/s/a,,b/console.log",
                "socket,id=agent,path=/s/a,,b/run/agent.sock,server=on,wait=off",
                "unix:/s/a,,b/run/qmp.sock,server=on,wait=off");
        // No option list may contain a single comma followed by "b/": that would start a bogus key.
        assertThat(argv).noneMatch(a -> a.contains("a,b/") && a.contains("="));
    }

    @Test
    void escapeDoublesEveryComma() {
        assertThat(QemuCommandLine.escape("/plain/path")).isEqualTo("/plain/path");
        assertThat(QemuCommandLine.escape("a,b,,c")).isEqualTo("a,,b,,,,c");
    }

    @Test
    void memoryAndCpuOverridesWinOverTheProfile() {
        QemuProfile profile = QemuProfile.load(Arch.X86_64);
        assertThat(profile.memoryMb()).isNotEqualTo(4096);
        assertThat(profile.cpus()).isNotEqualTo(4);

        List<String> argv = QemuCommandLine.build(profile, spec("/s", Accel.TCG, 4096, 4));

        assertThat(valueOf(argv, "-m")).isEqualTo("4096");
        assertThat(valueOf(argv, "-smp")).isEqualTo("4");
    }

    @Test
    void specKernelArgsComeAfterConsoleAndProfileArgs() {
        QemuProfile profile = QemuProfile.load(Arch.AARCH64);

        List<String> argv = QemuCommandLine.build(profile, spec("/s", Accel.TCG, 0, 0));

        List<String> expected = new ArrayList<>();
        expected.add("console=" + profile.console());
        expected.addAll(profile.kernelArgs());
        expected.add("vbake.state=/var/lib/docker");
        assertThat(valueOf(argv, "-append")).isEqualTo(String.join(" ", expected));
    }

    @Test
    void launchUnderSetprivDiesWithTheJvm() {
        QemuProfile profile = QemuProfile.load(Arch.AARCH64);
        VmSpec spec = spec("/s", Accel.TCG, 0, 0);
        List<String> plain = QemuCommandLine.build(profile, spec);

        List<String> guarded = QemuDriver.launchArgv(profile, spec, true);

        assertThat(guarded).startsWith("/usr/bin/setpriv", "--pdeathsig", "KILL", "--");
        assertThat(guarded.subList(4, guarded.size())).isEqualTo(plain);
        assertThat(QemuDriver.launchArgv(profile, spec, false)).isEqualTo(plain);
    }

    @Test
    void inputDiskIsReadOnlyWithItsOwnSerial() {
        QemuProfile profile = QemuProfile.load(Arch.AARCH64);

        List<String> without = QemuCommandLine.build(profile, spec("/s", Accel.TCG, 0, 0));
        List<String> with = QemuCommandLine.build(profile,
                spec("/s", Accel.TCG, 0, 0).withInputDisk(Path.of("/in/put,1.img")));

        assertThat(without).noneMatch(a -> a.contains("vbake-input"));
        assertThat(with).containsSubsequence("-drive", "if=none,id=input,file=/in/put,,1.img,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=input,serial=vbake-input");
        List<String> rest = new ArrayList<>(with);
        rest.removeAll(List.of("-drive", "if=none,id=input,file=/in/put,,1.img,format=raw,readonly=on", "-device",
                "virtio-blk-pci,drive=input,serial=vbake-input"));
        List<String> base = new ArrayList<>(without);
        base.removeAll(List.of("-drive", "-device"));
        assertThat(rest).isEqualTo(base);
    }

    @Test
    void outputDiskIsWritableWithItsOwnSerial() {
        List<String> argv = QemuCommandLine.build(QemuProfile.load(Arch.X86_64),
                spec("/s", Accel.TCG, 0, 0).withOutputDisk(Path.of("/o/data.ext4")));

        assertThat(argv).containsSubsequence("-drive",
                "if=none,id=output,file=/o/data.ext4,format=raw,cache=writeback,discard=unmap",
                "-device", "virtio-blk-pci,drive=output,serial=vbake-output");
    }

    private static VmSpec spec(String dir, Accel accel, int memoryMb, int cpus) {
        return new VmSpec(
                Path.of(dir, "vmlinuz"),
                Path.of(dir, "initrd.img"),
                Path.of(dir, "tools.squashfs"),
                Path.of(dir, "state.ext4"),
                Path.of(dir, "run", "agent.sock"),
                Path.of(dir, "run", "qmp.sock"),
                Path.of(dir, "console.log"),
                Path.of(dir, "run", "qemu.pid"),
                accel, memoryMb, cpus,
                List.of("vbake.state=/var/lib/docker"), null, null, false);
    }

    @Test
    void aNetworkedGuestGetsARestrictedUserModeNicAndTellsInit() {
        VmSpec plain = spec("/s", Accel.TCG, 0, 0);
        VmSpec networked = new VmSpec(plain.kernel(), plain.initrd(), plain.toolsDisk(), plain.stateDisk(),
                plain.agentSocket(), plain.qmpSocket(), plain.consoleLog(), plain.pidFile(), plain.accel(), 0, 0,
                plain.kernelArgs(), null, null, true);
        List<String> argv = QemuCommandLine.build(QemuProfile.load(org.vbake.api.Arch.AARCH64), networked);

        assertThat(argv).containsSubsequence("-netdev", "user,id=net0,restrict=on",
                "-device", "virtio-net-pci,netdev=net0");
        assertThat(valueOf(argv, "-append")).endsWith("vbake.net=1");
        assertThat(QemuCommandLine.build(QemuProfile.load(org.vbake.api.Arch.AARCH64), plain))
                .doesNotContain("-netdev").noneMatch(a -> a.contains("vbake.net"));
    }

    @ParameterizedTest
    @EnumSource(Arch.class)
    void aSavableGuestIsPinnedHasFileBackedRamAndAHotplugPortAndRestoresWithTheSameArgv(Arch arch) throws IOException {
        QemuProfile profile = QemuProfile.load(arch);
        String pinned = arch == Arch.AARCH64 ? "virt-7.2" : "pc-q35-7.2";
        VmSpec savable = spec("/s", Accel.TCG, 0, 0).savable(pinned, Path.of("/s/snapshot/ram"));
        List<String> boot = QemuCommandLine.build(profile, savable);
        List<String> restore = QemuCommandLine.build(profile, savable.restoring());

        Path golden = GOLDEN_DIR.resolve("qemu-" + arch.id() + "-savable.argv");
        if (Boolean.getBoolean("golden.update")) {
            Files.writeString(golden, String.join("\n", boot) + "\n", StandardCharsets.UTF_8);
        }
        assertThat(boot).containsExactlyElementsOf(Files.readAllLines(golden, StandardCharsets.UTF_8));
        assertThat(valueOf(boot, "-machine")).isEqualTo(pinned + ",memory-backend=ram0");
        assertThat(valueOf(boot, "-object")).isEqualTo("memory-backend-file,id=ram0,size=2048M,mem-path=/s/snapshot/ram,"
                + "share=on");
        assertThat(boot).containsSubsequence("-device", "pcie-root-port,id=rp1,chassis=1").doesNotContain("-incoming");
        // Restoring: exactly the saved guest's argv, plus waiting for its state.
        assertThat(restore).isEqualTo(concat(boot, List.of("-incoming", "defer")));
    }

    private static List<String> concat(List<String> a, List<String> b) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        return all;
    }

    /** The argument after the only occurrence of {@code flag}. */
    private static String valueOf(List<String> argv, String flag) {
        assertThat(argv).as("occurrences of %s", flag).filteredOn(flag::equals).hasSize(1);
        return argv.get(argv.indexOf(flag) + 1);
    }
}
