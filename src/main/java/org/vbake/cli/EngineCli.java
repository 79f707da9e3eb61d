package org.vbake.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import java.util.Set;
import org.vbake.image.GuestImages;
import org.vbake.instance.StateDir;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.session.PartitionExporter;
import org.vbake.session.StorageExporter;
import org.vbake.session.StorageTrees;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StorageFile;
import org.vbake.instance.Trees;
import org.vbake.process.CommonsExecRunner;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code vdkr} / {@code vpdmn}: the engine's own CLI, run inside a target-arch guest. Our options
 * come first; from the first word on, everything goes to docker/podman unchanged, and so does the
 * exit code.
 */
final class EngineCli {

    private final ToolConfig config;
    private final InputStream stdin;
    private final OutputStream out;
    private final PrintStream err;
    private final boolean handleSignals;

    EngineCli(ToolConfig config, InputStream stdin, OutputStream out, PrintStream err, boolean handleSignals) {
        this.config = config;
        this.stdin = stdin;
        this.out = out;
        this.err = err;
        this.handleSignals = handleSignals;
    }

    @Command(sortOptions = false, usageHelpAutoWidth = true)
    static final class Args {
        @Option(names = {"-a", "--arch"}, paramLabel = "ARCH",
                description = "Target architecture: aarch64 (arm64) or x86_64 (amd64). Default: from the program name "
                        + "(vdkr-aarch64), $VDKR_ARCH/$VPDMN_ARCH, arch= in ~/.config/vdkr/config (vpdmn), or the host.")
        String arch;

        @Option(names = "--suite", paramLabel = "SUITE",
                description = "Debian release the guest (and so the engine version) comes from: trixie (docker 26, "
                        + "podman 5; default) or bookworm (docker 20.10, podman 4.3).")
        String suite;

        @Option(names = "--state-dir", paramLabel = "DIR",
                description = "Where the persistent engine storage lives. Default: ~/.vdkr/<arch> or ~/.vpdmn/<arch>.")
        Path stateDir;

        @Option(names = "--memory", paramLabel = "MB", description = "Guest memory in MiB (default 2048).")
        int memoryMb;

        @Option(names = "--cpus", paramLabel = "N", description = "Guest CPUs (default 2).")
        int cpus;

        @Option(names = "--storage", paramLabel = "FILE",
                description = "After the command, write the engine's storage tree (/var/lib/docker or "
                        + "/var/lib/containers/storage) to FILE: .tar, .tar.gz or .tar.zst (unpack it into the rootfs "
                        + "with tar --xattrs --xattrs-include='*' --numeric-owner -p), or .ext4 for a partition image "
                        + "holding the tree at its root.")
        Path storage;

        @Option(names = "--storage-containers",
                description = "Keep containers in the --storage export (default: images and volumes only).")
        boolean storageContainers;

        @Option(names = "--storage-driver", paramLabel = "DRIVER",
                description = "overlay2 (docker default) or vfs; for podman overlay (default) or vfs. Use vfs when the "
                        + "target's storage directory itself sits on overlayfs.")
        String storageDriver;

        @Option(names = "--input-storage", paramLabel = "TAR",
                description = "Start from this storage tree (an earlier --storage export) instead of the state disk's "
                        + "content, which it replaces.")
        Path inputStorage;

        @Option(names = "--insecure-registry", paramLabel = "HOST[:PORT]",
                description = "Pull from this registry over plain http (repeatable). localhost and 127.0.0.0/8 always are.")
        List<String> insecureRegistries = new ArrayList<>();

        @Option(names = "--authfile", paramLabel = "FILE",
                description = "Registry credentials (docker config.json or containers auth.json). Default: "
                        + "$REGISTRY_AUTH_FILE, containers/auth.json, ~/.docker/config.json.")
        Path authFile;

        @Option(names = "--allow-arch-mismatch",
                description = "Import a single-arch image even when it is not for the target arch.")
        boolean allowArchMismatch;

        @Option(names = "--debug", description = "Show phase timings, the QEMU command line and log paths; stack traces on errors.")
        boolean debug;

        @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help.")
        boolean help;

        @Option(names = {"-V", "--version"}, versionHelp = true, description = "Show the version.")
        boolean version;

        @Parameters(paramLabel = "COMMAND", arity = "0..*",
                description = "A docker/podman command and its arguments, run in the guest; or 'clean'.")
        List<String> command = new ArrayList<>();
    }

    int run(String[] argv) {
        Args args = new Args();
        CommandLine cl = new CommandLine(args)
                .setCommandName(config.prog())
                .setStopAtPositional(true)
                .setUnmatchedOptionsArePositionalParams(false);
        cl.getCommandSpec().usageMessage()
                .description(description())
                .footerHeading("%nExamples:%n")
                .footer(examples());
        cl.getCommandSpec().version(config.toolName() + " (vbake 0.1.0)");
        try {
            cl.parseArgs(argv);
        } catch (CommandLine.ParameterException e) {
            err.println(config.prog() + ": " + e.getMessage());
            err.println("Try '" + config.prog() + " --help' for usage.");
            return ExitCodes.BAD_INPUT;
        }
        if (cl.isUsageHelpRequested()) {
            cl.usage(new PrintStream(out, true, StandardCharsets.UTF_8));
            return ExitCodes.OK;
        }
        if (cl.isVersionHelpRequested()) {
            cl.printVersionHelp(new PrintStream(out, true));
            return ExitCodes.OK;
        }
        EventPrinter events = new EventPrinter(config.prog(), err, args.debug);
        try {
            if (args.command.isEmpty()) {
                throw new BadInputException("no command given", "try '" + config.prog() + " images' or '"
                        + config.prog() + " --help'");
            }
            GuestOptions options = options(args);
            if (args.command.get(0).equals("clean")) {
                return clean(options, args.command.subList(1, args.command.size()));
            }
            return runInGuest(options, args, events);
        } catch (VbakeException e) {
            err.println(config.prog() + ": " + e.getMessage());
            if (e.hint() != null) {
                err.println(config.prog() + ": " + e.hint());
            }
            if (args.debug && e.getCause() != null) {
                e.printStackTrace(err);
            }
            return e.exitCode();
        } catch (InterruptedException e) {
            err.println(config.prog() + ": interrupted");
            return ExitCodes.INTERRUPTED;
        } catch (RuntimeException e) {
            err.println(config.prog() + ": internal error: " + e);
            if (args.debug) {
                e.printStackTrace(err);
            } else {
                err.println(config.prog() + ": run again with --debug for details");
            }
            return ExitCodes.FAILURE;
        }
    }

    private GuestOptions options(Args args) throws BadInputException {
        Arch arch = config.resolveArch(args.arch);
        String suite = args.suite != null ? args.suite : config.configValue("suite");
        if (suite == null) {
            suite = GuestOptions.DEFAULT_SUITE;
        }
        if (!GuestSession.SUITES.contains(suite)) {
            throw new BadInputException("unknown suite '" + suite + "'", "choose one of: trixie, bookworm");
        }
        if (args.memoryMb < 0 || (args.memoryMb > 0 && args.memoryMb < 512)) {
            throw new BadInputException("--memory must be at least 512 (MiB), got " + args.memoryMb);
        }
        if (args.cpus < 0 || args.cpus > 16) {
            throw new BadInputException("--cpus must be between 1 and 16, got " + args.cpus);
        }
        Path stateDir = args.stateDir;
        if (stateDir == null && config.configValue("state-dir") != null) {
            stateDir = Path.of(config.configValue("state-dir"));
        }
        String cache = config.env().get("VBAKE_CACHE_DIR");
        return GuestOptions.defaults(arch, config.runtime())
                .withSuite(suite)
                .withStateRoot(stateDir)
                .withCacheDir(cache != null && !cache.isBlank() ? Path.of(cache) : null)
                .withResources(args.memoryMb, args.cpus)
                .withStorageDriver(args.storageDriver);
    }

    private int runInGuest(GuestOptions options, Args args, EventPrinter events)
            throws VbakeException, InterruptedException {
        ContainerRuntime runtime = ContainerRuntime.of(options.runtime(), options.storageDriver());
        boolean partition = args.storage != null && PartitionExporter.wanted(args.storage);
        if (args.storage != null && !partition) {
            StorageFile.check(args.storage, "--storage");
        }
        if (args.inputStorage != null && !Files.isRegularFile(args.inputStorage)) {
            throw new BadInputException("--input-storage " + args.inputStorage + ": no such file");
        }
        Path cacheRoot = options.cacheDir() != null ? options.cacheDir() : GuestImages.defaultCacheDir();
        HostCommands.Settings settings = new HostCommands.Settings(Set.copyOf(args.insecureRegistries), args.authFile,
                args.allowArchMismatch, config.env(), cacheRoot);
        HostCommands host = new HostCommands(options, runtime, settings, events, stdin, out, err);
        CommonsExecRunner runner = new CommonsExecRunner();
        AtomicInteger interrupts = new AtomicInteger();
        Path outputDisk = null;
        try (InputDisk disk = InputDisk.create(cacheRoot.resolve("tmp"))) {
            HostCommands.Plan plan = host.plan(args.command, disk);
            if (partition) {
                StateDir sd = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
                outputDisk = PartitionExporter.prepare(args.storage, sd.stateDisk(), runner);
                options = options.withOutputDisk(outputDisk);
            }
            if (args.inputStorage != null) {
                StorageTrees.stage(args.inputStorage, disk);
            }
            if (disk.hasFiles()) {
                options = options.withInputDisk(disk.build(runner));
            }
            GuestSession.BeforeEngine before = session -> {
                if (args.inputStorage != null) {
                    StorageTrees.unpack(session, disk, events);
                }
                plan.beforeEngine(session);
            };
            try (GuestSession session = GuestSession.boot(options, runner, events, before)) {
                if (handleSignals) {
                    SignalForwarding.install(() -> {
                        int n = interrupts.incrementAndGet();
                        if (n == 1) {
                            session.signalRunning(2);
                        } else if (n == 2) {
                            err.println(config.prog() + ": interrupted again: killing the guest command");
                            session.signalRunning(9);
                        } else {
                            err.println(config.prog() + ": stopping the guest now");
                            System.exit(ExitCodes.INTERRUPTED);
                        }
                    });
                }
                int code = plan.run(session);
                out.flush();
                if (args.storage != null) {
                    if (code != 0) {
                        err.println(config.prog() + ": not writing " + args.storage + ": the command failed");
                    } else if (partition) {
                        new StorageExporter(events).exportPartition(session, outputDisk, args.storage,
                                args.storageContainers, sourceDateEpoch());
                    } else {
                        new StorageExporter(events).export(session, args.storage, args.storageContainers,
                                sourceDateEpoch());
                    }
                }
                return code;
            }
        } catch (IOException e) {
            throw new VbakeException(ExitCodes.FAILURE, "I/O error: " + e.getMessage(), null, e);
        } finally {
            if (handleSignals) {
                SignalForwarding.reset();
            }
            if (outputDisk != null) {
                try {
                    Files.deleteIfExists(outputDisk);   // left only when something failed
                } catch (IOException ignored) {
                    // a hidden .partial file is all that can remain
                }
            }
        }
    }

    private Long sourceDateEpoch() throws BadInputException {
        return ToolConfig.sourceDateEpoch(config.env());
    }

    /** {@code clean}: removes this arch's state (all suites), after taking each instance lock. */
    private int clean(GuestOptions options, List<String> rest) throws VbakeException, InterruptedException {
        if (!rest.isEmpty()) {
            throw new BadInputException("'clean' takes no arguments, got: " + String.join(" ", rest));
        }
        StateDir any = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        Path root = any.root();
        if (!Files.isDirectory(root)) {
            err.println(config.prog() + ": nothing to clean for " + options.arch() + " (" + root + " does not exist)");
            return ExitCodes.OK;
        }
        try {
            List<Path> suites;
            try (Stream<Path> list = Files.list(root)) {
                suites = list.filter(Files::isDirectory).toList();
            }
            for (Path suiteDir : suites) {
                StateDir s = StateDir.of(root, options.arch(), options.runtime(), suiteDir.getFileName().toString());
                if (Files.exists(s.lockFile())) {
                    try (StateDir.Lock lock = s.lock(Duration.ZERO, () -> { })) {
                        Trees.deleteTree(s.runDir());
                        Trees.deleteTree(suiteDir);
                    }
                } else {
                    Trees.deleteTree(suiteDir);
                }
            }
            Trees.deleteTree(root);
        } catch (IOException e) {
            throw new BadInputException("cannot clean " + root + ": " + e.getMessage(),
                    "is a command still running on it?");
        }
        err.println(config.prog() + ": removed " + root);
        return ExitCodes.OK;
    }

    private String description() {
        String engine = config.runtime() == RuntimeKind.DOCKER ? "docker" : "podman";
        return "Runs " + engine + " commands in a target-architecture QEMU guest whose engine storage persists "
                + "between commands (the state disk under --state-dir). Output and exit code are the engine's own.%n"
                + "Each command boots the guest, runs, and powers it off; nothing stays running.";
    }

    private String examples() {
        String p = config.prog();
        return "  " + p + " -a aarch64 info            engine info from an arm64 guest%n"
                + "  " + p + " -a aarch64 images          images in the arm64 store%n"
                + "  " + p + " -a x86_64 volume create v  state persists for the next command%n"
                + "  " + p + " -a aarch64 clean           remove the arm64 store%n"
                + "  " + p + " --debug -a aarch64 info    with phase timings and log paths%n";
    }
}
