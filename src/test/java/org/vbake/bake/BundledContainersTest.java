package org.vbake.bake;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.it.fixtures.TestImages;

/**
 * meta-virtualization's BUNDLED_CONTAINERS entries become a manifest vbake bakes: the OCI
 * directories their class finds, the image names it derives from them, its autostart policies,
 * and CONTAINER_SERVICE_FILE as the image's own unit.
 */
class BundledContainersTest {

    @TempDir
    static Path deploy;

    @BeforeAll
    static void deployDir() throws Exception {
        Path fake = Files.writeString(deploy.resolve("busybox"), "stand-in\n");
        for (String dir : List.of("container-base-latest-oci", "myapp-oci", "vendor-1.2.3-oci")) {
            TestImages.single(TestImages.Platform.ARM64, fake).writeLayout(deploy.resolve(dir));
        }
        Files.writeString(deploy.resolve("myapp.service"), "[Service]\nExecStart=/usr/bin/docker run myapp:latest\n");
    }

    @Test
    void entriesMapOntoABakeManifestTheReaderAccepts() throws Exception {
        List<BundledContainers.Entry> entries = BundledContainers.resolve(List.of("container-base:docker",
                "myapp:docker:autostart", "vendor-1.2.3-oci:docker:on-failure:external"), deploy, "docker");
        assertThat(entries).extracting(BundledContainers.Entry::image, BundledContainers.Entry::tag,
                BundledContainers.Entry::policy, BundledContainers.Entry::external).containsExactly(
                org.assertj.core.groups.Tuple.tuple("container-base", "latest", null, false),
                org.assertj.core.groups.Tuple.tuple("myapp", "latest", "unless-stopped", false),
                org.assertj.core.groups.Tuple.tuple("vendor", "1.2.3", "on-failure", true));
        assertThat(entries.get(0).oci()).isEqualTo(deploy.resolve("container-base-latest-oci"));
        String yaml = BundledContainers.manifest(entries, Arch.AARCH64,
                Map.of("myapp", deploy.resolve("myapp.service")));
        assertThat(yaml).contains("runtime: docker", "name: 'myapp:latest'", "autostart: unless-stopped",
                "unit: '" + deploy.resolve("myapp.service") + "'", "name: 'vendor:1.2.3'");
        Path m = Files.writeString(deploy.resolve("bundled.yaml"), yaml);
        BakeManifest read = BakeManifestReader.read(m);
        assertThat(read.images()).hasSize(3);
        assertThat(read.images().get(1).unit()).isEqualTo(deploy.resolve("myapp.service"));
        assertThat(read.images().get(2).autostart()).isEqualTo(BakeManifest.Autostart.ON_FAILURE);
    }

    @Test
    void whatTheirClassWouldNotFindOrCannotBakeIsRefused() {
        assertThatThrownBy(() -> BundledContainers.resolve(List.of("missing:docker"), deploy, "docker"))
                .isInstanceOf(BadInputException.class).hasMessageContaining("missing-latest-oci or ")
                .hasMessageContaining("missing-oci");
        assertThatThrownBy(() -> BundledContainers.manifest(BundledContainers.resolve(
                List.of("myapp:docker", "container-base:podman"), deploy, "docker"), Arch.AARCH64, Map.of()))
                .hasMessageContaining("mixes docker and podman");
        assertThatThrownBy(() -> BundledContainers.resolve(List.of("myapp:docker:sometimes"), deploy, "docker"))
                .hasMessageContaining("'sometimes' is not one of");
        assertThatThrownBy(() -> BundledContainers.manifest(BundledContainers.resolve(List.of("myapp"), deploy,
                "docker"), Arch.AARCH64, Map.of("other", deploy.resolve("myapp.service"))))
                .hasMessageContaining("CONTAINER_SERVICE_FILE names containers BUNDLED_CONTAINERS does not have: other");
    }
}
