package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.BadInputException;

/** Root filesystems turned into the tar stream {@code docker import} reads. */
class RootfsTarTest {

    @TempDir
    Path tmp;

    private static Map<String, TarArchiveEntry> entries(byte[] tar) throws Exception {
        Map<String, TarArchiveEntry> result = new LinkedHashMap<>();
        try (TarArchiveInputStream in = new TarArchiveInputStream(new ByteArrayInputStream(tar))) {
            for (TarArchiveEntry e; (e = in.getNextEntry()) != null; ) {
                result.put(e.getName(), e);
            }
        }
        return result;
    }

    private static byte[] write(Path p, Long clamp) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        RootfsTar.write(p, out, clamp);
        return out.toByteArray();
    }

    private Path rootfs() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("rootfs"));
        Files.createDirectories(root.resolve("etc"));
        Files.createDirectories(root.resolve("var/empty"));
        Files.createDirectories(root.resolve("bin"));
        Files.writeString(root.resolve("etc/hostname"), "box\n");
        Path busybox = Files.writeString(root.resolve("bin/busybox"), "#!/bin/true\n");
        Files.setPosixFilePermissions(busybox, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.createLink(root.resolve("bin/sh"), busybox);
        Files.createSymbolicLink(root.resolve("bin/ls"), Path.of("busybox"));
        Files.setLastModifiedTime(root.resolve("etc/hostname"), FileTime.fromMillis(2_000_000_000_000L));
        Files.setLastModifiedTime(busybox, FileTime.fromMillis(1_000_000_000_000L));
        return root;
    }

    @Test
    void directoryBecomesASortedTarWithLinksOwnersAndClampedTimes() throws Exception {
        Path root = rootfs();
        int uid = (Integer) Files.getAttribute(root.resolve("etc/hostname"), "unix:uid");

        Map<String, TarArchiveEntry> tar = entries(write(root, 1_700_000_000L));

        assertThat(tar.keySet()).containsExactly("bin/", "bin/busybox", "bin/ls", "bin/sh", "etc/", "etc/hostname",
                "var/", "var/empty/");
        assertThat(tar.get("bin/busybox").isFile()).isTrue();
        assertThat(tar.get("bin/busybox").getMode()).isEqualTo(0755);
        assertThat(tar.get("bin/busybox").getSize()).isEqualTo(12);
        assertThat(tar.get("bin/busybox").getModTime().getTime()).as("older than the clamp: kept")
                .isEqualTo(1_000_000_000_000L);
        assertThat(tar.get("bin/sh").isLink()).isTrue();
        assertThat(tar.get("bin/sh").getLinkName()).isEqualTo("bin/busybox");
        assertThat(tar.get("bin/ls").isSymbolicLink()).isTrue();
        assertThat(tar.get("bin/ls").getLinkName()).isEqualTo("busybox");
        assertThat(tar.get("var/empty/").isDirectory()).isTrue();
        assertThat(tar.get("etc/hostname").getModTime().getTime()).isEqualTo(1_700_000_000_000L);
        assertThat(tar.get("etc/hostname").getLongUserId()).isEqualTo(uid);
        assertThat(tar.get("etc/hostname").getUserName()).isEmpty();
    }

    @Test
    void directoryOutputIsDeterministic() throws Exception {
        Path root = rootfs();

        assertThat(write(root, 1_700_000_000L)).isEqualTo(write(root, 1_700_000_000L));
    }

    @Test
    void tarballsArePassedThroughDecompressed() throws Exception {
        byte[] tar = ImageFixtures.tar(Map.of("etc/hostname", "box\n", "bin/sh", "#!\n"));
        Path plain = Files.write(tmp.resolve("r.tar"), tar);
        Path gz = Files.write(tmp.resolve("r.tgz"), ImageFixtures.gzip(tar));
        Path zst = Files.write(tmp.resolve("r.tar.zst"), com.github.luben.zstd.Zstd.compress(tar));

        assertThat(write(plain, null)).isEqualTo(tar);
        assertThat(write(gz, null)).isEqualTo(tar);
        assertThat(write(zst, null)).isEqualTo(tar);
    }

    @Test
    void brokenTarballsAreBadInput() throws Exception {
        byte[] tar = ImageFixtures.tar(Map.of("etc/hostname", "box\n".repeat(400)));
        Path cut = Files.write(tmp.resolve("cut.tar"), Arrays.copyOf(tar, 1000));
        Path cutGz = Files.write(tmp.resolve("cut.tgz"), Arrays.copyOf(ImageFixtures.gzip(tar), 60));
        Path text = Files.write(tmp.resolve("notes.txt"), "hello\n".repeat(200).getBytes(StandardCharsets.UTF_8));
        Path empty = Files.write(tmp.resolve("empty.tar"), new byte[0]);

        assertThatThrownBy(() -> write(cut, null)).isInstanceOf(BadInputException.class)
                .hasMessage(cut + ": truncated: unexpected end of archive");
        assertThatThrownBy(() -> write(cutGz, null)).isInstanceOf(BadInputException.class)
                .hasMessage(cutGz + ": truncated: unexpected end of gzip data");
        assertThatThrownBy(() -> write(text, null)).isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(text + ": not a tar archive");
        assertThatThrownBy(() -> write(empty, null)).isInstanceOf(BadInputException.class)
                .hasMessage(empty + ": empty file, not a tarball");
        assertThatThrownBy(() -> write(tmp.resolve("missing"), null)).isInstanceOf(BadInputException.class)
                .hasMessage(tmp.resolve("missing") + ": no such file or directory");
    }

    @Test
    void failingOutputIsAnIoErrorNotBadInput() throws Exception {
        Path plain = Files.write(tmp.resolve("r.tar"), ImageFixtures.tar(Map.of("etc/hostname", "box\n")));
        OutputStream closed = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("Broken pipe");
            }
        };

        assertThatThrownBy(() -> RootfsTar.write(plain, closed, null))
                .isExactlyInstanceOf(IOException.class)
                .hasMessage("Broken pipe");
    }

    @Test
    void sourceDateEpochMustBeSeconds() throws Exception {
        assertThat(RootfsTar.sourceDateEpoch(null)).isNull();
        assertThat(RootfsTar.sourceDateEpoch("1700000000")).isEqualTo(1_700_000_000L);
        assertThatThrownBy(() -> RootfsTar.sourceDateEpoch("yesterday"))
                .hasMessage("SOURCE_DATE_EPOCH='yesterday' is not a number of seconds");
    }
}
