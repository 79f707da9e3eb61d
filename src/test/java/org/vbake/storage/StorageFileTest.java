package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.github.luben.zstd.ZstdInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.stream.Stream;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.BadInputException;
import org.vbake.session.StorageExporter;

class StorageFileTest {

    @TempDir
    Path dir;

    private static final byte[] TAR = "pretend this is a tar\n".repeat(1000).getBytes(StandardCharsets.UTF_8);

    @Test
    void formatComesFromTheName() {
        assertThat(StorageFile.Format.forName("a.tar")).isEqualTo(StorageFile.Format.TAR);
        assertThat(StorageFile.Format.forName("A.TAR.GZ")).isEqualTo(StorageFile.Format.TAR_GZ);
        assertThat(StorageFile.Format.forName("a.tgz")).isEqualTo(StorageFile.Format.TAR_GZ);
        assertThat(StorageFile.Format.forName("a.tar.zst")).isEqualTo(StorageFile.Format.TAR_ZST);
        assertThat(StorageFile.Format.forName("a.zip")).isNull();
    }

    @Test
    void eachFormatDecodesToTheSameBytesAndIsReadableByAll() throws Exception {
        for (String name : new String[] {"o.tar", "o.tar.gz", "o.tar.zst"}) {
            Path target = dir.resolve(name);
            try (StorageFile sf = StorageFile.create(target, "--storage")) {
                sf.stream().write(TAR);
                sf.commit();
                assertThat(sf.tarBytes()).isEqualTo(TAR.length);
            }
            assertThat(decode(target)).as(name).isEqualTo(TAR);
            assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(target))).isEqualTo("rw-r--r--");
        }
    }

    @Test
    void sameInputGivesSameCompressedBytes() throws Exception {
        for (String ext : new String[] {".tar.gz", ".tar.zst"}) {
            Path a = dir.resolve("a" + ext);
            Path b = dir.resolve("b" + ext);
            for (Path p : new Path[] {a, b}) {
                try (StorageFile sf = StorageFile.create(p, "--storage")) {
                    sf.stream().write(TAR);
                    sf.commit();
                }
            }
            assertThat(Files.readAllBytes(a)).as(ext).isEqualTo(Files.readAllBytes(b));
        }
    }

    @Test
    void withoutCommitNothingIsLeft() throws Exception {
        Path target = dir.resolve("o.tar.zst");
        Files.writeString(target, "the previous export");
        try (StorageFile sf = StorageFile.create(target, "--storage")) {
            sf.stream().write(TAR);
            // the guest failed: no commit
        }
        assertThat(Files.readString(target)).isEqualTo("the previous export");
        try (Stream<Path> s = Files.list(dir)) {
            assertThat(s.map(p -> p.getFileName().toString())).containsExactly("o.tar.zst");
        }
    }

    @Test
    void badNamesAndPlacesAreRefusedUpFront() {
        assertThatThrownBy(() -> StorageFile.check(dir.resolve("o.zip"), "--storage"))
                .isInstanceOf(BadInputException.class).hasMessageContaining("o.zip");
        assertThatThrownBy(() -> StorageFile.check(dir.resolve("nope/o.tar"), "--storage"))
                .isInstanceOf(BadInputException.class).hasMessageContaining("does not exist");
        assertThatThrownBy(() -> StorageFile.check(dir, "--storage"))
                .isInstanceOf(BadInputException.class);
    }

    @Test
    void podmanStorageConfSitsBesideTheTree() {
        assertThat(StorageExporter.storageConfPath(dir.resolve("out.tar.zst")))
                .isEqualTo(dir.resolve("out.storage.conf"));
        assertThat(StorageExporter.storageConfPath(dir.resolve("rootfs-store.tar")))
                .isEqualTo(dir.resolve("rootfs-store.storage.conf"));
    }

    private static byte[] decode(Path p) throws IOException {
        try (InputStream raw = Files.newInputStream(p)) {
            String n = p.getFileName().toString();
            InputStream in = n.endsWith(".gz") ? new GZIPInputStream(raw)
                    : n.endsWith(".zst") ? new ZstdInputStream(raw) : raw;
            return in.readAllBytes();
        }
    }
}
