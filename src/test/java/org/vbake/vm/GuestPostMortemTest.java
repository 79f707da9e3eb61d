package org.vbake.vm;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestPostMortemTest {

    @Test
    void kernelPanicIsTheCauseEvenAfterOtherComplaints() {
        List<String> console = List.of(
                "vbake-init2: root ready after 3.67s",
                "vbake-agent: cannot probe something",
                "[   11.204512] traps: vbake-agent[188] general protection fault ip:4a1b2c sp:c000 error:0",
                "[   11.210001] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b",
                "[   11.210100] Kernel Offset: disabled");
        assertThat(GuestPostMortem.explain(0, console, List.of()))
                .isEqualTo("QEMU exited with status 0; the guest console says: "
                        + "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b");
    }

    @Test
    void userSpaceFaultWhenTheKernelSurvived() {
        List<String> console = List.of("vbake-agent: handshake done",
                "[   20.000001] dockerd[321]: segfault at 8 ip 000055d0 sp 00007ffc error 4 in dockerd[55d0+2000]");
        assertThat(GuestPostMortem.cause(console))
                .isEqualTo("dockerd[321]: segfault at 8 ip 000055d0 sp 00007ffc error 4 in dockerd[55d0+2000]");
    }

    @Test
    void goRuntimeCrashOfTheAgent() {
        List<String> console = List.of("vbake-agent: port /dev/vport2p1 opened",
                "fatal error: unexpected signal during runtime execution",
                "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x41d2e3]");
        assertThat(GuestPostMortem.cause(console)).isEqualTo("fatal error: unexpected signal during runtime execution");
    }

    @Test
    void signalledQemuAndItsOwnLastWords() {
        assertThat(GuestPostMortem.explain(134, List.of("vbake-init2: root ready after 3.1s"),
                List.of("", "qemu-system-x86_64: ../tcg/tcg.c:4000: tcg_gen_code: Assertion failed.", "")))
                .isEqualTo("QEMU was killed by signal 6; QEMU said: "
                        + "qemu-system-x86_64: ../tcg/tcg.c:4000: tcg_gen_code: Assertion failed.");
    }

    @Test
    void nothingKnownWhileQemuRunsQuietly() {
        assertThat(GuestPostMortem.explain(null, List.of("vbake-agent: handshake done", "[    8.39] reboot: Power down"),
                List.of())).isNull();
    }

    @Test
    void longLinesAreClippedAndMissingFilesAreNothing(@TempDir Path dir) throws Exception {
        Path console = dir.resolve("console.log");
        Files.writeString(console, "Kernel panic - not syncing: " + "x".repeat(500) + "\n");
        String why = GuestPostMortem.explain(1, GuestPostMortem.readLines(console),
                GuestPostMortem.readLines(dir.resolve("no-such-qemu.log")));
        assertThat(why).startsWith("QEMU exited with status 1; the guest console says: Kernel panic").endsWith("...");
        assertThat(why.length()).isLessThan(300);
    }
}
