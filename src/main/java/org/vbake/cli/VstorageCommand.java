package org.vbake.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import org.vbake.instance.StateDir;
import org.vbake.instance.Trees;
import org.vbake.process.CommonsExecRunner;
import org.vbake.process.ProcessRunner;
import org.vbake.resident.ResidentClient;

/**
 * {@code vdkr vstorage list|path [ARCH]|df|clean [ARCH|--all]}: the host-side view of every
 * state dir of this tool (per arch, instance and suite): where it is, what it takes on disk, and
 * whether a resident guest uses it. Never goes to a guest. {@code clean} refuses a store a
 * resident guest uses.
 */
final class VstorageCommand {

    private static final String USAGE = "usage: vstorage [list | path [ARCH] | df | clean [ARCH | --all]]";

    private final ToolConfig config;
    private final Path root;
    private final Arch arch;
    private final PrintStream out;
    private final ProcessRunner runner = new CommonsExecRunner();

    /**
     * @param root the current instance's state root ({@code ~/.vdkr/aarch64}, or --state-dir)
     */
    VstorageCommand(ToolConfig config, Path root, Arch arch, PrintStream out) {
        this.config = config;
        this.root = root.toAbsolutePath().normalize();
        this.arch = arch;
        this.out = out;
    }

    /** One state dir: an instance ({@code aarch64}, {@code aarch64-ci}) of one suite. */
    record Store(Path root, Arch arch, String instance, String suite, StateDir state) {
    }

    /** Every store under {@code base} (a tool's ~/.vdkr), sorted. */
    static List<Store> stores(Path base, RuntimeKind runtime) {
        List<Store> all = new ArrayList<>();
        if (!Files.isDirectory(base)) {
            return all;
        }
        try (Stream<Path> roots = Files.list(base)) {
            for (Path r : roots.filter(Files::isDirectory).sorted().toList()) {
                String name = r.getFileName().toString();
                int dash = name.indexOf('-');
                Arch a = Arch.parse(dash < 0 ? name : name.substring(0, dash)).orElse(null);
                if (a == null) {
                    continue;
                }
                try (Stream<Path> suites = Files.list(r)) {
                    for (Path s : suites.filter(Files::isDirectory).sorted().toList()) {
                        all.add(new Store(r, a, dash < 0 ? "default" : name.substring(dash + 1),
                                s.getFileName().toString(), StateDir.of(r, a, runtime, s.getFileName().toString())));
                    }
                }
            }
        } catch (IOException e) {
            // an unreadable directory lists as nothing
        }
        return all;
    }

    int run(List<String> args) throws VbakeException, InterruptedException {
        String action = args.isEmpty() ? "list" : args.get(0);
        List<String> rest = args.isEmpty() ? List.of() : args.subList(1, args.size());
        return switch (action) {
            case "list" -> {
                noArgs(action, rest);
                yield list();
            }
            case "path" -> path(rest);
            case "df" -> {
                noArgs(action, rest);
                yield df();
            }
            case "clean" -> clean(rest);
            default -> throw new BadInputException("vstorage: unknown subcommand '" + action + "'", USAGE);
        };
    }

    private static void noArgs(String action, List<String> rest) throws BadInputException {
        if (!rest.isEmpty()) {
            throw new BadInputException("vstorage " + action + ": unexpected " + String.join(" ", rest), USAGE);
        }
    }

    private Path base() {
        return root.getParent();
    }

    /** Every store beside this one, and this one's own whatever its name (--state-dir names it freely). */
    private List<Store> allStores() {
        List<Store> all = stores(base(), config.runtime());
        if (all.stream().noneMatch(s -> s.root().equals(root)) && Files.isDirectory(root)) {
            try (Stream<Path> suites = Files.list(root)) {
                for (Path s : suites.filter(Files::isDirectory).sorted().toList()) {
                    String suite = s.getFileName().toString();
                    if (List.of("trixie", "bookworm").contains(suite)) {
                        all.add(new Store(root, arch, root.getFileName().toString(), suite,
                                StateDir.of(root, arch, config.runtime(), suite)));
                    }
                }
            } catch (IOException e) {
                // listed as nothing
            }
        }
        return all;
    }

    private int list() throws InterruptedException {
        out.println(config.toolName() + " storage directories (" + base() + "):");
        out.println();
        List<Store> stores = allStores();
        long total = 0;
        for (Store s : stores) {
            long bytes = du(s.state().dir());
            total += bytes;
            ResidentClient.Status st = ResidentClient.status(s.state());
            out.println("  " + s.arch().id() + (s.instance().equals("default") ? "" : " (instance " + s.instance() + ")")
                    + ", " + s.suite());
            out.println("    Path:   " + s.state().dir());
            out.println("    Size:   " + human(bytes));
            out.println("    Status: " + (st.running() ? "memres running (pid " + st.live().pid() + ")"
                    : st.current().daemonAlive() ? "memres " + st.current().label() : "no memres"));
            out.println();
        }
        if (stores.isEmpty()) {
            out.println("  (no storage directories found)");
            out.println();
        } else {
            out.println("Total: " + human(total));
        }
        return ExitCodes.OK;
    }

    /** The state root of the current instance, or of ARCH's default one; only when it exists. */
    private int path(List<String> rest) throws BadInputException {
        if (rest.size() > 1) {
            throw new BadInputException("vstorage path: unexpected " + String.join(" ", rest.subList(1, rest.size())),
                    USAGE);
        }
        Path p = root;
        if (!rest.isEmpty()) {
            Arch a = Arch.parse(rest.get(0)).orElseThrow(() -> new BadInputException("vstorage path: unknown arch '"
                    + rest.get(0) + "'", "choose one of: " + Arch.choices()));
            p = a == arch ? root : base().resolve(a.id());
        }
        if (!Files.isDirectory(p)) {
            throw new BadInputException("vstorage path: " + p + " does not exist (nothing stored for "
                    + (rest.isEmpty() ? arch.id() : rest.get(0)) + " yet)");
        }
        out.println(p);
        return ExitCodes.OK;
    }

    /** Space used on disk (du), per store: the state disk, the saved guest, and all. */
    private int df() throws InterruptedException {
        List<Store> stores = allStores();
        out.printf("%-40s %10s %10s %10s%n", "STORE", "STATE DISK", "SAVED VM", "TOTAL");
        for (Store s : stores) {
            out.printf("%-40s %10s %10s %10s%n", s.state().dir(), human(du(s.state().stateDisk())),
                    human(du(s.state().snapshotDir())), human(du(s.state().dir())));
        }
        if (stores.isEmpty()) {
            out.println("(no storage directories under " + base() + ")");
        }
        return ExitCodes.OK;
    }

    private int clean(List<String> rest) throws VbakeException, InterruptedException {
        List<Path> roots = new ArrayList<>();
        if (rest.equals(List.of("--all"))) {
            stores(base(), config.runtime()).stream().map(Store::root).distinct().forEach(roots::add);
        } else if (rest.isEmpty()) {
            roots.add(root);
        } else if (rest.size() == 1 && Arch.parse(rest.get(0)).isPresent()) {
            Arch a = Arch.parse(rest.get(0)).get();
            roots.add(a == arch ? root : base().resolve(a.id()));
        } else {
            throw new BadInputException("vstorage clean: unexpected " + String.join(" ", rest), USAGE);
        }
        for (Path r : roots) {
            for (Store s : allStores()) {
                if (s.root().equals(r) && ResidentClient.status(s.state()).current().daemonAlive()) {
                    throw new BadInputException("vstorage clean: a resident guest uses " + s.state().dir(),
                            "stop it first: " + config.prog() + " -a " + s.arch().id()
                                    + (s.instance().equals("default") ? "" : " -I " + s.instance()) + " vmemres stop");
                }
            }
        }
        for (Path r : roots) {
            if (!Files.isDirectory(r)) {
                out.println(config.toolName() + ": nothing to clean: " + r + " does not exist");
                continue;
            }
            try {
                Trees.deleteTree(r);
            } catch (IOException e) {
                throw new BadInputException("cannot clean " + r + ": " + e.getMessage(), "is a command still running on it?");
            }
            out.println(config.toolName() + ": cleaned " + r);
        }
        return ExitCodes.OK;
    }

    /** Bytes allocated on disk (du -sk), 0 when missing. */
    private long du(Path p) throws InterruptedException {
        if (!Files.exists(p)) {
            return 0;
        }
        List<String> lines = new ArrayList<>();
        try {
            ProcessRunner.Result r = runner.run(List.of("du", "-sk", "--", p.toString()), Map.of(),
                    Duration.ofMinutes(2), lines::add);
            if (r.ok() && !lines.isEmpty()) {
                return Long.parseLong(lines.get(0).split("\\s+")[0]) * 1024;
            }
        } catch (IOException | NumberFormatException e) {
            // shown as 0
        }
        return 0;
    }

    static String human(long bytes) {
        if (bytes < 1024) {
            return bytes + "B";
        }
        String[] units = {"K", "M", "G", "T"};
        double v = bytes;
        int i = -1;
        while (v >= 1024 && i < units.length - 1) {
            v /= 1024;
            i++;
        }
        return String.format(Locale.ROOT, v < 10 ? "%.1f%s" : "%.0f%s", v, units[i]);
    }
}
