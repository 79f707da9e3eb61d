package org.vbake.kernel;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/**
 * Checks a kernel config against what a vbake guest needs: the fragments under
 * {@code kernel-config/} (common, the engine's, the architecture's), which the jar carries as
 * resources.
 */
public final class KernelConfigCheck {

    /** Where the build puts the {@code kernel-config/} directory on the classpath. */
    public static final String RESOURCE_DIR = "org/vbake/kernel-config/";

    private KernelConfigCheck() {
    }

    /** Checks {@code config} against the bundled fragments for this architecture and engine. */
    public static Report check(KernelConfig config, Arch arch, RuntimeKind runtime) {
        return check(config, arch, runtime, requirements(arch, runtime));
    }

    /** Checks {@code config} against the given requirements; {@code arch} and {@code runtime} only label the report. */
    public static Report check(KernelConfig config, Arch arch, RuntimeKind runtime,
            List<KernelRequirement> requirements) {
        List<Finding> missingRequired = new ArrayList<>();
        List<Finding> missingRecommended = new ArrayList<>();
        for (KernelRequirement requirement : requirements) {
            if (requirement.satisfiedBy(config)) {
                continue;
            }
            Finding finding = new Finding(requirement, describe(requirement, config));
            (requirement.recommended() ? missingRecommended : missingRequired).add(finding);
        }
        return new Report(arch, runtime, missingRequired, missingRecommended, requirements.size());
    }

    /** The bundled requirements for a guest of this architecture running this engine, in file order. */
    public static List<KernelRequirement> requirements(Arch arch, RuntimeKind runtime) {
        List<KernelRequirement> all = new ArrayList<>();
        for (String file : List.of("common.cfg", runtime.id() + ".cfg", arch.id() + ".cfg")) {
            all.addAll(KernelRequirement.parseFragment(loadFragment(file), file));
        }
        return List.copyOf(all);
    }

    private static String loadFragment(String file) {
        String resource = RESOURCE_DIR + file;
        try (InputStream in = KernelConfigCheck.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) {
                throw new IllegalStateException("kernel requirements missing from the classpath: " + resource);
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + resource, e);
        }
    }

    private static String describe(KernelRequirement requirement, KernelConfig config) {
        List<KernelRequirement.Option> options = requirement.anyOf();
        if (options.size() == 1) {
            return state(options.get(0), config);
        }
        return options.stream()
                .map(o -> o.name() + " " + state(o, config))
                .collect(Collectors.joining(", "));
    }

    private static String state(KernelRequirement.Option option, KernelConfig config) {
        return config.value(option.name())
                .map(v -> v.equals("n") ? "not set" : "is " + v)
                .orElse("not in this config");
    }

    /**
     * A requirement the config does not meet.
     *
     * @param found what the config has instead, such as {@code not set} or {@code is m}
     */
    public record Finding(KernelRequirement requirement, String found) {

        /** One line for humans: the option, what was found, and the reason. */
        public String render() {
            String option = requirement.anyOf().stream()
                    .map(KernelRequirement.Option::toString)
                    .collect(Collectors.joining("|"));
            return option + " (" + found + "): " + requirement.reason();
        }
    }

    /**
     * The outcome of a check.
     *
     * @param missingRequired    requirements not met; any of them fails the check
     * @param missingRecommended {@code ?} requirements not met; warnings only
     * @param checked            how many requirements were checked
     */
    public record Report(Arch arch, RuntimeKind runtime, List<Finding> missingRequired,
            List<Finding> missingRecommended, int checked) {

        public Report {
            missingRequired = List.copyOf(missingRequired);
            missingRecommended = List.copyOf(missingRecommended);
        }

        /** True when every required option is there; missing recommended ones do not count. */
        public boolean ok() {
            return missingRequired.isEmpty();
        }

        /** One line per missing option (failures first, then warnings) and a summary line. */
        public String render() {
            StringBuilder out = new StringBuilder();
            for (Finding f : missingRequired) {
                out.append("missing ").append(f.render()).append('\n');
            }
            for (Finding f : missingRecommended) {
                out.append("warning ").append(f.render()).append('\n');
            }
            out.append(ok() ? "OK" : "FAILED").append(": ")
                    .append(runtime.id()).append(" guest on ").append(arch.id()).append(": ")
                    .append(checked).append(" options checked");
            if (missingRequired.isEmpty() && missingRecommended.isEmpty()) {
                out.append(", none missing");
            }
            if (!missingRequired.isEmpty()) {
                out.append(", ").append(missingRequired.size()).append(" required missing");
            }
            if (!missingRecommended.isEmpty()) {
                out.append(", ").append(missingRecommended.size()).append(" recommended missing");
            }
            return out.append('\n').toString();
        }
    }
}
