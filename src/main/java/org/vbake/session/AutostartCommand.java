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
        return runArgs(unitText, unitName, null);
    }

    /**
     * The same, resolving a Quadlet file's {@code Network=X.network} and {@code Volume=Y.volume:...}
     * against the {@code .network} and {@code .volume} files in {@code dir}.
     */
    static List<String> runArgs(String unitText, String unitName, java.nio.file.Path dir) {
        if (unitName.endsWith(".container")) {
            return fromQuadlet(unitText, unitName, dir);
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

    /** A docker compose stack's unit (ExecStart runs {@code docker compose}). */
    static boolean isComposeUnit(String unitText) {
        return unitText.lines().anyMatch(l -> l.startsWith("ExecStart=") && l.contains(" compose "));
    }

    /** The arguments after the engine binary of a compose unit's ExecStart. */
    static List<String> composeArgs(String unitText) {
        for (String line : unitText.split("\n")) {
            if (line.startsWith("ExecStart=")) {
                List<String> argv = splitSystemd(line.substring("ExecStart=".length()));
                return new ArrayList<>(argv.subList(1, argv.size()));
            }
        }
        throw new IllegalArgumentException("no ExecStart= line");
    }

    /** The word after {@code option}, or null. */
    static String valueAfter(List<String> argv, String option) {
        int i = argv.indexOf(option);
        return i >= 0 && i + 1 < argv.size() ? argv.get(i + 1) : null;
    }

    /**
     * What a Quadlet container needs before it starts: {@code network create NAME} for its
     * {@code .network}, {@code volume create NAME} for each {@code .volume} (as engine arguments).
     */
    static List<List<String>> prerequisites(String text, java.nio.file.Path dir) throws java.io.IOException {
        List<List<String>> out = new ArrayList<>();
        for (String[] kv : containerKeys(text)) {
            if (kv[0].equals("Network") && kv[1].endsWith(".network")) {
                out.add(List.of("network", "create", quadletName(dir, kv[1], "NetworkName", "systemd-")));
            } else if (kv[0].equals("Volume") && kv[1].contains(".volume:")) {
                out.add(List.of("volume", "create", quadletName(dir, kv[1].substring(0, kv[1].indexOf(':')),
                        "VolumeName", "systemd-")));
            }
        }
        return out;
    }

    /** The name a Quadlet .network or .volume file gives its object (Quadlet's default: systemd-BASENAME). */
    private static String quadletName(java.nio.file.Path dir, String file, String key, String prefix) {
        String base = file.substring(0, file.lastIndexOf('.'));
        if (dir != null) {
            java.nio.file.Path f = dir.resolve(file);
            try {
                for (String line : java.nio.file.Files.readAllLines(f)) {
                    if (line.startsWith(key + "=")) {
                        return line.substring(key.length() + 1).strip();
                    }
                }
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("cannot read " + f + ": " + e.getMessage());
            }
        }
        return prefix + base;
    }

    /** The key/value lines of a Quadlet file's [Container] section. */
    private static List<String[]> containerKeys(String text) {
        List<String[]> out = new ArrayList<>();
        boolean inContainer = false;
        for (String raw : text.split("\n")) {
            String line = raw.strip();
            if (line.startsWith("[")) {
                inContainer = line.equals("[Container]");
                continue;
            }
            int eq = line.indexOf('=');
            if (inContainer && eq > 0 && !line.startsWith("#")) {
                out.add(new String[] {line.substring(0, eq), line.substring(eq + 1)});
            }
        }
        return out;
    }

    /**
     * Units in an order that starts each after the units it {@code Requires=} (Quadlet's
     * X.container is X.service), names sorted otherwise.
     */
    static List<java.nio.file.Path> startOrder(List<java.nio.file.Path> units) throws java.io.IOException {
        java.util.Map<String, java.nio.file.Path> byService = new java.util.TreeMap<>();
        java.util.Map<String, List<String>> requires = new java.util.HashMap<>();
        for (java.nio.file.Path u : units) {
            String n = u.getFileName().toString();
            String service = n.endsWith(".container") ? n.substring(0, n.length() - ".container".length()) + ".service" : n;
            byService.put(service, u);
            List<String> r = new ArrayList<>();
            for (String line : java.nio.file.Files.readAllLines(u)) {
                if (line.startsWith("Requires=")) {
                    r.addAll(splitSystemd(line.substring("Requires=".length())));
                }
            }
            requires.put(service, r);
        }
        java.util.LinkedHashSet<String> done = new java.util.LinkedHashSet<>();
        for (String s : byService.keySet()) {
            order(s, byService, requires, done, new java.util.HashSet<>());
        }
        List<java.nio.file.Path> out = new ArrayList<>();
        done.forEach(s -> out.add(byService.get(s)));
        return out;
    }

    private static void order(String s, java.util.Map<String, java.nio.file.Path> byService,
            java.util.Map<String, List<String>> requires, java.util.Set<String> done, java.util.Set<String> visiting) {
        if (done.contains(s) || !byService.containsKey(s) || !visiting.add(s)) {
            return;
        }
        for (String r : requires.get(s)) {
            order(r, byService, requires, done, visiting);
        }
        done.add(s);
    }

    private static List<String> fromQuadlet(String text, String unitName, java.nio.file.Path dir) {
        List<String> opts = new ArrayList<>(List.of("run", "-d", "--rm"));
        String network = "none";
        String image = null;
        List<String> exec = List.of();
        for (String[] kv : containerKeys(text)) {
            String key = kv[0];
            String value = kv[1];
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
                    if (value.contains(".volume:")) {
                        int colon = value.indexOf(':');
                        value = quadletName(dir, value.substring(0, colon), "VolumeName", "systemd-")
                                + value.substring(colon);
                    }
                    opts.add(value);
                    break;
                case "Network":
                    network = value.endsWith(".network") ? quadletName(dir, value, "NetworkName", "systemd-") : value;
                    break;
                case "NetworkAlias":
                    opts.add("--network-alias");
                    opts.add(value);
                    break;
                case "Entrypoint":
                    opts.add("--entrypoint");
                    opts.add(splitSystemd(value).get(0));
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
        opts.add(3, "--network");
        opts.add(4, network);
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
        return org.vbake.bake.CommandWords.systemd(s);
    }
}
