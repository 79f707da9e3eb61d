package org.vbake.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * What vbake needs to know about a {@code run}/{@code exec}/{@code create} command line before it
 * goes to the engine: whether it asks for a tty, whether it detaches, and which {@code -v} options
 * name host directories (those are copied into the guest and the option rewritten). Only the
 * options before the image (or container) are looked at, as the engine itself does.
 */
record RunArgs(boolean tty, boolean interactive, boolean detach, List<HostVolume> volumes, List<Publish> publishes,
        String network) {

    /** Whether {@code --network}/{@code --net} was given. */
    boolean networkGiven() {
        return network != null;
    }

    /**
     * A {@code -p/--publish} option: its first word's position, how many words it has (1 or 2)
     * and its value ({@code [IP:]HOST:CTR[/PROTO]}).
     */
    record Publish(int index, int words, String value) {
    }

    /** A {@code -v HOST:CTR[:OPTS]} whose HOST is a host path; {@code index} is its value's position. */
    record HostVolume(int index, String prefix, Path host, String container, String opts) {
        boolean readOnly() {
            return opts != null && List.of(opts.split(",")).contains("ro");
        }

        /** The option value with the host path replaced by {@code guestPath}. */
        String rewritten(String guestPath) {
            return prefix + guestPath + ":" + container + (opts != null ? ":" + opts : "");
        }
    }

    // Short options of run/exec/create that take a value (docker and podman agree on these).
    private static final Set<Character> SHORT_WITH_VALUE = Set.of('a', 'c', 'e', 'h', 'l', 'm', 'p', 'u', 'v', 'w');
    private static final Set<String> LONG_WITH_VALUE = Set.of("--add-host", "--annotation", "--attach", "--blkio-weight",
            "--cap-add", "--cap-drop", "--cgroup-parent", "--cgroupns", "--cidfile", "--cpu-period", "--cpu-quota",
            "--cpu-shares", "--cpus", "--cpuset-cpus", "--cpuset-mems", "--detach-keys", "--device", "--dns",
            "--dns-option", "--dns-search", "--entrypoint", "--env", "--env-file", "--expose", "--gpus", "--group-add",
            "--health-cmd", "--health-interval", "--health-retries", "--health-timeout", "--hostname", "--ip",
            "--ip6", "--ipc", "--label", "--label-file", "--link", "--log-driver", "--log-opt", "--mac-address",
            "--memory", "--memory-reservation", "--memory-swap", "--mount", "--name", "--network", "--network-alias",
            "--pid", "--pids-limit", "--platform", "--publish", "--net", "--pull", "--restart", "--runtime", "--security-opt",
            "--shm-size", "--stop-signal", "--stop-timeout", "--storage-opt", "--sysctl", "--tmpfs", "--ulimit",
            "--user", "--userns", "--uts", "--volume", "--volumes-from", "--workdir", "--arch", "--os", "--variant",
            "--secret", "--pod", "--replace", "--requires", "--systemd", "--umask", "--timeout");

    /** Parses the arguments after the verb ({@code run}, {@code exec}, ...). */
    static RunArgs parse(List<String> args) {
        boolean tty = false;
        boolean interactive = false;
        boolean detach = false;
        List<HostVolume> volumes = new ArrayList<>();
        List<Publish> publishes = new ArrayList<>();
        String network = null;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--")) {
                break;
            }
            if (!a.startsWith("-") || a.equals("-")) {
                break;   // the image or container: what follows is its command
            }
            if (a.startsWith("--")) {
                int eq = a.indexOf('=');
                String name = eq < 0 ? a : a.substring(0, eq);
                String value = eq < 0 ? null : a.substring(eq + 1);
                switch (name) {
                    case "--tty" -> tty = value == null || value.equals("true");
                    case "--interactive" -> interactive = value == null || value.equals("true");
                    case "--detach" -> detach = value == null || value.equals("true");
                    default -> {
                    }
                }
                if (name.equals("--network") || name.equals("--net")) {
                    network = value != null ? value : (i + 1 < args.size() ? args.get(i + 1) : "");
                }
                if (name.equals("--publish")) {
                    publishes.add(new Publish(i, value != null ? 1 : 2,
                            value != null ? value : (i + 1 < args.size() ? args.get(i + 1) : "")));
                }
                if (name.equals("--volume")) {
                    int at = value != null ? i : i + 1;
                    String v = value != null ? value : (i + 1 < args.size() ? args.get(i + 1) : null);
                    hostVolume(at, value != null ? "--volume=" : "", v).ifPresent(volumes::add);
                }
                if (value == null && LONG_WITH_VALUE.contains(name) && !name.equals("--tty")) {
                    i++;
                }
                continue;
            }
            // A cluster of short options: -it, -dit, -e X, -eX, -v/a:/b
            for (int k = 1; k < a.length(); k++) {
                char c = a.charAt(k);
                if (c == 't') {
                    tty = true;
                } else if (c == 'i') {
                    interactive = true;
                } else if (c == 'd') {
                    detach = true;
                } else if (SHORT_WITH_VALUE.contains(c)) {
                    boolean inline = k + 1 < a.length();
                    if (c == 'p' && k == 1) {
                        publishes.add(new Publish(i, inline ? 1 : 2,
                                inline ? a.substring(2) : (i + 1 < args.size() ? args.get(i + 1) : "")));
                    }
                    if (c == 'v') {
                        String v = inline ? a.substring(k + 1) : (i + 1 < args.size() ? args.get(i + 1) : null);
                        hostVolume(inline ? i : i + 1, inline ? a.substring(0, k + 1) : "", v).ifPresent(volumes::add);
                    }
                    if (!inline) {
                        i++;
                    }
                    break;
                }
            }
        }
        return new RunArgs(tty, interactive, detach, List.copyOf(volumes), List.copyOf(publishes), network);
    }

    private static java.util.Optional<HostVolume> hostVolume(int index, String prefix, String value) {
        if (value == null) {
            return java.util.Optional.empty();
        }
        String[] f = value.split(":", 3);
        // A named volume has no slash; only paths are the host's.
        if (f.length < 2 || !(f[0].startsWith("/") || f[0].startsWith("./") || f[0].startsWith("../")
                || f[0].equals(".") || f[0].startsWith("~/"))) {
            return java.util.Optional.empty();
        }
        String host = f[0].startsWith("~/") ? System.getProperty("user.home") + f[0].substring(1) : f[0];
        return java.util.Optional.of(new HostVolume(index, prefix, Path.of(host).toAbsolutePath().normalize(), f[1],
                f.length > 2 ? f[2] : null));
    }
}
