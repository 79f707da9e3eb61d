package org.vbake.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.vbake.agent.Protocol;
import org.vbake.agent.Protocol.DaemonStatus;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;
import org.vbake.image.GuestImages;
import org.vbake.instance.StateDir;
import org.vbake.process.CommonsExecRunner;
import org.vbake.resident.DaemonRecord;
import org.vbake.resident.ResidentClient;
import org.vbake.session.GuestOptions;

/**
 * {@code vdkr vmemres start|stop|restart [--clean]|status|list}: the memory-resident guest of an
 * instance. While it runs, every vdkr/vpdmn command for that instance goes to it instead of
 * booting a guest of its own.
 */
final class VmemresCommand {

    private static final String USAGE = "usage: vmemres start [-p HOST:GUEST[/udp]]... | stop | restart [--clean] "
            + "[-p ...] | status | list";

    /** How {@code status} exits, for scripts that wait for a state. */
    static final String STATUS_CODES = "status exits 0 running, 1 stopped (never started, stopped, failed or died), "
            + "3 not answering, 4 starting, 5 stopping";

    private final ToolConfig config;
    private final GuestOptions options;
    private final Duration idleTimeout;
    private final PrintStream out;
    private final PrintStream err;
    private final EventPrinter events;

    VmemresCommand(ToolConfig config, GuestOptions options, Duration idleTimeout, OutputStream out, PrintStream err,
            EventPrinter events) {
        this.config = config;
        this.options = options;
        this.idleTimeout = idleTimeout;
        this.out = new PrintStream(out, true, StandardCharsets.UTF_8);
        this.err = err;
        this.events = events;
    }

    int run(List<String> args) throws VbakeException, InterruptedException {
        if (args.isEmpty()) {
            throw new BadInputException("vmemres: no action given", USAGE);
        }
        String action = args.get(0);
        List<String> rest = new ArrayList<>(args.subList(1, args.size()));
        // meta-virtualization's options: -p H:G[/proto] at start; --no-registry (nothing to do:
        // no registry is baked into vbake's guests); -f/--force at stop (every stop is bounded).
        List<String> publish = new ArrayList<>();
        for (int i = 0; i < rest.size(); i++) {
            String a = rest.get(i);
            if ((a.equals("-p") || a.equals("--publish")) && (action.equals("start") || action.equals("restart"))) {
                if (i + 1 >= rest.size()) {
                    throw new BadInputException("vmemres " + action + ": " + a + " needs HOST_PORT:GUEST_PORT", USAGE);
                }
                publish.add(rest.get(i + 1));
                rest.subList(i, i + 2).clear();
                i--;
            } else if (a.equals("--no-registry") || ((a.equals("-f") || a.equals("--force"))
                    && (action.equals("stop") || action.equals("restart")))) {
                events.on(new org.vbake.api.Event.Debug("vmemres " + action + " " + a + ": nothing to do here"));
                rest.remove(i--);
            }
        }
        boolean clean = rest.equals(List.of("--clean"));
        if (!rest.isEmpty() && !(action.equals("restart") && clean)) {
            throw new BadInputException("vmemres " + action + ": unexpected " + String.join(" ", rest), USAGE);
        }
        List<PublishedPorts.Port> ports = new ArrayList<>();
        for (String p : publish) {
            ports.addAll(PublishedPorts.parse(p));
        }
        StateDir state = state();
        return switch (action) {
            case "start" -> start(state, ports);
            case "stop" -> {
                out.println(label(state) + ": " + ResidentClient.stop(state));
                yield ExitCodes.OK;
            }
            case "restart" -> {
                out.println(label(state) + ": " + ResidentClient.stop(state));
                if (clean) {
                    removeStore(state);
                }
                yield start(state, ports);
            }
            case "status" -> status(state);
            case "list" -> list();
            default -> throw new BadInputException("vmemres: unknown action '" + action + "'", USAGE);
        };
    }

    private StateDir state() {
        return StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
    }

    private String label(StateDir state) {
        return config.toolName() + " " + options.arch().id() + " (" + state.dir() + ")";
    }

    private int start(StateDir state, List<PublishedPorts.Port> ports) throws VbakeException, InterruptedException {
        ResidentClient.Link already = ResidentClient.connect(state, options.bootTimeout());
        if (already != null) {
            try (already) {
                out.println(label(state) + ": already running (pid " + already.record().pid() + ")");
                forward(state, already, ports);
            }
            return ExitCodes.OK;
        }
        // Built (or checked) here, with progress on the terminal, rather than silently in the daemon.
        Path cache = options.cacheDir() != null ? options.cacheDir() : GuestImages.defaultCacheDir();
        new GuestImages(cache, new CommonsExecRunner(), events)
                .ensure(options.suite(), options.arch(), options.runtime(), false);
        long t0 = System.nanoTime();
        try (ResidentClient.Link link = ResidentClient.start(options, idleTimeout, events)) {
            out.printf("%s: running (pid %d, started in %.1f s%s)%n", label(state), link.record().pid(),
                    (System.nanoTime() - t0) / 1e9,
                    idleTimeout.isZero() ? "" : ", powers off after " + human(idleTimeout.toSeconds()) + " idle");
            forward(state, link, ports);
        }
        return ExitCodes.OK;
    }

    /** Static forwards for the guest's life: host port to a guest port, where a container listens. */
    private void forward(StateDir state, ResidentClient.Link link, List<PublishedPorts.Port> ports)
            throws VbakeException, InterruptedException {
        for (PublishedPorts.Port p : ports) {
            try {
                Protocol.Forward r = link.client().forward(new Protocol.Forward(p.protocol(), p.host(), p.guest(),
                        null, null), Duration.ofSeconds(30));
                if (!Boolean.TRUE.equals(r.ok())) {
                    throw new BadInputException("-p " + p.host() + ":" + p.guest() + ": " + r.message());
                }
                out.println(label(state) + ": forwarding 127.0.0.1:" + p.host() + " to guest port " + p.guest() + "/"
                        + p.protocol());
            } catch (IOException e) {
                throw new GuestException("lost the resident guest: " + e.getMessage(), state.daemonLog(), e);
            }
        }
    }

    /** {@code restart --clean}: the state disk and any saved guest go, so the next boot starts from an empty store. */
    private void removeStore(StateDir state) throws VbakeException {
        try {
            org.vbake.instance.Trees.deleteTree(state.snapshotDir());
            Files.deleteIfExists(state.stateDisk());
            out.println(label(state) + ": state disk removed");
        } catch (IOException e) {
            throw new BadInputException("cannot remove " + state.stateDisk() + ": " + e.getMessage());
        }
    }

    private int status(StateDir state) throws InterruptedException {
        ResidentClient.Status s = ResidentClient.status(state);
        print(s);
        return s.current().exitCode();
    }

    /** What {@code status} prints: the state on the first line ({@code LABEL: STATE}), details below. */
    private void print(ResidentClient.Status s) {
        String label = label(s.state());
        if (s.running()) {
            DaemonStatus d = s.live();
            long now = System.currentTimeMillis();
            out.println(label + ": running");
            out.println("  pid:      " + d.pid() + " (daemon), " + d.qemuPid() + " (qemu)");
            out.println("  arch:     " + d.arch() + ", " + d.runtime() + ", " + d.suite());
            out.println("  uptime:   " + human((now - d.startedMillis()) / 1000));
            out.println("  memory:   " + (d.memoryMb() > 0 ? d.memoryMb() + " MiB" : "default") + " guest"
                    + (d.qemuRssKb() != null ? ", QEMU resident " + d.qemuRssKb() / 1024 + " MiB" : ""));
            out.println("  idle:     " + (d.commands() > 0 ? "busy (" + d.commands() + " command"
                    + (d.commands() == 1 ? "" : "s") + ")" : human((now - d.lastActivityMillis()) / 1000))
                    + (d.idleTimeoutSeconds() != null && d.idleTimeoutSeconds() > 0
                            ? " (powers off after " + human(d.idleTimeoutSeconds()) + ")" : ""));
            out.println("  clients:  " + d.clients());
            return;
        }
        DaemonRecord r = s.record();
        if (s.current() != ResidentClient.State.STOPPED) {
            out.println(label + ": " + s.current().label() + (s.note() != null ? " (" + s.note() + ")" : ""));
            if (r != null) {
                out.println("  pid:      " + r.pid() + " (daemon)" + (r.qemuPid() != null ? ", " + r.qemuPid()
                        + " (qemu)" : ""));
                out.println("  see " + r.log());
            }
            return;
        }
        if (r == null) {
            out.println(label + ": stopped");
            return;
        }
        String when = r.endedMillis() != null ? " " + human((System.currentTimeMillis() - r.endedMillis()) / 1000)
                + " ago" : "";
        out.println(label + ": stopped" + (r.state().equals("died") ? " (the last resident guest died)"
                : r.state().equals("failed") ? " (the last resident guest failed to start)" : ""));
        if (r.state().equals("failed") || r.state().equals("died")) {
            out.println("  last run " + r.state() + when + ": " + r.message());
            out.println("  see " + r.log() + " and " + r.consoleLog());
        } else if (r.message() != null) {
            out.println("  last run ended" + when + ": " + r.message());
        }
    }

    /** Every instance of this tool with a state dir, and whether its resident guest runs. */
    private int list() throws InterruptedException {
        Path base = (options.stateRoot() != null ? options.stateRoot().toAbsolutePath().normalize()
                : StateDir.defaultRoot(config.runtime(), options.arch())).getParent();
        List<Path> roots = new ArrayList<>();
        if (Files.isDirectory(base)) {
            try (Stream<Path> s = Files.list(base)) {
                s.filter(Files::isDirectory).sorted().forEach(roots::add);
            } catch (IOException e) {
                err.println(config.prog() + ": cannot list " + base + ": " + e.getMessage());
            }
        }
        int shown = 0;
        for (Path root : roots) {
            String name = root.getFileName().toString();
            int dash = name.indexOf('-');
            Arch arch = Arch.parse(dash < 0 ? name : name.substring(0, dash)).orElse(null);
            if (arch == null) {
                continue;
            }
            List<Path> suites = new ArrayList<>();
            try (Stream<Path> s = Files.list(root)) {
                s.filter(Files::isDirectory).sorted().forEach(suites::add);
            } catch (IOException e) {
                continue;
            }
            for (Path suite : suites) {
                StateDir sd = StateDir.of(root, arch, config.runtime(), suite.getFileName().toString());
                ResidentClient.Status st = ResidentClient.status(sd);
                String instance = dash < 0 ? "default" : name.substring(dash + 1);
                out.printf("%-10s %-8s %-8s %-9s %s%n", instance, arch.id(), suite.getFileName(),
                        st.current().label(),
                        st.running() ? "pid " + st.live().pid() + ", up "
                                + human((System.currentTimeMillis() - st.live().startedMillis()) / 1000) : "");
                shown++;
            }
        }
        if (shown == 0) {
            out.println("no instances under " + base);
        }
        return ExitCodes.OK;
    }

    static String human(long seconds) {
        if (seconds < 60) {
            return seconds + " s";
        }
        if (seconds < 3600) {
            return seconds / 60 + " min " + seconds % 60 + " s";
        }
        return seconds / 3600 + " h " + seconds % 3600 / 60 + " min";
    }
}
