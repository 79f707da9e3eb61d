package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.cli.Main;
import org.vbake.it.fixtures.TestImages;

/**
 * A unit the user wrote ({@code unit:}) goes into the bake as it is, instead of the generated one,
 * and a unit that would start another image is refused naming its file and line. The bakes are
 * host-written: no guest is started.
 */
class CustomUnitsTest {

    @TempDir
    static Path dir;
    private static String imageId;

    @BeforeAll
    static void image() throws Exception {
        Path fake = Files.writeString(dir.resolve("busybox"), "not a real busybox\n");
        imageId = TestImages.single(TestImages.Platform.ARM64, fake).writeLayout(dir.resolve("app")).single()
                .configDigest();
    }

    private record Run(int code, String out, String err) {
    }

    private static Run bake(String runtime, String unitFile, String unitText, Path out) throws Exception {
        Files.writeString(dir.resolve(unitFile), unitText);
        Path m = Files.writeString(dir.resolve("bake-" + runtime + ".yaml"), """
                arch: aarch64
                runtime: %s
                images:
                  - oci: app
                    name: team/app:1
                    autostart: always
                    unit: %s
                """.formatted(runtime, unitFile));
        Map<String, String> env = new HashMap<>(System.getenv());
        env.put("VBAKE_CACHE_DIR", dir.resolve("cache").toString());
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        int code = Main.run("vbake", new String[] {"bake", m.toString(), "-o", out.toString(), "--writer", "host"},
                null, o, e, env, false);
        return new Run(code, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    @Test
    void aDockerServiceIsInstalledAsWrittenInsteadOfTheGeneratedOne() throws Exception {
        String unit = "[Unit]\nDescription=my app\n[Service]\nExecStartPre=-/usr/bin/docker rm -f app\n"
                + "ExecStart=/usr/bin/docker run --rm --name app \\\n  team/app:1 /bin/sh\n[Install]\n"
                + "WantedBy=multi-user.target\n";
        Path out = dir.resolve("out-docker");
        Run r = bake("docker", "my-app.service", unit, out);
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(out.resolve("systemd/my-app.service")).hasContent(unit);
        try (var s = Files.list(out.resolve("systemd"))) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("my-app.service");
        }
    }

    @Test
    void aQuadletFileNamingTheImageByIdIsInstalled() throws Exception {
        String unit = "[Container]\nImage=" + imageId + "\nExec=/bin/sh\n";
        Path out = dir.resolve("out-podman");
        Run r = bake("podman", "app.container", unit, out);
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(out.resolve("quadlet/app.container")).hasContent(unit);
    }

    @Test
    void aUnitForAnotherImageIsRefusedWithItsFileAndLine() throws Exception {
        Path out = dir.resolve("out-wrong");
        Run r = bake("docker", "wrong.service", "[Service]\nExecStart=/usr/bin/docker run --rm other/app:1\n", out);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("images[0] (oci app): unit " + dir.resolve("wrong.service") + ":2: ExecStart "
                + "runs none of the image's names (docker.io/team/app:1 or ");
        assertThat(out).doesNotExist();
        Run kind = bake("podman", "wrong.service", "[Service]\n", dir.resolve("out-kind"));
        assertThat(kind.code()).isEqualTo(2);
        assertThat(kind.err()).contains("images[0].unit: 'wrong.service' must be a .container file for podman");
    }
}
