package org.vbake.image.registry;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Base64;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.cli.Main;

/**
 * vdkr/vpdmn login and logout on the host: credentials checked against the registry (Bearer and
 * Basic), written 0600 to the file the pulls read, never taken from the command line.
 */
class LoginTest {

    @TempDir
    Path home;

    private FakeRegistry registry;

    @BeforeEach
    void start() throws Exception {
        registry = new FakeRegistry();
    }

    @AfterEach
    void stop() {
        registry.close();
    }

    private record Result(int code, String out, String err) {
    }

    private Result run(String prog, byte[] stdin, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Map<String, String> env = Map.of("HOME", home.toString(), "XDG_CONFIG_HOME", home.resolve("config").toString());
        int code = Main.run(prog, args, stdin == null ? null : new ByteArrayInputStream(stdin), out, err, env, false);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void loginChecksTheCredentialsWithTheTokenServiceAndStoresThemPrivately() throws Exception {
        registry.tokenUser = "me";
        registry.tokenPassword = "s3cret";

        Result wrong = run("vdkr", "wrong\n".getBytes(), "login", "-u", "me", "--password-stdin", registry.host());
        assertThat(wrong.code()).isEqualTo(1);
        assertThat(wrong.err()).contains("login to " + registry.host() + " failed: unauthorized");
        Path file = home.resolve(".docker/config.json");
        assertThat(file).doesNotExist();

        Result ok = run("vdkr", "s3cret\n".getBytes(), "login", "-u", "me", "--password-stdin", registry.host());
        assertThat(ok.code()).as(ok.err()).isZero();
        assertThat(ok.out()).startsWith("Login Succeeded");
        assertThat(Files.getPosixFilePermissions(file)).isEqualTo(PosixFilePermissions.fromString("rw-------"));
        String auth = Base64.getEncoder().encodeToString("me:s3cret".getBytes(StandardCharsets.UTF_8));
        assertThat(Files.readString(file)).contains("\"" + registry.host() + "\"", "\"auth\" : \"" + auth + "\"");
        // What the pulls read finds it.
        RegistryAuth read = RegistryAuth.load(null, Map.of("HOME", home.toString()), e -> { });
        assertThat(read.lookup(registry.host(), "x/y").basicHeader()).isEqualTo("Basic " + auth);

        Result out = run("vdkr", null, "logout", registry.host());
        assertThat(out.out()).startsWith("Removing login credentials for " + registry.host());
        assertThat(Files.readString(file)).doesNotContain(auth);
        assertThat(run("vdkr", null, "logout", registry.host()).out()).startsWith("Not logged in to " + registry.host());
    }

    @Test
    void basicAuthRegistriesAndVpdmnsFile() throws Exception {
        registry.basicHeader = "Basic " + Base64.getEncoder().encodeToString("u:p".getBytes(StandardCharsets.UTF_8));
        Result ok = run("vpdmn", "p".getBytes(), "login", "--username", "u", "--password-stdin", registry.host());
        assertThat(ok.code()).as(ok.err()).isZero();
        assertThat(home.resolve("config/containers/auth.json")).exists();
    }

    @Test
    void aPasswordOnTheCommandLineIsRefusedAndNeverEchoed() {
        Result r = run("vdkr", null, "login", "-u", "me", "-p", "hunter2", registry.host());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("password on the command line is refused", "--password-stdin")
                .doesNotContain("hunter2");
        assertThat(registry.requests).isEmpty();
    }
}
