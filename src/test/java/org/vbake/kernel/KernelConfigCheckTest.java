package org.vbake.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;
import org.vbake.kernel.KernelConfigCheck.Report;

class KernelConfigCheckTest {

    @Test
    void bundledFragmentsLoadForEveryArchAndRuntime() {
        for (Arch arch : Arch.values()) {
            for (RuntimeKind runtime : RuntimeKind.values()) {
                List<KernelRequirement> rs = KernelConfigCheck.requirements(arch, runtime);

                assertThat(rs).as("%s/%s", arch, runtime).hasSizeGreaterThan(30);
                assertThat(rs).extracting(KernelRequirement::source)
                        .anyMatch(s -> s.startsWith("common.cfg:"))
                        .anyMatch(s -> s.startsWith(runtime.id() + ".cfg:"))
                        .anyMatch(s -> s.startsWith(arch.id() + ".cfg:"));
                Set<String> seen = new HashSet<>();
                for (KernelRequirement r : rs) {
                    for (KernelRequirement.Option o : r.anyOf()) {
                        assertThat(seen.add(o.name())).as("%s listed twice for %s/%s", o.name(), arch, runtime)
                                .isTrue();
                    }
                }
            }
        }
    }

    @Test
    void configWithEverythingPasses() {
        List<KernelRequirement> rs = KernelConfigCheck.requirements(Arch.AARCH64, RuntimeKind.DOCKER);

        Report report = KernelConfigCheck.check(configSatisfying(rs, ""), Arch.AARCH64, RuntimeKind.DOCKER);

        assertThat(report.ok()).isTrue();
        assertThat(report.missingRequired()).isEmpty();
        assertThat(report.missingRecommended()).isEmpty();
        assertThat(report.checked()).isEqualTo(rs.size());
        assertThat(report.render()).isEqualTo(
                "OK: docker guest on aarch64: " + rs.size() + " options checked, none missing\n");
    }

    @Test
    void missingRequiredOptionFailsNamingItAndItsReason() {
        List<KernelRequirement> rs = KernelConfigCheck.requirements(Arch.X86_64, RuntimeKind.PODMAN);
        KernelRequirement virtioBlk = rs.stream()
                .filter(r -> r.expression().equals("CONFIG_VIRTIO_BLK"))
                .findFirst().orElseThrow();

        Report report = KernelConfigCheck.check(configSatisfying(rs, "CONFIG_VIRTIO_BLK"),
                Arch.X86_64, RuntimeKind.PODMAN);

        assertThat(report.ok()).isFalse();
        assertThat(report.missingRequired()).extracting(KernelConfigCheck.Finding::requirement)
                .containsExactly(virtioBlk);
        assertThat(report.render()).startsWith(
                "missing CONFIG_VIRTIO_BLK (not set): " + virtioBlk.reason() + "\n");
        assertThat(virtioBlk.reason()).contains("virtio-blk");
        assertThat(report.render()).endsWith(
                "FAILED: podman guest on x86_64: " + rs.size() + " options checked, 1 required missing\n");
    }

    @Test
    void builtInRuleRejectsAModule() {
        List<KernelRequirement> rs = KernelRequirement.parseFragment(
                "CONFIG_SERIAL_8250=y # the console must exist before /init runs\n", "test.cfg");

        Report report = KernelConfigCheck.check(KernelConfig.parse("CONFIG_SERIAL_8250=m\n"),
                Arch.X86_64, RuntimeKind.DOCKER, rs);

        assertThat(report.ok()).isFalse();
        assertThat(report.render()).startsWith(
                "missing CONFIG_SERIAL_8250=y (is m): the console must exist before /init runs\n");
        assertThat(KernelConfigCheck.check(KernelConfig.parse("CONFIG_SERIAL_8250=y\n"),
                Arch.X86_64, RuntimeKind.DOCKER, rs).ok()).isTrue();
    }

    @Test
    void anyAlternativeSatisfiesALine() {
        List<KernelRequirement> rs = KernelRequirement.parseFragment(
                "CONFIG_NFT_NAT|CONFIG_IP_NF_NAT # a nat table\n", "test.cfg");

        assertThat(KernelConfigCheck.check(KernelConfig.parse("# CONFIG_NFT_NAT is not set\nCONFIG_IP_NF_NAT=m\n"),
                Arch.X86_64, RuntimeKind.DOCKER, rs).ok()).isTrue();
        Report neither = KernelConfigCheck.check(KernelConfig.parse("# CONFIG_NFT_NAT is not set\n"),
                Arch.X86_64, RuntimeKind.DOCKER, rs);
        assertThat(neither.ok()).isFalse();
        assertThat(neither.render()).startsWith(
                "missing CONFIG_NFT_NAT|CONFIG_IP_NF_NAT (CONFIG_NFT_NAT not set, CONFIG_IP_NF_NAT not in this config)"
                        + ": a nat table\n");
    }

    @Test
    void missingRecommendedOptionIsOnlyAWarning() {
        List<KernelRequirement> rs = KernelRequirement.parseFragment(
                "CONFIG_A # needed\n?CONFIG_KEYS # each container gets its own keyring\n", "test.cfg");

        Report report = KernelConfigCheck.check(KernelConfig.parse("CONFIG_A=y\n# CONFIG_KEYS is not set\n"),
                Arch.AARCH64, RuntimeKind.PODMAN, rs);

        assertThat(report.ok()).isTrue();
        assertThat(report.missingRequired()).isEmpty();
        assertThat(report.missingRecommended()).hasSize(1);
        assertThat(report.render()).isEqualTo(
                "warning CONFIG_KEYS (not set): each container gets its own keyring\n"
                        + "OK: podman guest on aarch64: 2 options checked, 1 recommended missing\n");
    }

    @Test
    void podmanNeedsThePidsControllerWhereDockerOnlyRecommendsIt() {
        String without = "CONFIG_CGROUP_PIDS";
        Report docker = KernelConfigCheck.check(
                configSatisfying(KernelConfigCheck.requirements(Arch.AARCH64, RuntimeKind.DOCKER), without),
                Arch.AARCH64, RuntimeKind.DOCKER);
        Report podman = KernelConfigCheck.check(
                configSatisfying(KernelConfigCheck.requirements(Arch.AARCH64, RuntimeKind.PODMAN), without),
                Arch.AARCH64, RuntimeKind.PODMAN);

        assertThat(docker.ok()).isTrue();
        assertThat(docker.missingRecommended()).extracting(f -> f.requirement().expression())
                .containsExactly("?CONFIG_CGROUP_PIDS");
        assertThat(podman.ok()).isFalse();
        assertThat(podman.missingRequired()).extracting(f -> f.requirement().expression())
                .containsExactly("CONFIG_CGROUP_PIDS");
    }

    @Test
    void kernelForTheOtherArchFailsOnItsArchOption() {
        List<KernelRequirement> x86 = KernelConfigCheck.requirements(Arch.X86_64, RuntimeKind.DOCKER);

        Report report = KernelConfigCheck.check(configSatisfying(x86, ""), Arch.AARCH64, RuntimeKind.DOCKER);

        assertThat(report.ok()).isFalse();
        assertThat(report.missingRequired()).extracting(f -> f.requirement().expression())
                .contains("CONFIG_ARM64", "CONFIG_SERIAL_AMBA_PL011=y");
    }

    /** A config that sets the first alternative of every requirement to y, except {@code leaveOut}. */
    private static KernelConfig configSatisfying(List<KernelRequirement> requirements, String leaveOut) {
        List<String> lines = new ArrayList<>();
        for (KernelRequirement r : requirements) {
            String name = r.anyOf().get(0).name();
            lines.add(name.equals(leaveOut) ? "# " + name + " is not set" : name + "=y");
        }
        return KernelConfig.parse(lines.stream().collect(Collectors.joining("\n")));
    }
}
