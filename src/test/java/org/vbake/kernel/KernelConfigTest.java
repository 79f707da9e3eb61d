package org.vbake.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KernelConfigTest {

    private static final String SAMPLE = String.join("\n",
            "#",
            "# Automatically generated file; DO NOT EDIT.",
            "# Linux/arm64 6.12.117 Kernel Configuration",
            "#",
            "CONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0\"",
            "CONFIG_DEVTMPFS=y",
            "CONFIG_VIRTIO_BLK=m",
            "# CONFIG_DEVTMPFS_MOUNT is not set",
            "CONFIG_NR_CPUS=512",
            "CONFIG_PHYSICAL_START=0x1000000",
            "CONFIG_CMDLINE=\"console=\\\"ttyS0\\\"\"",
            "",
            "#",
            "# Networking",
            "#",
            "CONFIG_UNIX=y",
            "");

    @Test
    void readsEveryKindOfValue() {
        KernelConfig config = KernelConfig.parse(SAMPLE);

        assertThat(config.value("CONFIG_DEVTMPFS")).hasValue("y");
        assertThat(config.value("CONFIG_VIRTIO_BLK")).hasValue("m");
        assertThat(config.value("CONFIG_DEVTMPFS_MOUNT")).hasValue("n");
        assertThat(config.value("CONFIG_NR_CPUS")).hasValue("512");
        assertThat(config.value("CONFIG_PHYSICAL_START")).hasValue("0x1000000");
        assertThat(config.value("CONFIG_CC_VERSION_TEXT")).hasValue("aarch64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0");
        assertThat(config.value("CONFIG_CMDLINE")).hasValue("console=\"ttyS0\"");
        assertThat(config.value("CONFIG_SERIAL_8250")).isEmpty();
        assertThat(config.options()).hasSize(8);
        assertThat(config.kernel()).hasValue("Linux/arm64 6.12.117");
    }

    @Test
    void enabledMeansBuiltInOrModule() {
        KernelConfig config = KernelConfig.parse(SAMPLE);

        assertThat(config.isEnabled("CONFIG_DEVTMPFS")).isTrue();
        assertThat(config.isEnabled("CONFIG_VIRTIO_BLK")).isTrue();
        assertThat(config.isEnabled("CONFIG_DEVTMPFS_MOUNT")).isFalse();
        assertThat(config.isEnabled("CONFIG_NR_CPUS")).isFalse();
        assertThat(config.isEnabled("CONFIG_ABSENT")).isFalse();
        assertThat(config.isBuiltIn("CONFIG_DEVTMPFS")).isTrue();
        assertThat(config.isBuiltIn("CONFIG_VIRTIO_BLK")).isFalse();
    }

    @Test
    void rejectsTextThatIsNotAKernelConfig() {
        assertThatThrownBy(() -> KernelConfig.parse("CONFIG_A=y\nhello world\n"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("line 2");
        assertThatThrownBy(() -> KernelConfig.parse("CONFIG_A=maybe\n"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("line 1");
        assertThatThrownBy(() -> KernelConfig.parse("# just a comment\n"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("not a kernel config");
    }

    @Test
    void readsGzipCompressedConfigTransparently(@TempDir Path dir) throws IOException {
        Path plain = Files.writeString(dir.resolve("config"), SAMPLE);
        Path gz = Files.write(dir.resolve("config.gz"), gzip(SAMPLE));

        KernelConfig fromPlain = KernelConfig.read(plain);
        KernelConfig fromGzip = KernelConfig.read(gz);

        assertThat(fromGzip.options()).isEqualTo(fromPlain.options());
        assertThat(fromGzip.kernel()).hasValue("Linux/arm64 6.12.117");
        assertThat(KernelConfig.read(new ByteArrayInputStream(gzip(SAMPLE))).isBuiltIn("CONFIG_UNIX")).isTrue();
    }

    @Test
    void acceptsWindowsLineEnds() {
        KernelConfig config = KernelConfig.parse("CONFIG_A=y\r\n# CONFIG_B is not set\r\n");

        assertThat(config.value("CONFIG_A")).hasValue("y");
        assertThat(config.value("CONFIG_B")).hasValue("n");
    }

    private static byte[] gzip(String text) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (GZIPOutputStream out = new GZIPOutputStream(bytes)) {
            out.write(text.getBytes(StandardCharsets.UTF_8));
        }
        return bytes.toByteArray();
    }
}
