package org.vbake.session;

import java.util.ArrayList;
import java.util.List;

/**
 * Reads back the engine command an autostart unit runs (a systemd {@code ExecStart=} of docker
 * units, or a Quadlet {@code .container} file) as a detached {@code run} argv for the guest, so
 * {@code vbake verify} can start each container as the target's init would. Port publishing is
 * dropped (a verify guest has no network device) and the container is put on network {@code none}.
 */
final class AutostartCommand {

    private AutostartCommand() {
    }

    /** The engine arguments (without the engine binary) that start the unit's container detached. */
    static List<String> runArgs(String unitText, String unitName) {
        if (unitName.endsWith(".container")) {
            return fromQuadlet(unitText, unitName);
        }
        for (String line : unitText.split("\n")) {
            if (line.startsWith("ExecStart=")) {
                List<String> argv = splitSystemd(line.substring("ExecStart=".length()));
                if (argv.size() < 3 || !argv.get(1).equals("run")) {
                    throw new IllegalArgumentException(unitName + ": ExecStart is not '<engine> run ...'");
                }
                List<String> run = new ArrayList<>(List.of("run", "-d", "--network", "none"));
                List<String> rest = argv.subList(2, argv.size());
                for (int i = 0; i < rest.size(); i++) {
                    String a = rest.get(i);
                    if (a.equals("-p") || a.equals("--publish")) {
                        i++;
                        continue;
                    }
                    if (a.startsWith("--publish=") || a.startsWith("-p=")) {
                        continue;
                    }
                    run.add(a);
                }
                return run;
            }
        }
        throw new IllegalArgumentException(unitName + ": no ExecStart= line");
    }

    private static List<String> fromQuadlet(String text, String unitName) {
        List<String> opts = new ArrayList<>(List.of("run", "-d", "--rm", "--network", "none"));
        String image = null;
        List<String> exec = List.of();
        boolean inContainer = false;
        for (String raw : text.split("\n")) {
            String line = raw.strip();
            if (line.startsWith("[")) {
                inContainer = line.equals("[Container]");
                continue;
            }
            int eq = line.indexOf('=');
            if (!inContainer || eq < 0 || line.startsWith("#")) {
                continue;
            }
            String key = line.substring(0, eq);
            String value = line.substring(eq + 1);
            switch (key) {
                case "Image":
                    image = value;
                    break;
                case "ContainerName":
                    opts.add("--name");
                    opts.add(value);
                    break;
                case "Environment":
                    for (String e : splitSystemd(value)) {
                        opts.add("--env");
                        opts.add(e);
                    }
                    break;
                case "Volume":
                    opts.add("-v");
                    opts.add(value);
                    break;
                case "PodmanArgs":
                    opts.addAll(splitSystemd(value));
                    break;
                case "Exec":
                    exec = splitSystemd(value);
                    break;
                default:
                    // PublishPort and the rest do not apply in the guest
            }
        }
        if (image == null) {
            throw new IllegalArgumentException(unitName + ": no Image= in [Container]");
        }
        opts.add(image);
        opts.addAll(exec);
        return opts;
    }

    /** The value of --name in a run argv. */
    static String containerName(List<String> run) {
        for (int i = 0; i < run.size() - 1; i++) {
            if (run.get(i).equals("--name")) {
                return run.get(i + 1);
            }
        }
        throw new IllegalArgumentException("the unit names no container (--name)");
    }

    /** systemd's word splitting: whitespace separates, double or single quotes group, C escapes, %% and $$. */
    static List<String> splitSystemd(String s) {
        List<String> words = new ArrayList<>();
        StringBuilder cur = null;
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote == 0 && Character.isWhitespace(c)) {
                if (cur != null) {
                    words.add(cur.toString());
                    cur = null;
                }
                continue;
            }
            if (cur == null) {
                cur = new StringBuilder();
            }
            if (quote == 0 && (c == '"' || c == '\'')) {
                quote = c;
            } else if (quote != 0 && c == quote) {
                quote = 0;
            } else if (c == '\\' && i + 1 < s.length()) {
                char n = s.charAt(++i);
                switch (n) {
                    case 'n':
                        cur.append('\n');
                        break;
                    case 't':
                        cur.append('\t');
                        break;
                    default:
                        cur.append(n);
                }
            } else if ((c == '%' || c == '$') && i + 1 < s.length() && s.charAt(i + 1) == c) {
                cur.append(c);
                i++;
            } else {
                cur.append(c);
            }
        }
        if (cur != null) {
            words.add(cur.toString());
        }
        return words;
    }
}
