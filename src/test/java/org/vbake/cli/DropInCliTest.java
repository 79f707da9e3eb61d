package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What meta-virtualization's vdkr users type that never reaches a guest: vconfig, vstorage,
 * memres, the group words alone, and the options vbake refuses on purpose.
 */
class DropInCliTest {

    @TempDir
    Path home;

    private Map<String, String> env;

    @BeforeEach
    void isolate() {
        env = Map.of("HOME", home.toString(), "XDG_CONFIG_HOME", home.resolve("config").toString(),
                "VBAKE_CACHE_DIR", home.resolve("cache").toString());
    }

    private record Result(int code, String out, String err) {
    }

    private Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run("vdkr", args, null, out, err, env, false);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void vconfigListsSetsReadsAndResetsKeysWithValidation() throws Exception {
        Result list = run("vconfig");
        assertThat(list.code()).isZero();
        assertThat(list.out()).contains("vdkr configuration (" + home.resolve("config/vdkr/config") + "):",
                "  auto-daemon = false (default)", "  registry =  (default)", "Config directory: ");

        assertThat(run("vconfig", "auto-daemon", "true").out()).isEqualTo("Set auto-daemon = true\n");
        assertThat(run("vconfig", "auto-daemon").out()).isEqualTo("true\n");
        assertThat(run("vconfig", "registry", "10.0.2.2:5000").code()).isZero();
        assertThat(Files.readString(home.resolve("config/vdkr/config"))).contains("auto-daemon=true",
                "registry=10.0.2.2:5000");
        assertThat(run("vconfig").out()).contains("  auto-daemon = true\n", "  registry = 10.0.2.2:5000\n");

        Result reset = run("vconfig", "registry", "--reset");
        assertThat(reset.out()).isEqualTo("Reset registry to default: \n");
        assertThat(run("vconfig", "registry").out()).isEqualTo("\n");

        Result badArch = run("vconfig", "arch", "sparc");
        assertThat(badArch.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(badArch.err()).contains("invalid architecture: sparc");
        assertThat(run("vconfig", "idle-timeout", "soon").code()).isEqualTo(ExitCodes.BAD_INPUT);
        Result unknown = run("vconfig", "colour", "red");
        assertThat(unknown.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(unknown.err()).contains("unknown config key: colour", "auto-daemon, idle-timeout");
        assertThat(run("vconfig", "auto-daemon").out()).isEqualTo("true\n");
    }

    @Test
    void configDirMovesTheConfigFile() throws Exception {
        Path dir = home.resolve("elsewhere");
        assertThat(run("--config-dir", dir.toString(), "vconfig", "suite", "bookworm").code()).isZero();
        assertThat(dir.resolve("config")).hasContent("suite=bookworm");
        assertThat(run("vconfig", "suite").out()).isEqualTo("trixie\n");
    }

    @Test
    void vstorageShowsStoresOnTheHostAndRefusesUnknownWords() throws Exception {
        Path store = Files.createDirectories(home.resolve(".vdkr/aarch64/trixie"));
        Files.write(store.resolve("state.ext4"), new byte[64 * 1024]);
        Files.createDirectories(home.resolve(".vdkr/x86_64-ci/bookworm"));

        String sd = home.resolve(".vdkr/aarch64").toString();
        Result list = run("-a", "aarch64", "--state-dir", sd, "vstorage");
        assertThat(list.code()).as(list.err()).isZero();
        assertThat(list.out()).contains("vdkr storage directories", "  aarch64, trixie", "    Path:   " + store,
                "    Status: no memres", "  x86_64 (instance ci), bookworm", "Total: ");

        Result path = run("-a", "aarch64", "--state-dir", sd, "vstorage", "path", "aarch64");
        assertThat(path.out().strip()).isEqualTo(home.resolve(".vdkr/aarch64").toString());
        assertThat(Files.isDirectory(Path.of(path.out().strip()))).isTrue();
        assertThat(run("-a", "aarch64", "--state-dir", sd, "vstorage", "path", "x86_64").code()).isEqualTo(ExitCodes.BAD_INPUT);

        Result df = run("-a", "aarch64", "--state-dir", sd, "vstorage", "df");
        assertThat(df.code()).isZero();
        assertThat(df.out()).contains("STATE DISK", store.toString());

        Result bad = run("-a", "aarch64", "--state-dir", sd, "vstorage", "wipe");
        assertThat(bad.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(bad.err()).contains("vstorage: unknown subcommand 'wipe'", "usage: vstorage");

        Result clean = run("-a", "aarch64", "--state-dir", sd, "vstorage", "clean");
        assertThat(clean.out()).contains("cleaned " + home.resolve(".vdkr/aarch64"));
        assertThat(home.resolve(".vdkr/aarch64")).doesNotExist();
        assertThat(home.resolve(".vdkr/x86_64-ci")).exists();
        assertThat(run("-a", "aarch64", "--state-dir", sd, "vstorage", "clean", "--all").code()).isZero();
        assertThat(home.resolve(".vdkr/x86_64-ci")).doesNotExist();
    }

    @Test
    void memresIsVmemres() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "memres", "status");
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.out()).endsWith(": stopped\n");
        assertThat(run("-a", "aarch64", "memres").err()).contains("no action given");
    }

    @Test
    void groupWordsAloneAreAnErrorAsTheirsSay() {
        Result system = run("-a", "aarch64", "system");
        assertThat(system.code()).isEqualTo(1);
        assertThat(system.err()).contains("system requires a subcommand: df, prune, events, info");
        assertThat(run("-a", "aarch64", "image").err()).contains("image requires a subcommand");
    }

    @Test
    void credentialsAndBlobDirsOnTheCommandLineAreRefused() {
        Result user = run("--registry-user", "me", "--registry-password", "secret", "pull", "x");
        assertThat(user.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(user.err()).contains("not taken on the command line", "login").doesNotContain("secret");
        assertThat(run("--blob-dir", "/x", "images").err()).contains("--blob-dir", "VBAKE_CACHE_DIR");
    }

    @Test
    void theDefaultRegistryQualifiesNamesThatNameNone() {
        assertThat(HostCommands.withDefaultRegistry("alpine:3.20", "10.0.2.2:5000")).isEqualTo("10.0.2.2:5000/alpine:3.20");
        assertThat(HostCommands.withDefaultRegistry("team/app@sha256:" + "a".repeat(64), "r.example"))
                .isEqualTo("r.example/team/app@sha256:" + "a".repeat(64));
        assertThat(HostCommands.withDefaultRegistry("quay.io/x/y:1", "r.example")).isEqualTo("quay.io/x/y:1");
        assertThat(HostCommands.withDefaultRegistry("localhost/x", "r.example")).isEqualTo("localhost/x");
        assertThat(HostCommands.withDefaultRegistry("h:5000/x", "r.example")).isEqualTo("h:5000/x");
        assertThat(HostCommands.withDefaultRegistry("alpine", null)).isEqualTo("alpine");
    }

    @Test
    void aMissingCaCertIsBadInputBeforeAnyGuest() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "--ca-cert",
                home.resolve("none.pem").toString(), "pull", "127.0.0.1:1/x:1");
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("--ca-cert " + home.resolve("none.pem") + ": no such file");
    }
}
