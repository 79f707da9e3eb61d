package org.vbake.image.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;

class RegistryAuthTest {

    @TempDir
    Path tmp;

    private final List<Event> events = new ArrayList<>();

    private static String basic(String user, String password) {
        return "Basic " + b64(user + ":" + password);
    }

    private static String b64(String s) {
        return Base64.getEncoder().encodeToString(s.getBytes(StandardCharsets.UTF_8));
    }

    private Path write(String relative, String json) throws IOException {
        Path f = tmp.resolve(relative);
        Files.createDirectories(f.getParent());
        Files.writeString(f, json);
        return f;
    }

    private static String auths(String key, String user, String password) {
        return "{\"auths\":{\"" + key + "\":{\"auth\":\"" + b64(user + ":" + password) + "\"}}}";
    }

    private Map<String, String> env(String... kv) {
        Map<String, String> env = new HashMap<>();
        env.put("HOME", tmp.resolve("home").toString());
        for (int i = 0; i < kv.length; i += 2) {
            env.put(kv[i], kv[i + 1]);
        }
        return env;
    }

    @Test
    void readsTheFilesInPodmanThenDockerOrderFirstMatchWins() throws Exception {
        Path explicit = write("explicit.json", auths("quay.io", "explicit", "p1"));
        Path fromEnv = write("env.json", auths("quay.io", "env", "p2").replace("quay.io", "ghcr.io"));
        Path runtime = write("run/containers/auth.json", auths("r.example", "runtime", "p3"));
        Path config = write("home/.config/containers/auth.json", auths("r.example", "config", "p4")
                .replace("}}}", "},\"c.example\":{\"auth\":\"" + b64("config:p4") + "\"}}}"));
        Path docker = write("home/.docker/config.json", auths("https://index.docker.io/v1/", "docker", "p5"));

        RegistryAuth auth = RegistryAuth.load(explicit,
                env("REGISTRY_AUTH_FILE", fromEnv.toString(), "XDG_RUNTIME_DIR", tmp.resolve("run").toString()), events::add);

        assertThat(auth.files()).containsExactly(explicit, fromEnv, runtime, config, docker);
        assertThat(auth.lookup("quay.io", "a/b").basicHeader()).isEqualTo(basic("explicit", "p1"));
        assertThat(auth.lookup("ghcr.io", "a/b").basicHeader()).isEqualTo(basic("env", "p2"));
        assertThat(auth.lookup("r.example", "a").basicHeader()).isEqualTo(basic("runtime", "p3"));
        assertThat(auth.lookup("r.example", "a").source()).isEqualTo(runtime);
        assertThat(auth.lookup("c.example", "a").source()).isEqualTo(config);
        assertThat(auth.lookup("docker.io", "library/alpine").basicHeader()).isEqualTo(basic("docker", "p5"));
        assertThat(auth.lookup("elsewhere.io", "a")).isNull();
        assertThat(events).isEmpty();
    }

    @ParameterizedTest
    @ValueSource(strings = {"https://index.docker.io/v1/", "docker.io", "index.docker.io", "registry-1.docker.io",
            "http://registry-1.docker.io"})
    void everyNameOfDockerHubMatches(String key) throws Exception {
        Path f = write("auth.json", auths(key, "hub", "pw"));

        RegistryAuth auth = RegistryAuth.load(f, Map.of(), events::add);

        assertThat(auth.lookup("docker.io", "library/alpine").basicHeader()).isEqualTo(basic("hub", "pw"));
        assertThat(auth.lookup("registry-1.docker.io", "foo/bar")).isNotNull();
        assertThat(auth.lookup("quay.io", "foo/bar")).isNull();
    }

    @Test
    void anAuthFileThatIsADirectoryOrEmptyIsNamedAsSuch() throws Exception {
        Path dir = java.nio.file.Files.createDirectories(tmp.resolve("authdir"));
        assertThatThrownBy(() -> RegistryAuth.load(dir, env(), events::add))
                .isInstanceOf(org.vbake.api.BadInputException.class)
                .hasMessage("--authfile names " + dir + ", which is a directory, not an auth file");
        Path empty = write("empty.json", "");
        assertThatThrownBy(() -> RegistryAuth.load(empty, env(), events::add))
                .hasMessage("--authfile names " + empty + ", which is empty");
        assertThatThrownBy(() -> RegistryAuth.load(null, env("REGISTRY_AUTH_FILE", dir.toString()), events::add))
                .hasMessage("REGISTRY_AUTH_FILE names " + dir + ", which is a directory, not an auth file");
        Path missing = tmp.resolve("missing.json");
        assertThatThrownBy(() -> RegistryAuth.load(missing, env(), events::add))
                .hasMessage("--authfile names " + missing + ", which does not exist");
    }

    @Test
    void dockerConfigReplacesHomeDockerAsDockerDoes() throws Exception {
        write("home/.docker/config.json", auths("quay.io", "home", "x"));
        Path custom = write("custom/config.json", auths("ghcr.io", "custom", "y"));

        RegistryAuth auth = RegistryAuth.load(null, env("DOCKER_CONFIG", tmp.resolve("custom").toString()), events::add);

        assertThat(auth.files()).containsExactly(custom);
        assertThat(auth.lookup("quay.io", "a")).isNull();
        assertThat(auth.lookup("ghcr.io", "a").basicHeader()).isEqualTo(basic("custom", "y"));
    }

    @Test
    void xdgConfigHomeReplacesHomeConfig() throws Exception {
        write("home/.config/containers/auth.json", auths("quay.io", "home", "x"));
        Path xdg = write("xdg/containers/auth.json", auths("quay.io", "xdg", "y"));

        RegistryAuth auth = RegistryAuth.load(null, env("XDG_CONFIG_HOME", tmp.resolve("xdg").toString()), events::add);

        assertThat(auth.files()).containsExactly(xdg);
    }

    @Test
    void usernamePasswordAndIdentityTokenEntries() throws Exception {
        Path f = write("auth.json", "{\"auths\":{"
                + "\"a.example\":{\"username\":\"u\",\"password\":\"p:with:colons\"},"
                + "\"b.example\":{\"auth\":\"" + b64("<token>:") + "\",\"identitytoken\":\"refresh-123\"},"
                + "\"c.example\":{\"auth\":\"" + b64("u:p:with:colons") + "\"}}}");

        RegistryAuth auth = RegistryAuth.load(f, Map.of(), events::add);

        assertThat(auth.lookup("a.example", "x").basicHeader()).isEqualTo(basic("u", "p:with:colons"));
        assertThat(auth.lookup("c.example", "x").basicHeader()).isEqualTo(basic("u", "p:with:colons"));
        RegistryAuth.Credentials token = auth.lookup("b.example", "x");
        assertThat(token.identityToken()).isEqualTo("refresh-123");
        assertThat(token.hasPassword()).isFalse();
    }

    @Test
    void aNamespaceKeyIsPreferredOverTheBareRegistry() throws Exception {
        Path f = write("auth.json", "{\"auths\":{"
                + "\"quay.io\":{\"auth\":\"" + b64("any:1") + "\"},"
                + "\"quay.io/org\":{\"auth\":\"" + b64("org:2") + "\"},"
                + "\"quay.io/org/team\":{\"auth\":\"" + b64("team:3") + "\"}}}");

        RegistryAuth auth = RegistryAuth.load(f, Map.of(), events::add);

        assertThat(auth.lookup("quay.io", "org/team/img").basicHeader()).isEqualTo(basic("team", "3"));
        assertThat(auth.lookup("quay.io", "org/other").basicHeader()).isEqualTo(basic("org", "2"));
        assertThat(auth.lookup("quay.io", "organisation/x").basicHeader()).isEqualTo(basic("any", "1"));
    }

    @Test
    void aRegistryOnlyInACredentialHelperIsAnonymousWithOneWarning() throws Exception {
        Path docker = write("home/.docker/config.json", "{\"auths\":{\"https://index.docker.io/v1/\":{}},"
                + "\"credsStore\":\"desktop\",\"credHelpers\":{\"123.dkr.ecr.us-east-1.amazonaws.com\":\"ecr-login\"}}");

        RegistryAuth auth = RegistryAuth.load(null, env(), events::add);

        assertThat(auth.lookup("docker.io", "library/alpine")).isNull();
        assertThat(auth.lookup("docker.io", "library/debian")).isNull();
        assertThat(auth.lookup("123.dkr.ecr.us-east-1.amazonaws.com", "x")).isNull();
        assertThat(auth.lookup("quay.io", "x")).isNull();
        assertThat(events).extracting(e -> ((Event.Progress) e).message()).satisfiesExactly(
                m -> assertThat(m).startsWith("warning: credentials for docker.io are kept by a credential helper ("
                        + docker + " (credsStore))").contains("pulling anonymously").contains("--authfile"),
                m -> assertThat(m).contains("123.dkr.ecr.us-east-1.amazonaws.com").contains("(credHelpers)"));
    }

    @Test
    void aHelperInOneFileDoesNotHideCredentialsInAnother() throws Exception {
        write("run/containers/auth.json", auths("quay.io", "podman", "pw"));
        write("home/.docker/config.json", "{\"credHelpers\":{\"quay.io\":\"secretservice\"}}");

        RegistryAuth auth = RegistryAuth.load(null, env("XDG_RUNTIME_DIR", tmp.resolve("run").toString()), events::add);

        assertThat(auth.lookup("quay.io", "x").basicHeader()).isEqualTo(basic("podman", "pw"));
        assertThat(events).isEmpty();
    }

    @Test
    void aMalformedFileIsBadInputNamingItWithoutItsContent() throws Exception {
        String secret = "hunter2-TopSecret";
        Path f = write("broken.json", "{\"auths\":{\"quay.io\":{\"password\": " + secret + "}}}");

        BadInputException e = catchThrowableOfType(BadInputException.class,
                () -> RegistryAuth.load(f, Map.of(), events::add));

        assertThat(e).hasMessageStartingWith("auth file " + f + " is malformed: not valid JSON (line 1");
        assertThat(e.getMessage() + e.hint()).doesNotContain(secret).doesNotContain("hunter");
    }

    @Test
    void badBase64IsMalformedWithoutTheValue() throws Exception {
        Path f = write("auth.json", "{\"auths\":{\"quay.io\":{\"auth\":\"not*base64\"}}}");

        assertThatThrownBy(() -> RegistryAuth.load(f, Map.of(), events::add))
                .isInstanceOf(BadInputException.class)
                .hasMessage("auth file " + f + " is malformed: the \"auth\" of quay.io is not base64")
                .hasMessageNotContaining("not*base64");
    }

    @Test
    void aMalformedDefaultFileIsBadInputToo() throws Exception {
        Path f = write("home/.docker/config.json", "{\"auths\": [1]}");

        assertThatThrownBy(() -> RegistryAuth.load(null, env(), events::add))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining(f.toString());
    }

    @Test
    void namedFilesMustExistDefaultsNeedNot() throws Exception {
        Path missing = tmp.resolve("nope.json");

        assertThatThrownBy(() -> RegistryAuth.load(missing, Map.of(), events::add))
                .isInstanceOf(BadInputException.class).hasMessageContaining("--authfile").hasMessageContaining(missing.toString());
        assertThatThrownBy(() -> RegistryAuth.load(null, env("REGISTRY_AUTH_FILE", missing.toString()), events::add))
                .isInstanceOf(BadInputException.class).hasMessageContaining("REGISTRY_AUTH_FILE");
        assertThat(RegistryAuth.load(null, env("XDG_RUNTIME_DIR", tmp.resolve("none").toString()), events::add).files())
                .isEmpty();
        assertThat(RegistryAuth.load(null, Map.of(), events::add).files()).isEmpty();
    }

    @Test
    void secretsNeverShowInToString() throws Exception {
        Path f = write("auth.json", auths("quay.io", "someone", "pa55-w0rd"));

        RegistryAuth auth = RegistryAuth.load(f, Map.of(), events::add);

        String shown = auth + " " + auth.lookup("quay.io", "x");
        assertThat(shown).contains(f.toString()).doesNotContain("pa55-w0rd").doesNotContain(b64("someone:pa55-w0rd"));
        assertThat(RegistryAuth.none().files()).isEmpty();
    }
}
