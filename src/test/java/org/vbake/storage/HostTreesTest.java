package org.vbake.storage;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HostTreesTest {

    @TempDir
    Path tmp;

    @Test
    void stagedFilesBecomeATarWithModesAndLinksSorted() throws Exception {
        Path src = Files.createDirectories(tmp.resolve("src/sub"));
        Files.writeString(src.resolve("run.sh"), "#!/bin/sh\n");
        Files.setPosixFilePermissions(src.resolve("run.sh"), PosixFilePermissions.fromString("rwxr-x---"));
        Files.writeString(tmp.resolve("src/top.txt"), "top\n");
        Files.createSymbolicLink(tmp.resolve("src/link"), Path.of("top.txt"));
        ByteArrayOutputStream tar = new ByteArrayOutputStream();
        HostTrees.writeTar(tmp.resolve("src"), tar);

        Map<String, String> entries = new LinkedHashMap<>();
        try (TarArchiveInputStream in = new TarArchiveInputStream(new ByteArrayInputStream(tar.toByteArray()))) {
            for (TarArchiveEntry e = in.getNextEntry(); e != null; e = in.getNextEntry()) {
                entries.put(e.getName(), Integer.toOctalString(e.getMode()) + (e.isSymbolicLink() ? " -> "
                        + e.getLinkName() : e.isFile() ? " " + new String(in.readAllBytes()).strip() : ""));
            }
        }
        assertThat(entries).containsExactly(Map.entry("link", "120777 -> top.txt"),
                Map.entry("sub/", "40755"), Map.entry("sub/run.sh", "100750 #!/bin/sh"),
                Map.entry("top.txt", "100644 top"));
    }
}
