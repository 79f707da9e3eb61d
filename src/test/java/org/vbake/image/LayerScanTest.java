package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.RuntimeKind;
import org.vbake.image.ImageFixtures.Image;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.session.ImageLoader;
import org.vbake.storage.InputDisk;

/** Every layer is read once on the host before it is staged: size limit, diff_id, hostile entries. */
class LayerScanTest {

    @TempDir
    Path tmp;

    private BlobCache cache;
    private static final LayerScan.Rules OVERLAY = new LayerScan.Rules(64L << 20, "test limit", true);
    private static final LayerScan.Rules VFS = new LayerScan.Rules(64L << 20, "test limit", false);

    @BeforeEach
    void setUp() {
        cache = new BlobCache(tmp.resolve("cache"));
    }

    /** A tar entry: type '0' file, '1' hardlink, '2' symlink, '5' dir. */
    private record E(char type, String name, String content) {
    }

    private static byte[] tar(E... entries) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(buf)) {
            tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
            for (E e : entries) {
                TarArchiveEntry te = switch (e.type()) {
                    case '1' -> new TarArchiveEntry(e.name(), TarArchiveEntry.LF_LINK);
                    case '2' -> new TarArchiveEntry(e.name(), TarArchiveEntry.LF_SYMLINK);
                    case '5' -> new TarArchiveEntry(e.name(), TarArchiveEntry.LF_DIR);
                    default -> new TarArchiveEntry(e.name());
                };
                if (e.type() == '1' || e.type() == '2') {
                    te.setLinkName(e.content());
                } else if (e.type() == '0') {
                    te.setSize(e.content().length());
                }
                tar.putArchiveEntry(te);
                if (e.type() == '0') {
                    tar.write(e.content().getBytes(java.nio.charset.StandardCharsets.UTF_8));
                }
                tar.closeArchiveEntry();
            }
        }
        return buf.toByteArray();
    }

    private ResolvedImage image(byte[]... layerBlobs) throws Exception {
        return image(List.of(layerBlobs), null);
    }

    /** An image with these layer blobs; {@code diffIds} overrides what the config says (null: the truth). */
    private ResolvedImage image(List<byte[]> blobs, List<Digest> diffIds) throws Exception {
        Image img = new Image("arm64", "v8");
        for (byte[] blob : blobs) {
            img.layerBlobs.add(blob);
            img.diffIds.add(Digest.of(plain(blob)));
        }
        if (diffIds != null) {
            img.diffIds.clear();
            img.diffIds.addAll(diffIds);
        }
        ImageFixtures.finish(img);
        Path layout = tmp.resolve("layout-" + System.nanoTime());
        ImageFixtures.writeLayout(layout, List.of(img), java.util.Arrays.asList((String) null));
        return LocalImageSource.read(layout, null, Arch.AARCH64, false, cache, EventListener.NONE);
    }

    private static byte[] plain(byte[] blob) throws IOException {
        if (blob.length > 1 && (blob[0] & 0xff) == 0x1f) {
            return new java.util.zip.GZIPInputStream(new java.io.ByteArrayInputStream(blob)).readAllBytes();
        }
        return blob;
    }

    private static long scan(ResolvedImage img, LayerScan.Rules rules) throws Exception {
        return LayerScan.scan(img.layers().get(0), "layer", rules);
    }

    @Test
    void returnsTheUncompressedSizeOfAnOrdinaryLayer() throws Exception {
        byte[] plain = tar(new E('5', "etc/", null), new E('0', "etc/passwd", "root:x:0:0\n"),
                new E('1', "etc/passwd-", "etc/passwd"), new E('2', "bin/sh", "/bin/busybox"),
                new E('2', "usr/lib/x", "../../lib/x"), new E('1', "etc/abs-link", "/etc/passwd"));
        assertThat(scan(image(ImageFixtures.gzip(plain)), OVERLAY)).isEqualTo(plain.length);
    }

    @Test
    void aLayerThatExpandsPastTheLimitIsRefusedWithoutReadingTheRest() throws Exception {
        // 64 MiB of zeros compress to 64 KiB, and the stream is cut after 32 MiB: reading to the
        // end would report it truncated; stopping at the 8 MiB limit reports the expansion.
        ByteArrayOutputStream gz = new ByteArrayOutputStream();
        try (OutputStream out = new GZIPOutputStream(gz, 1 << 16);
                TarArchiveOutputStream tar = new TarArchiveOutputStream(out)) {
            TarArchiveEntry e = new TarArchiveEntry("zeros");
            e.setSize(64L << 20);
            tar.putArchiveEntry(e);
            byte[] mib = new byte[1 << 20];
            for (int i = 0; i < 64; i++) {
                tar.write(mib);
            }
            tar.closeArchiveEntry();
        }
        byte[] whole = gz.toByteArray();
        assertThat(whole.length).isLessThan(1 << 20);
        byte[] cut = java.util.Arrays.copyOf(whole, whole.length / 2);
        Image img = new Image("arm64", "v8");
        img.layerBlobs.add(cut);
        img.diffIds.add(Digest.of(new byte[0]));
        ImageFixtures.finish(img);
        Path layout = tmp.resolve("bomb");
        ImageFixtures.writeLayout(layout, List.of(img), java.util.Arrays.asList((String) null));
        ResolvedImage resolved = LocalImageSource.read(layout, null, Arch.AARCH64, false, cache, EventListener.NONE);

        assertThatThrownBy(() -> scan(resolved, new LayerScan.Rules(8L << 20, "VBAKE_LAYER_LIMIT=8M", true)))
                .isInstanceOf(BadInputException.class)
                .hasMessage("layer expands to more than 8.0 MiB uncompressed (VBAKE_LAYER_LIMIT=8M)");
    }

    @Test
    void aWrongDiffIdIsRefused() throws Exception {
        byte[] plain = tar(new E('0', "a", "a\n"));
        ResolvedImage img = image(List.of(ImageFixtures.gzip(plain)), List.of(Digest.of(new byte[] {1})));
        assertThatThrownBy(() -> scan(img, OVERLAY)).isInstanceOf(BadInputException.class)
                .hasMessageContaining("digest mismatch: uncompressed content is " + Digest.of(plain));
    }

    @Test
    void entriesOutsideTheRootAreRefusedByName() throws Exception {
        // The tar reader drops a leading '/', as tar itself does.
        Map<String, String> named = Map.of("../escape", "../escape", "a/../../escape", "a/../../escape",
                "/../escape", "../escape");
        for (Map.Entry<String, String> n : named.entrySet()) {
            ResolvedImage img = image(tar(new E('0', "ok", "ok"), new E('0', n.getKey(), "x")));
            assertThatThrownBy(() -> scan(img, OVERLAY)).as(n.getKey()).isInstanceOf(BadInputException.class)
                    .hasMessage("layer: entry '" + n.getValue() + "' lies outside the layer's root");
        }
    }

    @Test
    void hardlinksOutsideTheRootOrToNothingAreRefused() throws Exception {
        ResolvedImage out = image(tar(new E('1', "x", "../../etc/passwd")));
        assertThatThrownBy(() -> scan(out, OVERLAY)).hasMessage(
                "layer: hardlink 'x' -> '../../etc/passwd' points outside the layer's root");

        // The engine joins an absolute target to the layer's root; this layer has no etc/passwd.
        ResolvedImage missing = image(tar(new E('0', "etc/hostname", "h"), new E('1', "x", "/etc/passwd")));
        assertThatThrownBy(() -> scan(missing, OVERLAY)).hasMessage(
                "layer: hardlink 'x' -> '/etc/passwd' names no earlier file of this layer");
        // vfs unpacks onto a copy of the layers below, where the file may be.
        assertThat(scan(missing, VFS)).isPositive();
    }

    @Test
    void symlinksThatClimbOutAreRefusedAbsoluteOnesAreNot() throws Exception {
        ResolvedImage out = image(tar(new E('2', "usr/x", "../../../etc/shadow")));
        assertThatThrownBy(() -> scan(out, OVERLAY)).hasMessage(
                "layer: symlink 'usr/x' -> '../../../etc/shadow' climbs out of the layer's root");
        assertThat(scan(image(tar(new E('2', "usr/x", "/etc/shadow"))), OVERLAY)).isPositive();
    }

    @Test
    void dockerRefusesImagesDeeperThanItsLayerStoreBeforeBoot() throws Exception {
        List<byte[]> layers = new ArrayList<>();
        for (int i = 0; i < 126; i++) {
            layers.add(tar(new E('0', "f" + i, Integer.toString(i))));
        }
        ResolvedImage deep = image(layers, null);
        ImageLoader docker = new ImageLoader(ContainerRuntime.of(RuntimeKind.DOCKER), EventListener.NONE, OVERLAY);
        assertThatThrownBy(() -> docker.check(deep)).isInstanceOf(BadInputException.class)
                .hasMessageEndingWith(" has 126 layers; docker holds at most 125");
        ImageLoader podman = new ImageLoader(ContainerRuntime.of(RuntimeKind.PODMAN), EventListener.NONE, OVERLAY);
        assertThat(podman.check(deep)).hasSize(126);
    }

    @Test
    void nothingIsStagedForARefusedLayer() throws Exception {
        ResolvedImage hostile = image(ImageFixtures.gzip(tar(new E('0', "../escape", "x"))));
        ImageLoader docker = new ImageLoader(ContainerRuntime.of(RuntimeKind.DOCKER), EventListener.NONE, OVERLAY);
        try (InputDisk disk = InputDisk.create(tmp.resolve("staging"))) {
            assertThatThrownBy(() -> docker.stage(hostile, List.of(), null, disk, "image"))
                    .isInstanceOf(BadInputException.class).hasMessageContaining("'../escape'");
            assertThat(disk.hasFiles()).isFalse();
        }
    }

    @Test
    void theLimitComesFromFreeSpaceOrTheEnvironment() throws Exception {
        LayerScan.Rules byDefault = LayerScan.rules(tmp.resolve("not/yet"), Map.of(), true);
        long free = Files.getFileStore(tmp).getUsableSpace();
        assertThat(byDefault.maxBytes()).isBetween(free - (2L << 30), free);
        assertThat(LayerScan.rules(tmp, Map.of("VBAKE_LAYER_LIMIT", "20G"), true).maxBytes()).isEqualTo(20L << 30);
        assertThat(LayerScan.rules(tmp, Map.of("VBAKE_LAYER_LIMIT", "512m"), true).maxBytes()).isEqualTo(512L << 20);
        assertThat(LayerScan.rules(tmp, Map.of("VBAKE_LAYER_LIMIT", "50%"), true).maxBytes())
                .isBetween(free / 2 - (1L << 30), free / 2 + (1L << 30));
        assertThatThrownBy(() -> LayerScan.rules(tmp, Map.of("VBAKE_LAYER_LIMIT", "lots"), true))
                .isInstanceOf(BadInputException.class).hasMessageContaining("VBAKE_LAYER_LIMIT=lots");
    }
}
