package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;

/** The CLIs in-process on paths that fail before any guest would boot: bad usage and kernel checks. */
class MainTest {

    @TempDir
    Path home;

    private Map<String, String> env;

    @BeforeEach
    void isolateFromTheUsersConfig() {
        env = Map.of("HOME", home.toString());
    }

    @Test
    void unknownOptionIsOneLinePlusAHint() {
        Result r = run("vdkr", "--bogus", "info");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.errLines()).hasSize(2);
        assertThat(r.errLines().get(0)).startsWith("vdkr: ").contains("--bogus");
        assertThat(r.errLines().get(1)).isEqualTo("Try 'vdkr --help' for usage.");
        assertThat(r.out).isEmpty();
        r.assertNoStackTrace();
    }

    @Test
    void helpShowsExamplesAndSucceeds() {
        Result r = run("vdkr", "--help");

        assertThat(r.code).isEqualTo(ExitCodes.OK);
        assertThat(r.out).contains("Usage: vdkr", "--arch", "Examples:", "vdkr -a aarch64 info");
        assertThat(r.err).isEmpty();
    }

    @Test
    void helpUsesTheProgramNameItWasCalledBy() {
        Result r = run("vpdmn-x86_64", "--help");

        assertThat(r.code).isEqualTo(ExitCodes.OK);
        assertThat(r.out).contains("Usage: vpdmn-x86_64", "Examples:", "podman");
    }

    @Test
    void noCommandIsBadUsage() {
        Result r = run("vdkr");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains("no command given", "--help");
        r.assertNoStackTrace();
    }

    @Test
    void unknownArchIsBadInputNamingIt() {
        Result r = run("vdkr", "-a", "sparc", "info");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.errLines().get(0)).startsWith("vdkr: ").contains("'sparc'");
        assertThat(r.err).contains("aarch64", "x86_64");
        r.assertNoStackTrace();
    }

    @Test
    void unknownSuiteIsBadInputNamingIt() {
        assumeTrue(Arch.host().isPresent(), "host arch is one vbake targets");

        Result r = run("vdkr", "--suite", "sid", "info");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains("'sid'", "trixie", "bookworm");
        r.assertNoStackTrace();
    }

    @Test
    void unknownSuiteFromTheConfigFileIsBadInput() throws IOException {
        Path config = home.resolve(".config/vpdmn/config");
        Files.createDirectories(config.getParent());
        Files.writeString(config, "suite=sid\n", StandardCharsets.UTF_8);

        Result r = run("vpdmn", "-a", "x86_64", "info");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains("'sid'");
    }

    @Test
    void badResourcesAreBadInput() {
        assertThat(run("vdkr", "-a", "x86_64", "--memory", "100", "info").code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(run("vdkr", "-a", "x86_64", "--cpus", "99", "info").code).isEqualTo(ExitCodes.BAD_INPUT);
        Result notANumber = run("vdkr", "--memory", "lots", "info");
        assertThat(notANumber.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(notANumber.err).contains("lots");
        notANumber.assertNoStackTrace();
    }

    @Test
    void kernelCheckOfAMissingFileIsBadInput() {
        Path missing = home.resolve("no-such-config");

        Result r = run("vbake", "kernel", "check", missing.toString());

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).startsWith("vbake: ").contains(missing.toString());
        r.assertNoStackTrace();
    }

    @Test
    void kernelCheckOfAFileThatIsNoKernelConfigIsBadInput() throws IOException {
        Path notAConfig = home.resolve("notes.txt");
        Files.writeString(notAConfig, "hello\n", StandardCharsets.UTF_8);

        Result r = run("vbake", "kernel", "check", notAConfig.toString(), "--arch", "x86_64");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains(notAConfig.toString(), "not a kernel config");
        r.assertNoStackTrace();
    }

    @Test
    void kernelCheckOfAnIncompleteConfigFailsNamingWhatIsMissing() throws IOException {
        Path config = home.resolve("config-small");
        Files.writeString(config, String.join("\n",
                "# Linux/x86 6.12.0 Kernel Configuration",
                "CONFIG_BLK_DEV_INITRD=y",
                "CONFIG_MODULES=y",
                "# CONFIG_VIRTIO_BLK is not set",
                ""), StandardCharsets.UTF_8);

        Result r = run("vbake", "kernel", "check", config.toString(), "--arch", "x86_64", "--runtime", "docker");

        assertThat(r.code).isEqualTo(ExitCodes.FAILURE);
        assertThat(r.out).contains("missing CONFIG_VIRTIO_BLK (not set)", "FAILED: docker guest on x86_64");
        assertThat(r.out).doesNotContain("missing CONFIG_BLK_DEV_INITRD ", "missing CONFIG_MODULES ");
        r.assertNoStackTrace();
    }

    @Test
    void kernelCheckWithAnUnknownArchIsBadInput() throws IOException {
        Path config = home.resolve("config-small");
        Files.writeString(config, "CONFIG_MODULES=y\n", StandardCharsets.UTF_8);

        Result r = run("vbake", "kernel", "check", config.toString(), "--arch", "sparc");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains("'sparc'");
    }

    @Test
    void unknownVbakeCommandIsBadUsage() {
        Result r = run("vbake", "bogus");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.errLines()).hasSize(2);
        assertThat(r.errLines().get(0)).startsWith("vbake: ").contains("bogus");
        assertThat(r.errLines().get(1)).isEqualTo("Try 'vbake --help' for usage.");
        r.assertNoStackTrace();
    }

    @Test
    void unknownSubcommandOptionPointsAtThatSubcommandsHelp() {
        Result r = run("vbake", "kernel", "check", "--bogus", "x");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.errLines()).last().isEqualTo("Try 'vbake kernel check --help' for usage.");
    }

    @Test
    void vbakeWithoutArgumentsShowsUsageAndFails() {
        Result r = run("vbake");

        assertThat(r.code).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err).contains("Usage: vbake", "kernel", "images");
    }

    @Test
    void kernelCheckHelpShowsExamples() {
        Result r = run("vbake", "kernel", "check", "--help");

        assertThat(r.code).isEqualTo(ExitCodes.OK);
        assertThat(r.out).contains("Examples:", "vbake kernel check");
    }

    private Result run(String prog, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(prog, args, null, out, err, env, false);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    private record Result(int code, String out, String err) {
        List<String> errLines() {
            return err.lines().toList();
        }

        void assertNoStackTrace() {
            assertThat(out + err).doesNotContain("\tat ", "Exception", "internal error");
        }
    }
}
