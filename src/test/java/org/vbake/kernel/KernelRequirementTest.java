package org.vbake.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.vbake.kernel.KernelRequirement.Option;

class KernelRequirementTest {

    @Test
    void parsesAPlainOption() {
        KernelRequirement r = KernelRequirement.parseLine(
                "CONFIG_VIRTIO_BLK      # the disks are virtio-blk", "common.cfg:3").orElseThrow();

        assertThat(r.anyOf()).containsExactly(new Option("CONFIG_VIRTIO_BLK", false));
        assertThat(r.recommended()).isFalse();
        assertThat(r.reason()).isEqualTo("the disks are virtio-blk");
        assertThat(r.source()).isEqualTo("common.cfg:3");
        assertThat(r.expression()).isEqualTo("CONFIG_VIRTIO_BLK");
    }

    @Test
    void parsesBuiltInAlternativesAndRecommended() {
        KernelRequirement r = KernelRequirement.parseLine(
                "  ? CONFIG_A=y | CONFIG_B  # either will do # even with a hash", "x.cfg:1").orElseThrow();

        assertThat(r.anyOf()).containsExactly(new Option("CONFIG_A", true), new Option("CONFIG_B", false));
        assertThat(r.recommended()).isTrue();
        assertThat(r.reason()).isEqualTo("either will do # even with a hash");
        assertThat(r.expression()).isEqualTo("?CONFIG_A=y|CONFIG_B");
    }

    @Test
    void skipsBlankAndCommentLines() {
        assertThat(KernelRequirement.parseLine("", "x.cfg:1")).isEmpty();
        assertThat(KernelRequirement.parseLine("   ", "x.cfg:1")).isEmpty();
        assertThat(KernelRequirement.parseLine("# CONFIG_A # not a requirement", "x.cfg:1")).isEmpty();
    }

    @Test
    void everyRequirementNeedsAReason() {
        assertThatThrownBy(() -> KernelRequirement.parseLine("CONFIG_A", "x.cfg:7"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("x.cfg:7")
                .hasMessageContaining("reason");
        assertThatThrownBy(() -> KernelRequirement.parseLine("CONFIG_A #   ", "x.cfg:7"))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void rejectsMalformedOptions() {
        for (String bad : List.of("VIRTIO_BLK # r", "CONFIG_A=m # r", "CONFIG_A| # r", "CONFIG_A CONFIG_B # r",
                "?? CONFIG_A # r")) {
            assertThatThrownBy(() -> KernelRequirement.parseLine(bad, "x.cfg:2"))
                    .as(bad)
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("x.cfg:2");
        }
    }

    @Test
    void fragmentLinesKeepTheirLineNumbers() {
        List<KernelRequirement> rs = KernelRequirement.parseFragment(
                "# header\n\nCONFIG_A # a\n?CONFIG_B # b\n", "common.cfg");

        assertThat(rs).extracting(KernelRequirement::source).containsExactly("common.cfg:3", "common.cfg:4");
    }

    @Test
    void builtInOptionIsNotSatisfiedByAModule() {
        KernelConfig config = KernelConfig.parse("CONFIG_A=m\nCONFIG_B=y\n# CONFIG_C is not set\n");

        assertThat(new Option("CONFIG_A", false).satisfiedBy(config)).isTrue();
        assertThat(new Option("CONFIG_A", true).satisfiedBy(config)).isFalse();
        assertThat(new Option("CONFIG_B", true).satisfiedBy(config)).isTrue();
        assertThat(new Option("CONFIG_C", false).satisfiedBy(config)).isFalse();
        assertThat(new Option("CONFIG_D", false).satisfiedBy(config)).isFalse();
    }
}
