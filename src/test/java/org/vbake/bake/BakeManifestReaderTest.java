package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.bake.BakeManifest.Autostart;
import org.vbake.bake.BakeManifest.Image;
import org.vbake.bake.BakeManifest.Output;
import org.vbake.bake.BakeManifest.Run;
import org.vbake.bake.BakeManifest.SourceKind;

class BakeManifestReaderTest {

    private static final String DIGEST = "sha256:" + "ab".repeat(32);
    private static final String APP_REF = "127.0.0.1:5000/test/app:1@" + DIGEST;

    @TempDir
    Path dir;

    @BeforeEach
    void localImages() throws Exception {
        Files.createDirectories(dir.resolve("images/app-oci"));
        Files.writeString(dir.resolve("images/app.oci.tar"), "not read by the reader");
        Files.writeString(dir.resolve("images/app.tar"), "not read by the reader");
        Files.writeString(dir.resolve("images/legacy.tar.gz"), "not read by the reader");
    }

    @Test
    void readsEveryFieldOfAYamlManifest() throws Exception {
        Path file = write("bake.yaml", """
                arch: arm64
                runtime: docker
                driver: overlay2
                output: tar.gz
                images:
                  - ref: %s
                    tags: [app:latest, registry.example/app:1]
                    autostart: always
                    run:
                      name: app
                      command: [/bin/app, --flag]
                      env: {KEY: value, PORT: 8080, EMPTY: ""}
                      volumes: ["/data/app:/data:ro"]
                      ports: [8080:80]
                      args: ["--read-only"]
                  - oci: images/app-oci
                    name: app2:1
                    autostart: on-failure
                  - oci-archive: ./images/../images/app.oci.tar
                    name: app3:1
                  - docker-archive: images/legacy.tar.gz
                    autostart: unless-stopped
                  - ref: alpine:3.20
                    allow-unpinned: true
                    autostart: no
                """.formatted(APP_REF));

        BakeManifest m = BakeManifestReader.read(file);

        assertThat(m.file()).isEqualTo(file);
        assertThat(m.arch()).isEqualTo(Arch.AARCH64);
        assertThat(m.runtime()).isEqualTo(RuntimeKind.DOCKER);
        assertThat(m.driver()).isEqualTo("overlay2");
        assertThat(m.output()).isEqualTo(Output.TAR_GZ);
        assertThat(m.images()).containsExactly(
                new Image(0, 6, SourceKind.REF, APP_REF, null, null, List.of("app:latest", "registry.example/app:1"),
                        false, Autostart.ALWAYS, new Run("app", List.of("/bin/app", "--flag"),
                                Map.of("KEY", "value", "PORT", "8080", "EMPTY", ""), List.of("/data/app:/data:ro"),
                                List.of("8080:80"), List.of("--read-only"))),
                new Image(1, 16, SourceKind.OCI, "images/app-oci", dir.resolve("images/app-oci"), "app2:1",
                        List.of(), false, Autostart.ON_FAILURE, Run.NONE.withName("app2")),
                new Image(2, 19, SourceKind.OCI_ARCHIVE, "./images/../images/app.oci.tar",
                        dir.resolve("images/app.oci.tar"), "app3:1", List.of(), false, Autostart.NO, Run.NONE),
                new Image(3, 21, SourceKind.DOCKER_ARCHIVE, "images/legacy.tar.gz", dir.resolve("images/legacy.tar.gz"),
                        null, List.of(), false, Autostart.UNLESS_STOPPED, Run.NONE.withName("legacy")),
                new Image(4, 23, SourceKind.REF, "alpine:3.20", null, null, List.of(), true, Autostart.NO, Run.NONE));
        assertThat(m.images().get(0).run().env().keySet()).containsExactly("KEY", "PORT", "EMPTY");
        assertThat(m.images().get(1).path()).isAbsolute();
        assertThat(m.images().get(1).describe()).isEqualTo("images[1] (oci images/app-oci)");
        assertThat(m.images().get(0).ref()).isEqualTo(APP_REF);
        assertThat(m.location(m.images().get(3))).isEqualTo(file + ":21");
        assertThat(m.autostarted()).extracting(Image::containerName).containsExactly("app", "app2", "legacy");
    }

    @Test
    void aManifestPathThatIsADirectoryIsNamedAsSuch() throws Exception {
        Path d = java.nio.file.Files.createDirectories(dir.resolve("images.yaml"));
        assertThatThrownBy(() -> BakeManifestReader.read(d))
                .isInstanceOf(org.vbake.api.BadInputException.class)
                .hasMessage(d + ": is a directory, not a manifest file");
        assertThatThrownBy(() -> BakeManifestReader.read(dir.resolve("none.yaml")))
                .hasMessage(dir.resolve("none.yaml") + ": no such file");
    }

    @Test
    void readsAJsonManifestWithDefaults() throws Exception {
        Path file = write("bake.json", """
                {
                  "arch": "x86_64",
                  "runtime": "podman",
                  "images": [
                    {
                      "ref": "%s",
                      "autostart": "always"
                    },
                    {"oci-archive": "images/app.oci.tar", "name": "registry.example/team/app3:1",
                     "autostart": "on-failure", "run": {"env": {"A": "b c"}}}
                  ]
                }
                """.formatted(APP_REF));

        BakeManifest m = BakeManifestReader.read(file);

        assertThat(m.arch()).isEqualTo(Arch.X86_64);
        assertThat(m.runtime()).isEqualTo(RuntimeKind.PODMAN);
        assertThat(m.driver()).isNull();
        assertThat(m.driverOrDefault()).isEqualTo("overlay");
        assertThat(m.output()).isEqualTo(Output.TAR_ZST);
        assertThat(m.images()).containsExactly(
                new Image(0, 5, SourceKind.REF, APP_REF, null, null, List.of(), false, Autostart.ALWAYS,
                        Run.NONE.withName("app")),
                new Image(1, 9, SourceKind.OCI_ARCHIVE, "images/app.oci.tar", dir.resolve("images/app.oci.tar"),
                        "registry.example/team/app3:1", List.of(), false, Autostart.ON_FAILURE,
                        new Run("app3", List.of(), Map.of("A", "b c"), List.of(), List.of(), List.of())));
    }

    @Test
    void rootfsEntryWithItsImageCommand() throws Exception {
        java.nio.file.Files.createDirectories(dir.resolve("build/rootfs"));
        Path file = write("bake.yaml", """
                arch: x86_64
                runtime: podman
                images:
                  - rootfs: build/rootfs
                    name: base:1
                    command: [/bin/httpd, -f]
                """);

        BakeManifest m = BakeManifestReader.read(file);

        Image img = m.images().get(0);
        assertThat(img.kind()).isEqualTo(SourceKind.ROOTFS);
        assertThat(img.path()).isEqualTo(dir.resolve("build/rootfs"));
        assertThat(img.name()).isEqualTo("base:1");
        assertThat(img.command()).containsExactly("/bin/httpd", "-f");
    }

    @Test
    void imageCommandOnlyForRootfs() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    command: [/bin/sh]
                """.formatted(APP_REF),
                ":5: images[0].command: only applies to rootfs images (the image's default command); for a "
                        + "container's command use run.command");
    }

    @Test
    void ext4OutputTakesASize() throws Exception {
        Path file = write("bake.yaml", """
                arch: aarch64
                runtime: docker
                output: ext4
                size: 512M
                images:
                  - ref: %s
                """.formatted(APP_REF));
        BakeManifest m = BakeManifestReader.read(file);
        assertThat(m.output()).isEqualTo(BakeManifest.Output.EXT4);
        assertThat(m.size()).isEqualTo(512L << 20);
        assertThat(BakeManifestReader.read(write("plain.yaml", """
                arch: aarch64
                runtime: docker
                output: ext4
                images:
                  - ref: %s
                """.formatted(APP_REF))).size()).isNull();
    }

    @Test
    void sizeOnlyWithExt4AndSane() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                size: 1G
                images:
                  - ref: %s
                """.formatted(APP_REF), ":3: size: only applies to output: ext4 (the partition image's size)");
        assertError("""
                arch: aarch64
                runtime: docker
                output: ext4
                size: lots
                images:
                  - ref: %s
                """.formatted(APP_REF), ":4: size: 'lots' is not a size; write bytes or a number with K, M or G");
        assertError("""
                arch: aarch64
                runtime: docker
                output: ext4
                size: 4M
                images:
                  - ref: %s
                """.formatted(APP_REF), ":4: size: '4M' is under the 8M an ext4 image needs");
    }

    @Test
    void unknownKey() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    autostrat: always
                """.formatted(APP_REF),
                ":5: images[0].autostrat: unknown key; expected one of ref, oci, oci-archive, docker-archive, rootfs, "
                        + "name, tags, autostart, allow-unpinned, run, command, unit");
    }

    @Test
    void badArch() throws Exception {
        assertError("""
                arch: sparc
                runtime: docker
                images: [{ref: %s}]
                """.formatted(APP_REF),
                ":1: arch: 'sparc' is not one of aarch64, arm64, x86_64, amd64");
    }

    @Test
    void missingArch() throws Exception {
        assertError("""
                runtime: docker
                images: [{ref: %s}]
                """.formatted(APP_REF),
                ":1: arch: is required: one of aarch64, arm64, x86_64, amd64");
    }

    @Test
    void missingImages() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                """,
                ":1: images: is required: a list with at least one image");
    }

    @Test
    void emptyImages() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images: []
                """,
                ":3: images: needs at least one image");
    }

    @Test
    void twoSourcesInOneEntry() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    oci: images/app-oci
                """.formatted(APP_REF),
                ":5: images[0].oci: cannot be combined with ref; an image comes from exactly one of "
                        + "ref, oci, oci-archive, docker-archive, rootfs");
    }

    @Test
    void noSourceInEntry() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - autostart: always
                """,
                ":4: images[0]: needs one of ref, oci, oci-archive, docker-archive, rootfs");
    }

    @Test
    void unpinnedRef() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: alpine:3.20
                """,
                ":4: images[0].ref: 'alpine:3.20' is not pinned by digest (add @sha256:... or allow-unpinned: true)");
    }

    @Test
    void invalidRef() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: Alpine@%s
                """.formatted(DIGEST),
                ":4: images[0].ref: 'Alpine@" + DIGEST + "' is not a valid image reference: "
                        + "repository names must be lowercase");
    }

    @Test
    void tagWithDigest() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    tags:
                      - app:1
                      - app@%s
                """.formatted(APP_REF, DIGEST),
                ":7: images[0].tags[1]: 'app@" + DIGEST + "' must not carry a digest (a name is repository[:tag])");
    }

    @Test
    void missingPath() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - oci: images/nope
                    name: app:1
                """,
                ":4: images[0].oci: " + dir.resolve("images/nope") + " does not exist");
    }

    @Test
    void ociNeedsAName() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                  - oci: images/app-oci
                """.formatted(APP_REF),
                ":5: images[1].name: is required for oci images (the name to give it, like app:1)");
    }

    @Test
    void badAutostart() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                  - ref: %s
                  - docker-archive: images/app.tar
                    autostart: sometimes
                """.formatted(APP_REF, APP_REF),
                ":7: images[2].autostart: 'sometimes' is not one of no, always, unless-stopped, on-failure");
    }

    @Test
    void badYamlSyntaxNamesTheLine() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: x
                     autostart: always
                """,
                ":5: invalid YAML: mapping values are not allowed here");
    }

    @Test
    void badJsonSyntaxNamesTheLine() throws Exception {
        Path file = write("bake.json", "{\n  \"arch\": \"aarch64\",\n  \"runtime\": \"docker\"\n  \"images\": []\n}\n");
        assertThatThrownBy(() -> BakeManifestReader.read(file))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(file + ":4: invalid JSON: Unexpected character ('\"' (code 34))")
                .satisfies(e -> assertThat(e.getMessage()).doesNotContain("\n"));
    }

    @Test
    void duplicateKey() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                arch: x86_64
                images: [{ref: %s}]
                """.formatted(APP_REF),
                ":3: arch: duplicate key");
    }

    @Test
    void duplicateContainerNames() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    autostart: always
                  - oci: images/app-oci
                    name: other:1
                    autostart: always
                    run:
                      name: app
                """.formatted(APP_REF),
                ":10: images[1].run.name: container name 'app' is already used by images[0]");
    }

    @Test
    void duplicateDerivedContainerNames() throws Exception {
        assertError("""
                arch: aarch64
                runtime: podman
                images:
                  - ref: %s
                    autostart: always
                  - docker-archive: images/app.tar
                    autostart: on-failure
                """.formatted(APP_REF),
                ":6: images[1]: container name 'app' is already used by images[0]; set run.name to tell them apart");
    }

    @Test
    void driverNotValidForRuntime() throws Exception {
        assertError("""
                arch: aarch64
                runtime: podman
                driver: overlay2
                images: [{ref: %s}]
                """.formatted(APP_REF),
                ":3: driver: 'overlay2' is not a podman storage driver; use one of overlay, vfs");
    }

    @Test
    void badEnvName() throws Exception {
        assertError("""
                arch: aarch64
                runtime: docker
                images:
                  - ref: %s
                    run:
                      env:
                        1BAD: x
                """.formatted(APP_REF),
                ":7: images[0].run.env.1BAD: '1BAD' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    }

    @Test
    void yamlAliasesAreRejected() throws Exception {
        assertError("""
                arch: &a aarch64
                runtime: *a
                images: [{ref: %s}]
                """.formatted(APP_REF),
                ":2: runtime: YAML aliases (*a) are not supported; write the value out");
    }

    @Test
    void wrongExtension() throws Exception {
        Path file = write("bake.toml", "arch = 'aarch64'\n");
        assertThatThrownBy(() -> BakeManifestReader.read(file))
                .isInstanceOf(BadInputException.class)
                .hasMessage(file + ": a bake manifest must be named *.yaml, *.yml or *.json");
    }

    @Test
    void containerNamesAreDerivedFromTheRepositoryBasename() {
        assertThat(BakeManifestReader.containerNameFrom("127.0.0.1:5000/team/my_app:1@" + DIGEST)).isEqualTo("my_app");
        assertThat(BakeManifestReader.containerNameFrom("alpine")).isEqualTo("alpine");
        assertThat(BakeManifestReader.containerNameFrom("__x")).isEqualTo("x");
    }

    private void assertError(String yaml, String expectedAfterFile) throws Exception {
        Path file = write("bake.yaml", yaml);
        assertThatThrownBy(() -> BakeManifestReader.read(file))
                .isInstanceOf(BadInputException.class)
                .hasMessage(file + expectedAfterFile);
    }

    private Path write(String name, String content) throws Exception {
        return Files.writeString(dir.resolve(name), content);
    }
}
