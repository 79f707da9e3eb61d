package org.vbake.image;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;

/** Platform choice from an index and the arch check on single-platform configs. */
class PlatformsTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    private static JsonNode json(String text) throws Exception {
        return JSON.readTree(text.replace('\'', '"'));
    }

    private static String entry(String digit, String platform, String extra) {
        String[] p = platform.split("/");
        return "{'mediaType':'application/vnd.oci.image.manifest.v1+json','digest':'sha256:" + digit.repeat(64)
                + "','size':1,'platform':{'os':'" + p[0] + "','architecture':'" + p[1] + "'"
                + (p.length > 2 ? ",'variant':'" + p[2] + "'" : "") + "}" + extra + "}";
    }

    @Test
    void picksTheEntryForTheTargetArch() throws Exception {
        JsonNode index = json("{'manifests':[" + entry("1", "linux/amd64", "") + "," + entry("2", "linux/arm64/v8", "")
                + "," + entry("3", "linux/arm/v7", "") + "]}");

        assertThat(Platforms.select(index, Arch.AARCH64, "x").get("digest").asText()).isEqualTo("sha256:" + "2".repeat(64));
        assertThat(Platforms.select(index, Arch.X86_64, "x").get("digest").asText()).isEqualTo("sha256:" + "1".repeat(64));
    }

    @Test
    void arm64WithoutVariantIsTakenButNotAnotherVariant() throws Exception {
        JsonNode plain = json("{'manifests':[" + entry("1", "linux/arm64", "") + "]}");
        JsonNode odd = json("{'manifests':[" + entry("1", "linux/arm64/v9", "") + "]}");

        assertThat(Platforms.select(plain, Arch.AARCH64, "x").get("digest").asText()).endsWith("1111");
        assertThatThrownBy(() -> Platforms.select(odd, Arch.AARCH64, "registry r/a:1"))
                .isInstanceOf(BadInputException.class)
                .hasMessage("registry r/a:1 has no linux/arm64 image (it has: linux/arm64/v9)");
    }

    @Test
    void amd64PrefersTheBaselineOverMicroarchitectureVariants() throws Exception {
        JsonNode index = json("{'manifests':[" + entry("3", "linux/amd64/v3", "") + "," + entry("1", "linux/amd64", "")
                + "]}");

        assertThat(Platforms.select(index, Arch.X86_64, "x").get("digest").asText()).endsWith("1111");
    }

    @Test
    void attestationsAreNeitherChosenNorListed() throws Exception {
        JsonNode index = json("{'manifests':[" + entry("1", "linux/amd64", "") + ","
                + entry("2", "unknown/unknown", "") + ","
                + entry("3", "linux/arm64", ",'annotations':{'vnd.docker.reference.type':'attestation-manifest'}")
                + "]}");

        assertThatThrownBy(() -> Platforms.select(index, Arch.AARCH64, "oci-archive /a.tar"))
                .isInstanceOf(BadInputException.class)
                .hasMessage("oci-archive /a.tar has no linux/arm64 image (it has: linux/amd64)");
    }

    @Test
    void somethingThatIsNoIndexIsBadInput() throws Exception {
        assertThatThrownBy(() -> Platforms.select(json("{'layers':[]}"), Arch.AARCH64, "w"))
                .isInstanceOf(BadInputException.class)
                .hasMessage("w: not an image index (it has no \"manifests\" list)");
    }

    @Test
    void configForAnotherArchIsRefusedWithAHintUnlessAllowed() throws Exception {
        JsonNode amd64 = json("{'os':'linux','architecture':'amd64'}");

        assertThatThrownBy(() -> Platforms.checkConfig(amd64, Arch.AARCH64, false, "docker-archive /s.tar"))
                .isInstanceOfSatisfying(BadInputException.class, e -> {
                    assertThat(e.getMessage()).isEqualTo("docker-archive /s.tar is a linux/amd64 image, not linux/arm64");
                    assertThat(e.hint()).isEqualTo("pass --allow-arch-mismatch to import it anyway");
                });
        Platforms.checkConfig(amd64, Arch.AARCH64, true, "w");
        Platforms.checkConfig(amd64, Arch.X86_64, false, "w");
        Platforms.checkConfig(json("{'os':'linux','architecture':'arm64','variant':'v8'}"), Arch.AARCH64, false, "w");
        assertThatThrownBy(() -> Platforms.checkConfig(json("{}"), Arch.X86_64, false, "w"))
                .hasMessage("w is a unknown/unknown image, not linux/amd64");
    }
}
