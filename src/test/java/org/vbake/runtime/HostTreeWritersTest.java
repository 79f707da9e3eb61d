package org.vbake.runtime;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.vbake.api.Arch;
import org.vbake.api.EventListener;
import org.vbake.api.RuntimeKind;
import org.vbake.image.BlobCache;
import org.vbake.image.LocalImageSource;
import org.vbake.image.ResolvedImage;
import org.vbake.it.fixtures.StorageCorpus;
import org.vbake.storage.StoreKind;
import org.vbake.storage.TreeNormalizer;

/**
 * Every host writer on the corpus, without a guest (the differential test holds them to the
 * engines): the tree comes out already normalised (the normaliser changes nothing in it), is
 * recognised as its engine's, and the same inputs give the same bytes twice.
 */
class HostTreeWritersTest {

    @TempDir
    static Path dir;
    private static final List<HostTreeWriter.Image> images = new ArrayList<>();

    @BeforeAll
    static void corpus() throws Exception {
        StorageCorpus.Written w = StorageCorpus.write(dir.resolve("corpus"));
        BlobCache cache = new BlobCache(dir.resolve("cache"));
        for (String name : List.of("rich", "shared", "index")) {
            ResolvedImage img = LocalImageSource.read(w.layouts().get(name), null, Arch.AARCH64, false, cache,
                    EventListener.NONE);
            images.add(new HostTreeWriter.Image(img, List.of("docker.io/corpus/" + name + ":1"), null));
        }
    }

    static Stream<Arguments> writers() {
        return Stream.of(Arguments.of(RuntimeKind.DOCKER, "overlay2", "trixie"),
                Arguments.of(RuntimeKind.DOCKER, "vfs", "trixie"),
                Arguments.of(RuntimeKind.PODMAN, "overlay", "trixie"),
                Arguments.of(RuntimeKind.PODMAN, "vfs", "trixie"),
                Arguments.of(RuntimeKind.DOCKER, "overlay2", "bookworm"),
                Arguments.of(RuntimeKind.DOCKER, "vfs", "bookworm"),
                Arguments.of(RuntimeKind.PODMAN, "overlay", "bookworm"),
                Arguments.of(RuntimeKind.PODMAN, "vfs", "bookworm"));
    }

    @ParameterizedTest(name = "{0} {1} {2}")
    @MethodSource("writers")
    void theTreeIsNormalisedReproducibleAndItsEngines(RuntimeKind runtime, String driver, String suite) throws Exception {
        HostTreeWriter writer = ContainerRuntime.of(runtime, driver).hostWriter(suite);
        assertThat(writer).isNotNull();
        Path tree = dir.resolve(runtime.id() + "-" + driver + "-" + suite + ".tar");
        for (int i = 0; i < 2; i++) {
            Path out = i == 0 ? tree : dir.resolve("again.tar");
            try (HostTreeWriter.Tree t = writer.prepare(images, dir, 1740000000L,
                    new org.vbake.image.LayerScan.Rules(Long.MAX_VALUE, "test", true), HostTreeWriter.LayerObserver.NONE,
                    EventListener.NONE);
                    OutputStream o = Files.newOutputStream(out)) {
                t.write(o);
            }
        }
        assertThat(Files.readAllBytes(dir.resolve("again.tar"))).isEqualTo(Files.readAllBytes(tree));
        assertThat(TreeNormalizer.detect(tree)).isEqualTo(StoreKind.of(runtime, driver));
        ByteArrayOutputStream normalized = new ByteArrayOutputStream();
        TreeNormalizer.Result r = TreeNormalizer.normalize(tree, normalized, StoreKind.of(runtime, driver),
                Instant.ofEpochSecond(1740000000L));
        assertThat(r.notes()).isEmpty();
        assertThat(normalized.toByteArray()).isEqualTo(Files.readAllBytes(tree));
        try (Stream<Path> left = Files.list(dir)) {
            assertThat(left.map(p -> p.getFileName().toString())).noneMatch(n -> n.startsWith(".vbake-spool-"));
        }
    }

    @org.junit.jupiter.api.Test
    void aLayerBeyondTheLimitIsRefusedAndNothingIsLeft() throws Exception {
        Path spool = java.nio.file.Files.createDirectories(dir.resolve("limited"));
        HostTreeWriter writer = ContainerRuntime.of(RuntimeKind.DOCKER, "overlay2").hostWriter("trixie");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> writer.prepare(images, spool, 0,
                new org.vbake.image.LayerScan.Rules(100_000, "a test limit", true), HostTreeWriter.LayerObserver.NONE,
                EventListener.NONE))
                .isInstanceOf(org.vbake.api.BadInputException.class)
                .hasMessageContaining("expands to more than").hasMessageContaining("a test limit");
        try (Stream<Path> left = Files.list(spool)) {
            assertThat(left).isEmpty();
        }
    }
}
