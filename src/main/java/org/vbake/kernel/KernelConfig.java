package org.vbake.kernel;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * A kernel's build configuration as written by kconfig ({@code .config}, {@code /boot/config-*},
 * {@code /proc/config.gz}): option names and their values, so requirements can be checked
 * against it.
 */
public final class KernelConfig {

    private static final Pattern SET = Pattern.compile("(CONFIG_[A-Za-z0-9_]+)=(.*)");
    private static final Pattern NOT_SET = Pattern.compile("# (CONFIG_[A-Za-z0-9_]+) is not set");
    private static final Pattern HEADLINE = Pattern.compile("# (Linux/\\S+ \\S+) Kernel Configuration");
    private static final Pattern NUMBER = Pattern.compile("-?[0-9]+|0[xX][0-9a-fA-F]+");

    private final Map<String, String> values;
    private final String kernel;

    private KernelConfig(Map<String, String> values, String kernel) {
        this.values = Collections.unmodifiableMap(values);
        this.kernel = kernel;
    }

    /** Reads a config file; a gzip-compressed one (such as a copy of /proc/config.gz) is unpacked on the way. */
    public static KernelConfig read(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            return read(in);
        }
    }

    /** Reads a config from a stream, plain or gzip-compressed (told apart by the gzip magic bytes). */
    public static KernelConfig read(InputStream in) throws IOException {
        BufferedInputStream buffered = new BufferedInputStream(in);
        buffered.mark(2);
        int first = buffered.read();
        int second = buffered.read();
        buffered.reset();
        InputStream plain = first == 0x1f && second == 0x8b ? new GZIPInputStream(buffered) : buffered;
        return parse(new String(plain.readAllBytes(), StandardCharsets.UTF_8));
    }

    /**
     * Parses the text of a config.
     *
     * @throws IllegalArgumentException naming the line, when the text is not a kernel config
     */
    public static KernelConfig parse(String text) {
        Map<String, String> values = new LinkedHashMap<>();
        String kernel = null;
        String[] lines = text.split("\r?\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            Matcher set = SET.matcher(line);
            Matcher notSet = NOT_SET.matcher(line);
            Matcher headline = HEADLINE.matcher(line);
            if (set.matches()) {
                values.put(set.group(1), value(set.group(2), i + 1));
            } else if (notSet.matches()) {
                values.put(notSet.group(1), "n");
            } else if (headline.matches() && kernel == null) {
                kernel = headline.group(1);
            } else if (!line.isEmpty() && !line.startsWith("#")) {
                throw new IllegalArgumentException(
                        "line " + (i + 1) + " is not a kernel config line: " + abbreviate(line));
            }
        }
        if (values.isEmpty()) {
            throw new IllegalArgumentException("no CONFIG_ options found: not a kernel config");
        }
        return new KernelConfig(values, kernel);
    }

    private static String value(String raw, int lineNumber) {
        if (raw.equals("y") || raw.equals("m") || raw.equals("n") || NUMBER.matcher(raw).matches()) {
            return raw;
        }
        if (raw.length() >= 2 && raw.startsWith("\"") && raw.endsWith("\"")) {
            return raw.substring(1, raw.length() - 1).replace("\\\"", "\"").replace("\\\\", "\\");
        }
        throw new IllegalArgumentException("line " + lineNumber + ": not a kernel config value: " + abbreviate(raw));
    }

    private static String abbreviate(String s) {
        return s.length() <= 60 ? s : s.substring(0, 57) + "...";
    }

    /**
     * The option's value: {@code y}, {@code m}, {@code n} (also for {@code # CONFIG_X is not set}),
     * a number, or a string without its quotes; empty when the config does not mention the option.
     */
    public Optional<String> value(String option) {
        return Optional.ofNullable(values.get(option));
    }

    /** Built in or a module. */
    public boolean isEnabled(String option) {
        String v = values.get(option);
        return "y".equals(v) || "m".equals(v);
    }

    public boolean isBuiltIn(String option) {
        return "y".equals(values.get(option));
    }

    /** Every option the config mentions, with its value, in file order. */
    public Map<String, String> options() {
        return values;
    }

    /** What the config's header says it is built for, such as {@code Linux/arm64 6.12.117}. */
    public Optional<String> kernel() {
        return Optional.ofNullable(kernel);
    }
}
