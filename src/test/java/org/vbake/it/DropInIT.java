package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.vbake.it.CliProcess.ok;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.instance.Trees;
import org.vbake.it.CliProcess.Result;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.TestImages;

/**
 * What users of meta-virtualization's vdkr type, through the real launcher: the config that starts
 * a resident guest on the first command, vstorage on a real store, cp both ways byte for byte,
 * and a container's filesystem exported to a host file.
 */
class DropInIT {

    private static Path work;
    private static CliProcess cli;
    private static Path small;
    private static TestImages.Expected smallImage;
    private static LocalRegistry registry;

    @BeforeAll
    static void setUp() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-dropin-");
        cli = new CliProcess(work);
        Path busybox = TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox"));
        small = work.resolve("small.tar");
        smallImage = TestImages.single(TestImages.Platform.ARM64, busybox).writeOciArchive(small);
        registry = LocalRegistry.start(Files.createDirectories(work.resolve("registry")));
    }

    @AfterAll
    static void cleanUp() throws Exception {
        for (String s : List.of("auto", "cp")) {
            cli.cli("vdkr", "aarch64", work.resolve(s), Map.of(), null, "vmemres", "stop");
        }
        if (registry != null) {
            registry.close();
        }
        Trees.deleteTree(work);
    }

    private static Result vdkr(Path state, String... args) throws Exception {
        return cli.cli("vdkr", "aarch64", state, Map.of(), null, args);
    }

    @Test
    void autoDaemonStartsAResidentGuestOnTheFirstCommandAndVstorageShowsIt() throws Exception {
        Path state = work.resolve("auto");
        ok(vdkr(state, "vconfig", "auto-daemon", "true"));
        try {
            Result images = ok(vdkr(state, "images"));
            assertThat(images.out()).startsWith("REPOSITORY");
            assertThat(ok(vdkr(state, "vmemres", "status")).out()).contains(": running");
            assertThat(ok(vdkr(state, "vstorage", "path", "aarch64")).out().strip()).isEqualTo(state.toString());
            assertThat(ok(vdkr(state, "vstorage", "list")).out()).contains("Path:   " + state.resolve("trixie"),
                    "Status: memres running");
            Result clean = vdkr(state, "vstorage", "clean");
            assertThat(clean.code()).isEqualTo(2);
            assertThat(clean.err()).contains("a resident guest uses " + state.resolve("trixie"));
            Result noDaemon = vdkr(state, "--no-daemon", "images");
            assertThat(noDaemon.code()).isEqualTo(2);
            assertThat(noDaemon.err()).contains("--no-daemon: a resident guest is running");
        } finally {
            ok(vdkr(state, "vconfig", "auto-daemon", "--reset"));
            ok(vdkr(state, "vmemres", "stop"));
        }
        assertThat(ok(vdkr(state, "vstorage", "clean")).out()).contains("cleaned " + state);
        assertThat(state).doesNotExist();
    }

    @Test
    void cpRoundTripsAFileByteForByteAndExportWritesTheContainerToTheHost() throws Exception {
        Path state = work.resolve("cp");
        ok(vdkr(state, "vimport", small.toString(), "local/small:1"));
        ok(vdkr(state, "create", "--name", "box", "local/small:1", "true"));
        byte[] data = new byte[300_000];
        new Random(7).nextBytes(data);
        Path in = Files.write(work.resolve("payload.bin"), data);

        ok(vdkr(state, "cp", in.toString(), "box:/data/"));
        Path back = work.resolve("back.bin");
        ok(vdkr(state, "cp", "box:/data/payload.bin", back.toString()));
        assertThat(back).hasBinaryContent(data);
        // Into a directory that exists: the copy lands inside it.
        Path dir = Files.createDirectories(work.resolve("into"));
        ok(vdkr(state, "cp", "box:/data", dir.toString()));
        assertThat(dir.resolve("data/payload.bin")).hasBinaryContent(data);
        assertThat(dir.resolve("data/keep")).hasContent("keep");

        Path exported = work.resolve("box.tar");
        ok(vdkr(state, "export", "-o", exported.toString(), "box"));
        List<String> names = new ArrayList<>();
        String keep = null;
        try (TarArchiveInputStream tar = new TarArchiveInputStream(Files.newInputStream(exported))) {
            for (TarArchiveEntry e = tar.getNextEntry(); e != null; e = tar.getNextEntry()) {
                names.add(e.getName());
                if (e.getName().equals("data/keep")) {
                    keep = new String(tar.readAllBytes(), StandardCharsets.UTF_8);
                }
            }
        }
        assertThat(names).contains("data/payload.bin");
        assertThat(keep).isEqualTo("keep\n");
    }

    @Test
    void pushSendsAPulledImageByteForByteAndAnImportedOneWithItsImageId() throws Exception {
        Path layout = work.resolve("small-layout");
        TestImages.Expected pushed = TestImages.single(TestImages.Platform.ARM64,
                TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox"))).writeLayout(layout);
        String upstream = registry.push(layout, "test/small", "1");
        Path state = work.resolve("push");

        // Pulled: the manifest and blobs go up as they came, so the digest is the upstream one.
        ok(vdkr(state, "pull", registry.ref("test/small", "1")));
        ok(vdkr(state, "tag", registry.ref("test/small", "1"), registry.ref("copy/small", "2")));
        Result copy = ok(vdkr(state, "push", registry.ref("copy/small", "2")));
        assertThat(copy.out()).contains("The push refers to repository [" + registry.host() + "/copy/small]",
                "2: digest: " + upstream);
        assertThat("sha256:" + java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                .digest(registry.getManifest("copy/small", "2").body()))).isEqualTo(upstream);

        // Imported: read from the engine's save stream; the config, so the image ID, is untouched.
        ok(vdkr(state, "vimport", small.toString(), "local/small:1"));
        ok(vdkr(state, "tag", "local/small:1", registry.ref("saved/small", "1")));
        Result saved = ok(vdkr(state, "push", registry.ref("saved/small", "1")));
        assertThat(saved.out()).contains("1: digest: sha256:");
        Result back = ok(vdkr(work.resolve("push-back"), "pull", registry.ref("saved/small", "1")));
        assertThat(back.out()).contains("Image ID: " + smallImage.single().configDigest());
        assertThat(pushed.single().configDigest()).isEqualTo(smallImage.single().configDigest());

        Result noImage = vdkr(state, "push", registry.ref("none/such", "1"));
        assertThat(noImage.code()).isNotZero();
        assertThat(noImage.err()).contains("none/such");
    }
}
