package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.vbake.it.fixtures.LocalRegistry;
import org.vbake.it.fixtures.Oracle;
import org.vbake.it.fixtures.Oracle.Engine;
import org.vbake.it.fixtures.Oracle.Result;
import org.vbake.it.fixtures.TestImages;
import org.vbake.it.fixtures.TestImages.Expected;
import org.vbake.it.fixtures.TestImages.Platform;
import org.vbake.it.fixtures.TestImages.PlatformImage;

/**
 * Proves the normalizer on stores written by the host's own engines: the same images loaded and
 * pulled into two fresh data-roots give two different trees, and the same tree once normalized;
 * the host engine then reads the normalized tree (list, inspect, save, create, export) and finds
 * every image exactly as built. Needs root, dockerd, containerd, podman, GNU tar and
 * docker-registry.
 */
@Timeout(value = 15, unit = TimeUnit.MINUTES)
class TreeNormalizerIT {

    private static final String AMD64_REF = "registry.test/vbake/normalizer:amd64";
    private static final String ARM64_REF = "registry.test/vbake/normalizer:arm64";
    private static final String TAGGED_REF = "registry.test/vbake/normalizer:tagged";
    private static final Instant FIXED_TIME = Instant.ofEpochSecond(1700000000L);
    private static final String FIXED_TIME_TEXT = "2023-11-14T22:13:20Z";

    private static Path base;
    private static Path amd64Archive;
    private static Path arm64Archive;
    private static Path indexLayout;
    private static PlatformImage amd64;
    private static PlatformImage arm64;
    private static Expected index;

    @BeforeAll
    static void buildImages() throws IOException {
        assumeTrue("root".equals(System.getProperty("user.name")),
                "runs the host's dockerd and podman and unpacks root-owned stores: run as root");
        for (String tool : List.of("dockerd", "containerd", "docker", "podman", "tar", "docker-registry")) {
            assumeTrue(onPath(tool), tool + " not installed");
        }
        // Short path: the oracle's unix sockets live below it.
        base = Files.createTempDirectory(Path.of("/tmp"), "normalizer-it-");
        Path amdBusybox = Files.isRegularFile(Path.of("/bin/busybox")) ? Path.of("/bin/busybox") : Path.of("/bin/true");
        Path armBusybox = Files.writeString(base.resolve("busybox-arm64"), "stand-in for an arm64 busybox\n");
        amd64 = TestImages.single(Platform.AMD64, amdBusybox)
                .writeDockerArchive(amd64Archive = base.resolve("amd64-docker.tar"), List.of(AMD64_REF)).single();
        arm64 = TestImages.single(Platform.ARM64, armBusybox)
                .writeDockerArchive(arm64Archive = base.resolve("arm64-docker.tar"), List.of(ARM64_REF)).single();
        Map<Platform, Path> both = new LinkedHashMap<>();
        both.put(Platform.AMD64, amdBusybox);
        both.put(Platform.ARM64, armBusybox);
        index = TestImages.index(both).writeLayout(indexLayout = base.resolve("index-layout"));
    }

    @AfterAll
    static void removeBase() throws IOException {
        if (base != null) {
            try (Stream<Path> walk = Files.walk(base)) {
                walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @AfterEach
    void nothingLeftRunning() {
        List<String> left = ProcessHandle.allProcesses()
                .map(p -> p.info().commandLine().orElse(""))
                .filter(c -> c.contains(base.toString()) || c.contains("/tmp/oracle-run."))
                .filter(c -> c.contains("dockerd") || c.contains("containerd") || c.contains("podman")
                        || c.contains("conmon") || c.contains("docker-registry"))
                .toList();
        assertThat(left).as("engine processes left behind").isEmpty();
        assertThat(mountsUnder(base)).as("mounts left behind").isEmpty();
    }

    @ParameterizedTest
    @EnumSource(StoreKind.class)
    void twoBakesNormalizeToTheSameTreeAndTheEngineReadsIt(StoreKind kind) throws Exception {
        Engine engine = kind.docker() ? Engine.DOCKER : Engine.PODMAN;
        Oracle oracle = Oracle.forProject().withDriver(kind.driver());
        Path dir = base.resolve(kind.name().toLowerCase());

        // Two bakes of the same inputs into two fresh data-roots.
        String pulledRef;
        List<Path> trees = new ArrayList<>();
        try (LocalRegistry registry = LocalRegistry.start(dir.resolve("registry"))) {
            registry.push(indexLayout, "vbake/multi", "latest");
            pulledRef = registry.ref("vbake/multi", "latest");
            for (int bake = 1; bake <= 2; bake++) {
                Path work = dir.resolve("bake" + bake);
                oracle.buildHostStore(engine, work, work.resolve("host-store.tar"),
                        List.of(amd64Archive.toString(), arm64Archive.toString(), "pull:" + pulledRef));
                tag(oracle, kind, work, AMD64_REF, TAGGED_REF);
                trees.add(exportLikeVbake(kind, work.resolve("root"), dir.resolve("bake" + bake + ".tar")));
            }
        }
        assertThat(Files.readAllBytes(trees.get(0))).as("the engine's random ids and clock")
                .isNotEqualTo(Files.readAllBytes(trees.get(1)));

        List<Path> normalized = new ArrayList<>();
        for (Path tree : trees) {
            assertThat(TreeNormalizer.detect(tree)).isEqualTo(kind);
            Path out = tree.resolveSibling(tree.getFileName().toString().replace(".tar", "-normalized.tar"));
            try (OutputStream o = Files.newOutputStream(out)) {
                TreeNormalizer.Result r = TreeNormalizer.normalize(tree, o, kind, FIXED_TIME);
                assertThat(r.notes()).isEmpty();
                assertThat(r.filesRewritten()).isPositive();
                // docker: every layer directory gets a derived name; podman's are content already.
                assertThat(r.layersRenamed() > 0).isEqualTo(kind.docker());
                assertThat(r.linksRenamed() > 0).isEqualTo(kind.driver().startsWith("overlay"));
            }
            // Normalizing a real store's output again changes nothing: it is a fixed point.
            Path again = out.resolveSibling(out.getFileName().toString().replace(".tar", "-again.tar"));
            try (OutputStream o = Files.newOutputStream(again)) {
                assertThat(TreeNormalizer.normalize(out, o, kind, FIXED_TIME).notes()).isEmpty();
            }
            assertThat(Files.readAllBytes(again)).isEqualTo(Files.readAllBytes(out));
            normalized.add(out);
        }
        assertThat(Files.readAllBytes(normalized.get(0))).isEqualTo(Files.readAllBytes(normalized.get(1)));

        // The engine accepts the normalized tree: every image is there and complete.
        Path store = normalized.get(0);
        Result amd = oracle.run(engine, store, dir.resolve("oracle-amd64"), AMD64_REF);
        assertThat(amd.differencesFrom(amd64)).isEmpty();
        assertThat(amd.savedDiffIds()).isEqualTo(amd64.diffIds());
        assertThat(amd.exportListing().get("bin/capped").xattrs())
                .containsEntry("security.capability", "0100000200200000000000000000000000000000");
        assertThat(amd.exportListing()).doesNotContainKeys("data/gone", "opq/old");
        assertThat(amd.repoTags()).contains(AMD64_REF, TAGGED_REF);
        if (kind.docker()) {
            // docker wrote the tag's time into lastUpdated; now it is the fixed time.
            assertThat(amd.inspect().path("Metadata").path("LastTagTime").asText()).isEqualTo(FIXED_TIME_TEXT);
        }

        Result arm = oracle.run(engine, store, dir.resolve("oracle-arm64"), ARM64_REF);
        assertThat(arm.differencesFrom(arm64)).isEmpty();

        Result pulled = oracle.run(engine, store, dir.resolve("oracle-pulled"), pulledRef);
        assertThat(pulled.differencesFrom(index.image(Platform.AMD64))).isEmpty();
        assertThat(pulled.repoDigests()).anyMatch(d -> d.endsWith("@" + index.indexDigest()));
        // The image's own creation time stays: it comes from its config, not the clock.
        assertThat(pulled.inspect().path("Created").asText()).startsWith("2025-01-01T00:00:00");
    }

    /**
     * Tags an image in a stopped store with the host engine (host-store.sh only loads and pulls):
     * docker records the time of a tag in the image's lastUpdated, podman adds a name.
     */
    private static void tag(Oracle oracle, StoreKind kind, Path work, String from, String to)
            throws IOException, InterruptedException {
        String script = String.join("\n",
                "set -euo pipefail",
                "ENGINE=$1; ROOT=$2; WORK=$3; ORACLE_NAME=normalizer-it",
                ". \"$4\"",
                "engine_prepare",
                "trap engine_cleanup EXIT",
                "if [ \"$ENGINE\" = docker ]; then",
                "    docker_start; docker_cli tag \"$5\" \"$6\"; docker_stop",
                "else",
                "    # the libpod database records the run directory host-store.sh used; it is not exported",
                "    rm -f \"$ROOT/libpod/bolt_state.db\"",
                "    podman_prepare; podman_cli tag \"$5\" \"$6\"",
                "fi");
        Path tagWork = Files.createDirectories(work.resolve("tag"));
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", script, "tag", kind.docker() ? "docker" : "podman",
                work.resolve("root").toString(), tagWork.toString(),
                oracle.scriptDir().resolve("engine-lib.sh").toString(), from, to);
        pb.environment().put("ORACLE_DRIVER", kind.driver());
        Path log = tagWork.resolve("tag.log");
        Process p = pb.redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroy(); // the script's trap stops the engine
            p.waitFor(60, TimeUnit.SECONDS);
        }
        assertThat(p.isAlive() ? -1 : p.exitValue()).as("tag " + from + " " + to + ":\n" + Files.readString(log)).isZero();
    }

    /**
     * Tars a data-root as vbake's exporter does: sorted depth-first, numeric owners, every xattr,
     * PAX, mtimes clamped; minus what the runtime leaves out of an export. GNU tar's own
     * atime/ctime records are deleted: the exporter writes none.
     */
    private static Path exportLikeVbake(StoreKind kind, Path root, Path tar) throws IOException, InterruptedException {
        List<String> excludes = kind.docker()
                ? List.of("runtimes", "tmp", "containerd", "network", "engine-id", "buildkit", "swarm",
                        "overlay2/backingFsBlockDev", "vfs/backingFsBlockDev")
                : List.of("libpod/bolt_state.db", "tmp", "defaultNetworkBackend", "overlay/backingFsBlockDev",
                        "vfs/backingFsBlockDev");
        List<String> argv = new ArrayList<>(List.of("tar", "--sort=name", "--numeric-owner", "--xattrs",
                "--xattrs-include=*", "--format=pax", "--pax-option=delete=atime,delete=ctime",
                "--mtime=@0", "--clamp-mtime", "-C", root.toString(), "-cf", tar.toString()));
        for (String x : excludes) {
            argv.add("--exclude=./" + x);
        }
        argv.add("./");
        run(argv);
        return tar;
    }

    private static void run(List<String> argv) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(argv).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as(String.join(" ", argv) + ": " + out).isZero();
    }

    private static boolean onPath(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return Files.isExecutable(Path.of("/usr/sbin", tool));
    }

    private static List<String> mountsUnder(Path d) {
        List<String> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mountinfo"))) {
                String mountPoint = line.split(" ")[4];
                if (mountPoint.startsWith(d.toString() + "/")) {
                    out.add(mountPoint);
                }
            }
        } catch (IOException e) {
            out.add("cannot read /proc/self/mountinfo: " + e);
        }
        return out;
    }
}
