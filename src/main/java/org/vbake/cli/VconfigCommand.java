package org.vbake.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.VbakeException;

/**
 * {@code vdkr vconfig [KEY [VALUE]] [--reset]}: reads and writes the keys of the tool's config
 * file ({@code ~/.config/vdkr/config}, {@code key=value} lines) with the same validation the
 * commands apply when they read them. As meta-virtualization's vconfig: no arguments list every
 * key with its value or default, {@code KEY} prints the value, {@code KEY VALUE} sets it,
 * {@code KEY --reset} (or {@code --reset} for all) goes back to the default.
 */
final class VconfigCommand {

    /** The keys, in the order they are listed, with their defaults and what they mean. */
    static final Map<String, String[]> KEYS = new LinkedHashMap<>();

    static {
        KEYS.put("arch", new String[] {"(the host's)", "target arch when -a is not given: aarch64 or x86_64"});
        KEYS.put("suite", new String[] {"trixie", "Debian release of the guest: trixie or bookworm"});
        KEYS.put("state-dir", new String[] {"(~/.vdkr/<arch>)", "where the state of the default instance is kept"});
        KEYS.put("auto-daemon", new String[] {"false", "start a resident guest on the first command: true or false"});
        KEYS.put("idle-timeout", new String[] {"30m", "resident guest's idle power-off: seconds, or with s/m/h; 0 = never"});
        KEYS.put("resume", new String[] {"true", "resume the guest the last command saved: true or false"});
        KEYS.put("registry", new String[] {"", "registry for image names without one (pull), e.g. 10.0.0.2:5000"});
    }

    private final ToolConfig config;
    private final PrintStream out;

    VconfigCommand(ToolConfig config, PrintStream out) {
        this.config = config;
        this.out = out;
    }

    int run(List<String> args) throws VbakeException {
        boolean reset = args.contains("--reset");
        List<String> words = new ArrayList<>(args);
        words.remove("--reset");
        for (String w : words) {
            if (w.startsWith("-")) {
                throw new BadInputException("vconfig: unknown option " + w, usage());
            }
        }
        Map<String, String> values = read();
        if (words.isEmpty()) {
            if (reset) {
                write(new LinkedHashMap<>());
                out.println("Reset every key to its default in " + config.configFile());
                return ExitCodes.OK;
            }
            out.println(config.toolName() + " configuration (" + config.configFile() + "):");
            out.println();
            for (Map.Entry<String, String[]> k : KEYS.entrySet()) {
                String v = values.get(k.getKey());
                out.println("  " + k.getKey() + " = " + (v != null ? v : k.getValue()[0] + " (default)"));
            }
            out.println();
            out.println("Config directory: " + config.configFile().getParent());
            return ExitCodes.OK;
        }
        String key = words.get(0);
        if (!KEYS.containsKey(key)) {
            throw new BadInputException("vconfig: unknown config key: " + key,
                    "valid keys: " + String.join(", ", KEYS.keySet()));
        }
        if (words.size() > 2 || (reset && words.size() > 1)) {
            throw new BadInputException("vconfig: too many arguments", usage());
        }
        if (reset) {
            values.remove(key);
            write(values);
            out.println("Reset " + key + " to default: " + KEYS.get(key)[0]);
            return ExitCodes.OK;
        }
        if (words.size() == 1) {
            String v = values.get(key);
            out.println(v != null ? v : KEYS.get(key)[0].startsWith("(") ? "" : KEYS.get(key)[0]);
            return ExitCodes.OK;
        }
        String value = words.get(1).strip();
        validate(key, value);
        values.put(key, value);
        write(values);
        out.println("Set " + key + " = " + value);
        return ExitCodes.OK;
    }

    private static String usage() {
        return "usage: vconfig [KEY [VALUE]] [--reset]; keys: " + String.join(", ", KEYS.keySet());
    }

    /** The checks the commands themselves make when they read the key. */
    static void validate(String key, String value) throws BadInputException {
        switch (key) {
            case "arch" -> {
                if (Arch.parse(value).isEmpty()) {
                    throw new BadInputException("vconfig: invalid architecture: " + value, "valid values: aarch64, x86_64");
                }
            }
            case "suite" -> {
                if (!List.of("trixie", "bookworm").contains(value)) {
                    throw new BadInputException("vconfig: invalid suite: " + value, "valid values: trixie, bookworm");
                }
            }
            case "auto-daemon", "resume" -> {
                if (!List.of("true", "false", "yes", "no", "1", "0").contains(value)) {
                    throw new BadInputException("vconfig: invalid " + key + " value: " + value,
                            "valid values: true, false");
                }
            }
            case "idle-timeout" -> {
                if (!value.matches("\\d+\\s*[smh]?")) {
                    throw new BadInputException("vconfig: invalid idle-timeout: " + value,
                            "e.g. 30m, 900 (seconds), 2h, or 0 for never");
                }
            }
            case "state-dir" -> {
                if (value.isEmpty() || !Path.of(value).isAbsolute()) {
                    throw new BadInputException("vconfig: state-dir must be an absolute path, got '" + value + "'");
                }
            }
            case "registry" -> {
                if (!value.isEmpty() && !value.matches("[A-Za-z0-9.-]+(:\\d+)?(/[a-z0-9._/-]+)?")) {
                    throw new BadInputException("vconfig: invalid registry: " + value, "e.g. 10.0.0.2:5000 or registry.example.com");
                }
            }
            default -> throw new BadInputException("vconfig: unknown config key: " + key);
        }
    }

    private Map<String, String> read() throws BadInputException {
        Map<String, String> values = new LinkedHashMap<>();
        for (String key : KEYS.keySet()) {
            String v = config.configValue(key);
            if (v != null) {
                values.put(key, v);
            }
        }
        return values;
    }

    /** The file keeps its other lines (comments, unknown keys); the known keys are rewritten. */
    private void write(Map<String, String> values) throws BadInputException {
        Path file = config.configFile();
        try {
            List<String> kept = new ArrayList<>();
            if (Files.isRegularFile(file)) {
                for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
                    String s = line.strip();
                    int eq = s.indexOf('=');
                    if (eq > 0 && KEYS.containsKey(s.substring(0, eq).strip())) {
                        continue;
                    }
                    kept.add(line);
                }
            }
            values.forEach((k, v) -> kept.add(k + "=" + v));
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".new");
            Files.write(tmp, kept, StandardCharsets.UTF_8);
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new BadInputException("cannot write " + file + ": " + e.getMessage());
        }
    }
}
