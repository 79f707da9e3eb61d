package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;

class ToolConfigTest {

    @TempDir
    Path tmp;

    @Test
    void optionBeatsProgramNameEnvAndConfig() throws Exception {
        ToolConfig config = docker("vdkr-x86_64", Map.of("VDKR_ARCH", "x86_64"), configFile("arch=x86_64"));

        assertThat(config.resolveArch("aarch64")).isEqualTo(Arch.AARCH64);
    }

    @Test
    void programNameBeatsEnvAndConfig() throws Exception {
        assertThat(docker("vdkr-aarch64", Map.of("VDKR_ARCH", "x86_64"), configFile("arch=x86_64"))
                .resolveArch(null)).isEqualTo(Arch.AARCH64);
        assertThat(podman("vpdmn-x86_64", Map.of("VPDMN_ARCH", "aarch64"), configFile("arch=aarch64"))
                .resolveArch(null)).isEqualTo(Arch.X86_64);
        assertThat(docker("/usr/local/bin/vdkr-x86_64", Map.of(), null).resolveArch(null)).isEqualTo(Arch.X86_64);
    }

    @Test
    void envBeatsConfig() throws Exception {
        assertThat(docker("vdkr", Map.of("VDKR_ARCH", "x86_64"), configFile("arch=aarch64"))
                .resolveArch(null)).isEqualTo(Arch.X86_64);
        assertThat(podman("vpdmn", Map.of("VPDMN_ARCH", "aarch64"), configFile("arch=x86_64"))
                .resolveArch(null)).isEqualTo(Arch.AARCH64);
    }

    @Test
    void eachToolReadsOnlyItsOwnEnvVariable() throws Exception {
        Map<String, String> env = Map.of("VDKR_ARCH", "aarch64", "VPDMN_ARCH", "x86_64");

        assertThat(docker("vdkr", env, null).resolveArch(null)).isEqualTo(Arch.AARCH64);
        assertThat(podman("vpdmn", env, null).resolveArch(null)).isEqualTo(Arch.X86_64);
    }

    @Test
    void blankEnvFallsThroughToConfig() throws Exception {
        ToolConfig config = docker("vdkr", Map.of("VDKR_ARCH", "  "), configFile("arch=x86_64"));

        assertThat(config.resolveArch(null)).isEqualTo(Arch.X86_64);
    }

    @Test
    void configBeatsHost() throws Exception {
        for (Arch arch : Arch.values()) {
            ToolConfig config = docker("vdkr", Map.of(), configFile("# mine\n\nsuite=trixie\narch = " + arch.id() + "\n"));

            assertThat(config.resolveArch(null)).isEqualTo(arch);
        }
    }

    @Test
    void configValueMayBeQuoted() throws Exception {
        ToolConfig config = docker("vdkr", Map.of(), configFile("arch=\"x86_64\"\nsuite=\"bookworm\"\n"));

        assertThat(config.resolveArch(null)).isEqualTo(Arch.X86_64);
        assertThat(config.configValue("suite")).isEqualTo("bookworm");
    }

    @Test
    void hostWhenNothingElseSaysAnything() throws Exception {
        assumeTrue(Arch.host().isPresent(), "host arch is one vbake targets");

        assertThat(docker("vdkr", Map.of(), tmp.resolve("does-not-exist")).resolveArch(null))
                .isEqualTo(Arch.host().get());
        assertThat(podman("vpdmn", Map.of(), null).resolveArch(null)).isEqualTo(Arch.host().get());
    }

    @Test
    void programNameWithoutAnArchSuffixFallsThrough() throws Exception {
        ToolConfig config = docker("vdkr-dev", Map.of("VDKR_ARCH", "x86_64"), null);

        assertThat(config.resolveArch(null)).isEqualTo(Arch.X86_64);
    }

    @Test
    void aliasesAreAcceptedFromEverySource() throws Exception {
        assertThat(docker("vdkr", Map.of(), null).resolveArch("arm64")).isEqualTo(Arch.AARCH64);
        assertThat(docker("vdkr", Map.of(), null).resolveArch("AMD64")).isEqualTo(Arch.X86_64);
        assertThat(docker("vdkr-arm64", Map.of(), null).resolveArch(null)).isEqualTo(Arch.AARCH64);
        assertThat(podman("vpdmn-amd64", Map.of(), null).resolveArch(null)).isEqualTo(Arch.X86_64);
        assertThat(docker("vdkr", Map.of("VDKR_ARCH", "amd64"), null).resolveArch(null)).isEqualTo(Arch.X86_64);
        assertThat(docker("vdkr", Map.of(), configFile("arch=arm64")).resolveArch(null)).isEqualTo(Arch.AARCH64);
    }

    @Test
    void badOptionValueNamesTheOption() {
        ToolConfig config = docker("vdkr", Map.of(), null);

        assertThatThrownBy(() -> config.resolveArch("sparc"))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.exitCode()).isEqualTo(ExitCodes.BAD_INPUT);
                    assertThat(e.getMessage()).contains("'sparc'", "-a/--arch");
                    assertThat(e.hint()).contains("aarch64", "x86_64");
                });
    }

    @Test
    void badEnvValueNamesTheVariable() {
        assertThatThrownBy(() -> docker("vdkr", Map.of("VDKR_ARCH", "mips"), null).resolveArch(null))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.exitCode()).isEqualTo(ExitCodes.BAD_INPUT);
                    assertThat(e.getMessage()).contains("'mips'", "VDKR_ARCH");
                });
        assertThatThrownBy(() -> podman("vpdmn", Map.of("VPDMN_ARCH", "mips"), null).resolveArch(null))
                .isInstanceOfSatisfying(BadInputException.class,
                        e -> assertThat(e.getMessage()).contains("'mips'", "VPDMN_ARCH"));
    }

    @Test
    void badConfigValueNamesTheFile() throws IOException {
        Path file = configFile("arch=ppc64\n");

        assertThatThrownBy(() -> docker("vdkr", Map.of(), file).resolveArch(null))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.exitCode()).isEqualTo(ExitCodes.BAD_INPUT);
                    assertThat(e.getMessage()).contains("'ppc64'", file.toString(), "arch=");
                });
    }

    @Test
    void malformedConfigLineReportsFileAndLine() throws IOException {
        Path file = configFile("# settings\n\nsuite=trixie\nthis is not a setting\narch=x86_64\n");

        assertThatThrownBy(() -> docker("vdkr", Map.of(), file).resolveArch(null))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.exitCode()).isEqualTo(ExitCodes.BAD_INPUT);
                    assertThat(e.getMessage()).startsWith(file + ":4:").contains("this is not a setting");
                });
        assertThatThrownBy(() -> docker("vdkr", Map.of(), file).configValue("suite"))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(file + ":4:");
    }

    @Test
    void defaultConfigFilePrefersXdgConfigHome() {
        assertThat(ToolConfig.defaultConfigFile(RuntimeKind.DOCKER, Map.of("HOME", "/home/u")))
                .isEqualTo(Path.of("/home/u/.config/vdkr/config"));
        assertThat(ToolConfig.defaultConfigFile(RuntimeKind.PODMAN,
                Map.of("HOME", "/home/u", "XDG_CONFIG_HOME", "/xdg")))
                .isEqualTo(Path.of("/xdg/vpdmn/config"));
    }

    private Path configFile(String text) throws IOException {
        Path file = Files.createTempFile(tmp, "config", "");
        Files.writeString(file, text, StandardCharsets.UTF_8);
        return file;
    }

    private static ToolConfig docker(String prog, Map<String, String> env, Path configFile) {
        return new ToolConfig(prog, RuntimeKind.DOCKER, env, configFile);
    }

    private static ToolConfig podman(String prog, Map<String, String> env, Path configFile) {
        return new ToolConfig(prog, RuntimeKind.PODMAN, env, configFile);
    }
}
