package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HostTreesTest {

    @TempDir
    Path tmp;

    @Test
    void aTreeSurvivesTheRoundTripWithModesAndLinks() throws Exception {
        Path src = Files.createDirectories(tmp.resolve("src/sub"));
        Files.writeString(src.resolve("run.sh"), "#!/bin/sh\n");
        Files.setPosixFilePermissions(src.resolve("run.sh"), PosixFilePermissions.fromString("rwxr-x---"));
        Files.writeString(tmp.resolve("src/top.txt"), "top\n");
        Files.createSymbolicLink(tmp.resolve("src/link"), Path.of("top.txt"));
        ByteArrayOutputStream tar = new ByteArrayOutputStream();
        HostTrees.writeTar(tmp.resolve("src"), tar);

        Path dst = Files.createDirectories(tmp.resolve("dst"));
        Files.writeString(dst.resolve("untouched.txt"), "stays\n");
        int n = HostTrees.extractTar(new ByteArrayInputStream(tar.toByteArray()), dst);

        assertThat(n).isEqualTo(3);
        assertThat(dst.resolve("top.txt")).hasContent("top");
        assertThat(Files.getPosixFilePermissions(dst.resolve("sub/run.sh")))
                .isEqualTo(PosixFilePermissions.fromString("rwxr-x---"));
        assertThat(Files.readSymbolicLink(dst.resolve("link"))).isEqualTo(Path.of("top.txt"));
        assertThat(dst.resolve("untouched.txt")).hasContent("stays");
    }

    @Test
    void entriesEscapingTheDestinationAreRefused() throws Exception {
        ByteArrayOutputStream tar = new ByteArrayOutputStream();
        try (TarArchiveOutputStream out = new TarArchiveOutputStream(tar)) {
            TarArchiveEntry e = new TarArchiveEntry("../evil.txt");
            e.setSize(1);
            out.putArchiveEntry(e);
            out.write('x');
            out.closeArchiveEntry();
        }
        Path dst = Files.createDirectories(tmp.resolve("dst"));
        assertThatThrownBy(() -> HostTrees.extractTar(new ByteArrayInputStream(tar.toByteArray()), dst))
                .isInstanceOf(IOException.class).hasMessageContaining("outside the destination");
        assertThat(tmp.resolve("evil.txt")).doesNotExist();
    }
}
