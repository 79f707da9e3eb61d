package org.vbake.it;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.image.Digest;
import org.vbake.instance.Trees;
import org.vbake.it.InProcessCli.Result;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.TestImages;
import org.vbake.it.fixtures.TestImages.Platform;

/**
 * {@code vbake bake} end to end for aarch64 with docker and podman: three images (one from the
 * local registry by digest, one multi-layer OCI layout, one Debian-based rootfs with an autostart
 * unit). Two bakes must give the same sha256 for every file, the output must pass {@code vbake
 * verify} with the unit's container running, and the listing must name the Debian package inside.
 * Bad manifests and bad images fail with exit 2 naming the entry, leaving no output behind.
 */
class BakeIT {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String EPOCH = "1735689600";

    private static Path work;
    private static LocalRegistry registry;
    private static TestImages.Expected pushed;
    private static TestImages.Expected multi;
    private static Path layout;
    private static Path rootfs;
    private static Path busybox;

    @BeforeAll
    static void inputs() throws Exception {
        work = Files.createTempDirectory(Path.of("/tmp"), "vbake-bake-");
        Path bb = TestImages.guestBusybox(Arch.AARCH64, RuntimeKind.DOCKER, work.resolve("busybox"));
        busybox = bb;
        Path bbAmd = TestImages.guestBusybox(Arch.X86_64, RuntimeKind.DOCKER, work.resolve("busybox-amd64"));

        Map<Platform, Path> both = new LinkedHashMap<>();
        both.put(Platform.ARM64, bb);
        both.put(Platform.AMD64, bbAmd);
        Path indexLayout = work.resolve("index-layout");
        pushed = TestImages.index(both).writeLayout(indexLayout);
        registry = LocalRegistry.start(Files.createDirectories(work.resolve("registry")));
        registry.push(indexLayout, "bake/special", "1");

        layout = work.resolve("inputs/multi-oci");
        multi = TestImages.single(Platform.ARM64, bb).withRandomLayerMb(1).withRefName("1").writeLayout(layout);
        assertThat(multi.single().diffIds()).hasSize(3);

        rootfs = work.resolve("inputs/rootfs-hello");
        Path script = Path.of(System.getProperty("basedir", System.getProperty("user.dir")))
                .resolve("examples/hello/prepare-rootfs.sh");
        Process p = new ProcessBuilder("bash", script.toString(), "aarch64", rootfs.toString())
                .redirectErrorStream(true).start();
        String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(log).isZero();
    }

    @AfterAll
    static void cleanUp() throws Exception {
        if (registry != null) {
            registry.close();
        }
        if (work != null && !Boolean.getBoolean("vbake.it.keep")) {
            Trees.deleteTree(work);
        }
    }

    private static Path manifest(RuntimeKind runtime) throws IOException {
        String yaml = """
                arch: aarch64
                runtime: %s
                images:
                  - ref: %s/bake/special@%s
                    tags: [bake/special:pinned]
                  - oci: multi-oci
                    name: local/multi:1
                  - rootfs: rootfs-hello
                    name: hello/httpd:1
                    command: [/bin/httpd, -f, -p, "8080", -h, /www]
                    autostart: always
                    run:
                      name: hello-httpd
                      ports: ["8080:8080"]
                """.formatted(runtime.id(), registry.host(), pushed.indexDigest());
        return Files.writeString(work.resolve("inputs/bake-" + runtime.id() + ".yaml"), yaml);
    }

    @ParameterizedTest(name = "{0}: guest bakes cold and warm and a host bake are byte-identical, verify passes")
    @EnumSource(RuntimeKind.class)
    void bakeIsReproducibleAndVerifies(RuntimeKind runtime) throws Exception {
        Path m = manifest(runtime);
        Path state = work.resolve("state-" + runtime.id());
        Path out1 = work.resolve("out1-" + runtime.id());

        long t0 = System.nanoTime();
        Result cold = vbake("bake", m.toString(), "-o", out1.toString(), "--fresh", "--state-dir", state.toString(),
                "--progress=plain", "--writer", "guest");
        long t1 = System.nanoTime();
        assertThat(cold.code()).as(cold.err()).isZero();
        assertThat(cold.out()).contains("(3 imported, 0 reused by the guest (" + runtime.id() + " trixie ");
        // An ordinary build directory: the umask's permissions, not a private temporary dir's.
        Path probe = Files.createDirectory(work.resolve("umask-probe-" + runtime.id()));
        assertThat(Files.getPosixFilePermissions(out1)).isEqualTo(Files.getPosixFilePermissions(probe));
        Map<String, String> sums1 = sha256s(out1);

        // A file the user put into the output: the next bake refuses and changes nothing.
        Path mine = Files.writeString(out1.resolve("notes.txt"), "mine");
        Result refused = vbake("bake", m.toString(), "-o", out1.toString(), "--state-dir", state.toString());
        assertThat(refused.code()).as(refused.err()).isEqualTo(2);
        assertThat(refused.err()).contains("holds files an earlier bake did not write: notes.txt");
        assertThat(mine).hasContent("mine");
        Files.delete(mine);
        assertThat(sha256s(out1)).isEqualTo(sums1);

        // The untouched output of an earlier bake is replaced by the new one.
        Result warm = vbake("bake", m.toString(), "-o", out1.toString(), "--state-dir", state.toString(),
                "--progress=json", "--writer", "guest", "--no-cache");
        long t2 = System.nanoTime();
        assertThat(warm.code()).as(warm.err()).isZero();
        recordBench(runtime, (t1 - t0) / 1e9, (t2 - t1) / 1e9);
        assertThat(warm.out()).contains("(0 imported, 3 reused by the guest");
        assertThat(warm.err().lines().filter(l -> !l.isBlank())).allMatch(l -> l.startsWith("{\"t\":"));
        // The same inputs once more: nothing to do, nothing started, nothing rewritten.
        java.nio.file.attribute.FileTime before = Files.getLastModifiedTime(out1.resolve("storage.tar.zst"));
        Result again = vbake("bake", m.toString(), "-o", out1.toString(), "--state-dir", state.toString(),
                "--writer", "guest");
        assertThat(again.code()).as(again.err()).isZero();
        assertThat(again.out()).contains("(up to date: the same inputs as the bake that wrote it)");
        assertThat(Files.getLastModifiedTime(out1.resolve("storage.tar.zst"))).isEqualTo(before);

        assertThat(sums1.keySet()).contains("storage.tar.zst", "listing.json", "sbom.cdx.json", ".vbake-bake.json");
        assertThat(sums1.keySet()).contains(runtime == RuntimeKind.DOCKER ? "systemd/vbake-hello-httpd.service"
                : "quadlet/vbake-hello-httpd.container");
        if (runtime == RuntimeKind.PODMAN) {
            assertThat(sums1).containsKey("storage.conf");
        }
        assertThat(sha256s(out1)).isEqualTo(sums1);
        try (Stream<Path> s = Files.list(work)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains(".partial-") || n.contains(".old-"));
        }

        JsonNode listing = JSON.readTree(out1.resolve("listing.json").toFile());
        JsonNode imgs = listing.path("images");
        assertThat(imgs).hasSize(3);
        assertThat(imgs.get(0).path("imageId").asText()).isEqualTo(pushed.image(Platform.ARM64).configDigest());
        assertThat(imgs.get(0).path("repoDigest").asText()).isEqualTo(pushed.indexDigest());
        assertThat(imgs.get(1).path("imageId").asText()).isEqualTo(multi.single().configDigest());
        assertThat(imgs.get(1).path("layers")).hasSize(3);
        List<String> packages = new ArrayList<>();
        imgs.get(2).path("packages").forEach(p -> packages.add(p.path("type").asText() + ":" + p.path("name").asText()
                + ":" + p.path("arch").asText()));
        assertThat(packages).containsExactly("dpkg:busybox-static:arm64");
        assertThat(Files.readString(out1.resolve("sbom.cdx.json"))).contains("pkg:deb/debian/busybox-static@");

        // The host writer, from the same inputs: the same tree, byte for byte; only the listing
        // says who wrote it. Verify runs on this one.
        Path host = work.resolve("host-" + runtime.id());
        Result hostBake = vbake("bake", m.toString(), "-o", host.toString(), "--writer", "host", "--progress=plain");
        assertThat(hostBake.code()).as(hostBake.err()).isZero();
        assertThat(hostBake.out()).contains("the tree written on the host (" + runtime.id() + " ");
        Map<String, String> hostSums = sha256s(host);
        assertThat(hostSums.get("storage.tar.zst")).isEqualTo(sums1.get("storage.tar.zst"));
        assertThat(hostSums.keySet()).isEqualTo(sums1.keySet());
        JsonNode hostListing = JSON.readTree(host.resolve("listing.json").toFile());
        assertThat(hostListing.path("writer").asText()).startsWith("host (" + runtime.id() + " ");
        assertThat(listing.path("writer").asText()).startsWith("guest (" + runtime.id() + " trixie");
        ((com.fasterxml.jackson.databind.node.ObjectNode) hostListing).remove("writer");
        ((com.fasterxml.jackson.databind.node.ObjectNode) listing).remove("writer");
        assertThat(hostListing).isEqualTo(listing);

        Result verify = vbake("verify", host.toString(), "-a", "aarch64");
        assertThat(verify.code()).as(verify.out() + verify.err()).isZero();
        assertThat(verify.out()).contains("ok     " + pushed.image(Platform.ARM64).configDigest(),
                "ok     " + multi.single().configDigest(), "ok     unit vbake-hello-httpd.",
                "(container hello-httpd running)", "verified 3 image(s) and 1 unit(s)");
    }

    @Test
    void aDirectoryThatMerelyHoldsAListingIsNeverReplaced() throws Exception {
        Path d = work.resolve("looks-like-a-bake");
        Files.createDirectories(d.resolve("sub"));
        Files.writeString(d.resolve("listing.json"), "x");
        Files.writeString(d.resolve("sub/f"), "precious");

        Result r = vbake("bake", manifest(RuntimeKind.DOCKER).toString(), "-o", d.toString(), "--state-dir",
                work.resolve("state-refused").toString());

        assertThat(r.code()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains("-o " + d + ": exists, is not empty and is not an earlier bake's output");
        assertThat(d.resolve("sub/f")).hasContent("precious");
        assertThat(d.resolve("listing.json")).hasContent("x");
        assertThat(work.resolve("state-refused")).as("refused before any guest was booted").doesNotExist();
    }

    @Test
    void malformedManifestNamesFileLineAndField() throws Exception {
        Path m = Files.writeString(work.resolve("inputs/bad.yaml"), """
                arch: aarch64
                runtime: docker
                images:
                  - oci: multi-oci
                    name: local/multi:1
                    autostart: sometimes
                """);
        assertFailsCleanly(m, "bad.yaml:6: images[0].autostart: 'sometimes' is not one of");
    }

    @Test
    void missingImageNamesTheEntry() throws Exception {
        Path m = Files.writeString(work.resolve("inputs/missing.yaml"), """
                arch: aarch64
                runtime: docker
                images:
                  - oci: multi-oci
                    name: local/multi:1
                  - ref: %s/bake/none@sha256:%s
                """.formatted(registry.host(), "0".repeat(64)));
        assertFailsCleanly(m, "images[1] (ref " + registry.host() + "/bake/none@sha256:");
    }

    @Test
    void digestMismatchNamesTheEntry() throws Exception {
        Path broken = work.resolve("inputs/broken-oci");
        TestImages.single(Platform.ARM64, busybox).writeLayout(broken);
        // Flip bytes in the largest blob (a layer) without changing its name.
        Path blob;
        try (Stream<Path> s = Files.list(broken.resolve("blobs/sha256"))) {
            blob = s.max((a, b) -> Long.compare(a.toFile().length(), b.toFile().length())).orElseThrow();
        }
        byte[] bytes = Files.readAllBytes(blob);
        bytes[bytes.length / 2] ^= 0x55;
        Files.write(blob, bytes);
        Path m = Files.writeString(work.resolve("inputs/mismatch.yaml"), """
                arch: aarch64
                runtime: docker
                images:
                  - oci: broken-oci
                    name: local/broken:1
                """);
        assertFailsCleanly(m, "images[0] (oci broken-oci)", "digest mismatch");
    }

    private static void assertFailsCleanly(Path manifest, String... mentions) throws IOException {
        Path out = work.resolve("out-" + manifest.getFileName());
        Result r = vbake("bake", manifest.toString(), "-o", out.toString(), "--state-dir",
                work.resolve("state-bad").toString(), "--progress=plain");
        assertThat(r.code()).as(r.err()).isEqualTo(2);
        assertThat(r.err()).contains(mentions);
        assertThat(r.out() + r.err()).doesNotContain("\tat ", "Exception");
        assertThat(out).doesNotExist();
        try (Stream<Path> s = Files.list(work)) {
            assertThat(s.map(p -> p.getFileName().toString())).noneMatch(n -> n.contains(".partial-"));
        }
    }

    /** tests/bench/bake.sh prints these: the same bakes, timed. */
    private static void recordBench(RuntimeKind runtime, double cold, double warm) throws IOException {
        Path file = Path.of(System.getProperty("basedir", System.getProperty("user.dir")), "target", "bench-bake.txt");
        Files.createDirectories(file.getParent());
        Files.writeString(file, String.format(java.util.Locale.ROOT, "%-7s cold %6.1f s   warm %6.1f s   ratio %.2f%n",
                runtime.id(), cold, warm, warm / cold), java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.APPEND);
    }

    private static Map<String, String> sha256s(Path dir) throws IOException {
        Map<String, String> sums = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.filter(Files::isRegularFile).toList()) {
                try (var in = Files.newInputStream(p)) {
                    sums.put(dir.relativize(p).toString(), Digest.of(in).toString());
                }
            }
        }
        return sums;
    }

    @ParameterizedTest(name = "{0}: a compose stack of two services is baked, installed as units and runs in verify")
    @EnumSource(RuntimeKind.class)
    void composeStackIsBakedAndRuns(RuntimeKind runtime) throws Exception {
        String image = registry.host() + "/bake/special@" + pushed.indexDigest();
        Path dir = Files.createDirectories(work.resolve("inputs/stack-" + runtime.id()));
        String compose = """
                services:
                  web:
                    image: %s
                    command: ["/bin/sh", "-c", "mkdir -p /www; cat /data/state > /www/index.html; exec /bin/busybox httpd -f -p 80 -h /www"]
                    ports: ["8080:80"]
                    volumes: ["data:/data:ro"]
                    environment:
                      MODE: prod
                    restart: always
                    depends_on: [db]
                  db:
                    image: %s
                    command: ["/bin/sh", "-c", "echo ready > /data/state && exec /bin/busybox sleep 1000000"]
                    volumes: ["data:/data"]
                volumes:
                  data:
                """.formatted(image, image);
        Files.writeString(dir.resolve("compose.yaml"), compose);
        Path m = Files.writeString(dir.resolve("bake.yaml"), """
                arch: aarch64
                runtime: %s
                images:
                  - compose: compose.yaml
                    name: shop
                """.formatted(runtime.id()));
        Path out = work.resolve("out-stack-" + runtime.id());
        Result bake = vbake("bake", m.toString(), "-o", out.toString());
        assertThat(bake.code()).as(bake.err()).isZero();
        if (runtime == RuntimeKind.DOCKER) {
            assertThat(out.resolve("compose/shop/compose.yaml")).hasContent(compose);
            assertThat(out.resolve("systemd/vbake-compose-shop.service")).content().contains(
                    "ExecStart=/usr/bin/docker compose --project-name shop --file /usr/share/vbake/compose/shop/compose.yaml "
                            + "up --detach --no-build --pull never");
        } else {
            assertThat(out.resolve("quadlet/shop.network")).content().contains("NetworkName=shop_default");
            assertThat(out.resolve("quadlet/shop-data.volume")).content().contains("VolumeName=shop_data");
            String id = JSON.readTree(out.resolve("listing.json").toFile()).path("images").get(0).path("configDigest").asText();
            assertThat(out.resolve("quadlet/shop-web.container")).content().contains("Requires=shop-db.service",
                    "# image: " + image, "Image=" + id, "Network=shop.network", "NetworkAlias=web", "Volume=shop-data.volume:/data:ro",
                    "PublishPort=8080:80", "Environment=MODE=prod", "Restart=always");
        }
        assertThat(JSON.readTree(out.resolve("listing.json").toFile()).path("images")).hasSize(1);

        Result verify = vbake("verify", out.toString(), "-a", "aarch64");
        assertThat(verify.code()).as(verify.out() + verify.err()).isZero();
        if (runtime == RuntimeKind.DOCKER) {
            assertThat(verify.out()).contains("ok     unit vbake-compose-shop.service (stack shop: web, db running)");
        } else {
            assertThat(verify.out()).contains("ok     unit shop-db.container (container shop-db-1 running)",
                    "ok     unit shop-web.container (container shop-web-1 running)");
            assertThat(verify.out().indexOf("shop-db.container")).isLessThan(verify.out().indexOf("shop-web.container"));
        }
    }

    private static Result vbake(String... args) {
        return InProcessCli.run("vbake", List.of(args));
    }
}
