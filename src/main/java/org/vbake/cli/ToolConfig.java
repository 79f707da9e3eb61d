package org.vbake.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;

/**
 * Settings that do not come from the command line: the executable's name, the environment and
 * {@code ~/.config/vdkr/config} (or {@code vpdmn}). Resolves the target arch with the documented
 * precedence: {@code -a/--arch} > executable name ({@code vdkr-aarch64}) > {@code VDKR_ARCH} >
 * config {@code arch=} > host arch.
 */
public record ToolConfig(String prog, RuntimeKind runtime, Map<String, String> env, Path configFile) {

    /** {@code vdkr} for docker, {@code vpdmn} for podman. */
    public String toolName() {
        return runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn";
    }

    public static Path defaultConfigFile(RuntimeKind runtime, Map<String, String> env) {
        String xdg = env.get("XDG_CONFIG_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg)
                : Path.of(env.getOrDefault("HOME", System.getProperty("user.home")), ".config");
        return base.resolve(runtime == RuntimeKind.DOCKER ? "vdkr" : "vpdmn").resolve("config");
    }

    public Arch resolveArch(String fromOption) throws BadInputException {
        if (fromOption != null) {
            return parseArch(fromOption, "-a/--arch");
        }
        Optional<Arch> fromName = archFromProgName(prog);
        if (fromName.isPresent()) {
            return fromName.get();
        }
        String envName = toolName().toUpperCase(java.util.Locale.ROOT) + "_ARCH";
        String fromEnv = env.get(envName);
        if (fromEnv != null && !fromEnv.isBlank()) {
            return parseArch(fromEnv, envName);
        }
        String fromConfig = readConfig().get("arch");
        if (fromConfig != null && !fromConfig.isBlank()) {
            return parseArch(fromConfig, configFile + " arch=");
        }
        return Arch.host().orElseThrow(() -> new BadInputException(
                "cannot tell the target arch: the host is " + System.getProperty("os.arch"), "pass -a aarch64 or -a x86_64"));
    }

    /** A config value such as {@code suite}, or null. */
    public String configValue(String key) throws BadInputException {
        return readConfig().get(key);
    }

    static Optional<Arch> archFromProgName(String prog) {
        if (prog == null) {
            return Optional.empty();
        }
        String base = Path.of(prog).getFileName().toString();
        int dash = base.indexOf('-');
        return dash < 0 ? Optional.empty() : Arch.parse(base.substring(dash + 1));
    }

    private static Arch parseArch(String value, String source) throws BadInputException {
        return Arch.parse(value).orElseThrow(() -> new BadInputException(
                "unknown arch '" + value + "' (from " + source + ")", "choose one of: " + Arch.choices()));
    }

    private Map<String, String> readConfig() throws BadInputException {
        Map<String, String> values = new LinkedHashMap<>();
        if (configFile == null || !Files.isRegularFile(configFile)) {
            return values;
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(configFile, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new BadInputException("cannot read " + configFile + ": " + e.getMessage());
        }
        int n = 0;
        for (String raw : lines) {
            n++;
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int eq = line.indexOf('=');
            if (eq <= 0) {
                throw new BadInputException(configFile + ":" + n + ": expected key=value, got '" + line + "'");
            }
            String value = line.substring(eq + 1).strip();
            if (value.length() >= 2 && (value.startsWith("\"") && value.endsWith("\""))) {
                value = value.substring(1, value.length() - 1);
            }
            values.put(line.substring(0, eq).strip(), value);
        }
        return values;
    }

    /** SOURCE_DATE_EPOCH from {@code env}, or null when unset; anything but a number is bad input. */
    static Long sourceDateEpoch(Map<String, String> env) throws BadInputException {
        String v = env.get("SOURCE_DATE_EPOCH");
        if (v == null || v.isBlank()) {
            return null;
        }
        try {
            return Long.parseLong(v.strip());
        } catch (NumberFormatException e) {
            throw new BadInputException("SOURCE_DATE_EPOCH must be a number of seconds, got '" + v + "'");
        }
    }
}
