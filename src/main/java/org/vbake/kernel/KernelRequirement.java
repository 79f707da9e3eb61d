package org.vbake.kernel;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * One line of a kernel-config fragment: options of which at least one must be enabled, whether
 * missing them fails the check or only warns, and why vbake needs them. The format is described
 * in {@code kernel-config/README.md}.
 *
 * @param anyOf       the alternatives; one being satisfied is enough
 * @param recommended a {@code ?} line: missing it is a warning, not a failure
 * @param reason      what breaks without it, shown when it is missing
 * @param source      where the line comes from, such as {@code common.cfg:12}
 */
public record KernelRequirement(List<Option> anyOf, boolean recommended, String reason, String source) {

    private static final Pattern NAME = Pattern.compile("CONFIG_[A-Za-z0-9_]+");

    /**
     * A single option and how it must be set.
     *
     * @param name    such as {@code CONFIG_VIRTIO_BLK}
     * @param builtIn {@code CONFIG_X=y}: a module does not do
     */
    public record Option(String name, boolean builtIn) {

        public boolean satisfiedBy(KernelConfig config) {
            return builtIn ? config.isBuiltIn(name) : config.isEnabled(name);
        }

        @Override
        public String toString() {
            return builtIn ? name + "=y" : name;
        }
    }

    public KernelRequirement {
        anyOf = List.copyOf(anyOf);
        if (anyOf.isEmpty()) {
            throw new IllegalArgumentException("a requirement needs at least one option");
        }
    }

    public boolean satisfiedBy(KernelConfig config) {
        return anyOf.stream().anyMatch(o -> o.satisfiedBy(config));
    }

    /** The requirement as written in a fragment, without the reason: {@code ?CONFIG_A|CONFIG_B=y}. */
    public String expression() {
        return (recommended ? "?" : "") + anyOf.stream().map(Option::toString).collect(Collectors.joining("|"));
    }

    /**
     * Parses one fragment line; blank and comment lines give an empty result.
     *
     * @param source where the line comes from, for messages ({@code common.cfg:12})
     * @throws IllegalArgumentException naming {@code source}, when the line is malformed or has no reason
     */
    public static Optional<KernelRequirement> parseLine(String line, String source) {
        String text = line.strip();
        if (text.isEmpty() || text.startsWith("#")) {
            return Optional.empty();
        }
        int hash = text.indexOf('#');
        String reason = hash < 0 ? "" : text.substring(hash + 1).strip();
        if (reason.isEmpty()) {
            throw new IllegalArgumentException(source + ": a requirement needs a reason after ' # ': " + text);
        }
        String expression = text.substring(0, hash).strip();
        boolean recommended = expression.startsWith("?");
        if (recommended) {
            expression = expression.substring(1).strip();
        }
        List<Option> options = new ArrayList<>();
        for (String alternative : expression.split("\\|", -1)) {
            options.add(parseOption(alternative.strip(), source));
        }
        return Optional.of(new KernelRequirement(options, recommended, reason, source));
    }

    private static Option parseOption(String text, String source) {
        boolean builtIn = text.endsWith("=y");
        String name = builtIn ? text.substring(0, text.length() - 2) : text;
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException(
                    source + ": expected CONFIG_NAME or CONFIG_NAME=y, found '" + text + "'");
        }
        return new Option(name, builtIn);
    }

    /**
     * Parses a whole fragment.
     *
     * @param fileName used in {@link #source()} and in error messages
     */
    public static List<KernelRequirement> parseFragment(String text, String fileName) {
        List<KernelRequirement> requirements = new ArrayList<>();
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            parseLine(lines[i], fileName + ":" + (i + 1)).ifPresent(requirements::add);
        }
        return List.copyOf(requirements);
    }
}
