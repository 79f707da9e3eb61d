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
import org.vbake.image.HostAgent;
import org.vbake.instance.StateDir;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.session.PartitionExporter;
import org.vbake.session.StorageTrees;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StorageFile;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;
import org.vbake.process.CommonsExecRunner;
import org.vbake.session.CommandRunner;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;
import org.vbake.agent.Protocol;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.api.Event;
import org.vbake.resident.ResidentClient;
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

    private ToolConfig config;
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

        @Option(names = {"-I", "--instance"}, paramLabel = "NAME",
                description = "A separate instance (its own state and resident guest) beside the default one: "
                        + "~/.vdkr/<arch>-NAME.")
        String instance;

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

        @Option(names = "--config", paramLabel = "FILE",
                description = "Registry credentials file, as --authfile (meta-virtualization's name for it).")
        Path registryConfig;

        @Option(names = "--config-dir", paramLabel = "DIR",
                description = "Read and write the config (vconfig) in DIR/config instead of ~/.config/vdkr (vpdmn).")
        Path configDir;

        @Option(names = "--registry", paramLabel = "HOST[:PORT]",
                description = "Registry for image names that name none (pull alpine:3.20 from HOST). Config: registry=.")
        String registry;

        @Option(names = "--no-registry", description = "No default registry, whatever the config says.")
        boolean noRegistry;

        @Option(names = "--secure-registry",
                description = "Use TLS for the default registry even when it is on a loopback address.")
        boolean secureRegistry;

        @Option(names = "--ca-cert", paramLabel = "FILE",
                description = "Trust this CA certificate (PEM) for registries with a certificate of their own.")
        Path caCert;

        @Option(names = "--no-daemon",
                description = "Do not use or start a resident guest for this command (refused while one uses the store).")
        boolean noDaemon;

        @Option(names = "--stateless",
                description = "Use a throw-away store: nothing is kept after the command (export it with --storage).")
        boolean stateless;

        @Option(names = "--no-kvm", description = "Never use KVM, even for a guest of the host's arch.")
        boolean noKvm;

        @Option(names = {"--no-network", "--network"}, hidden = true,
                description = "Accepted for meta-virtualization's scripts: cold guests have no network device, "
                        + "resident ones forward published ports.")
        boolean networkOption;

        @Option(names = {"--verbose"}, description = "As --debug.")
        boolean verbose;

        @Option(names = {"--registry-user", "--registry-password", "--registry-pass", "--blob-dir"}, hidden = true,
                paramLabel = "VALUE")
        String refused;

        @Option(names = "--allow-arch-mismatch",
                description = "Import a single-arch image even when it is not for the target arch.")
        boolean allowArchMismatch;

        @Option(names = "--no-resume",
                description = "Boot the guest, and power it off at the end, instead of resuming the guest the last "
                        + "command on this store saved (about a second instead of a boot) and saving this one. "
                        + "Config: resume=false.")
        boolean noResume;

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
        for (String a : argv) {
            if (!a.startsWith("-")) {
                break;   // the engine's words from here on
            }
            String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            if (List.of("--registry-user", "--registry-password", "--registry-pass").contains(name)) {
                err.println(config.prog() + ": " + name + ": registry credentials are not taken on the command line "
                        + "(they would show in ps and in logs)");
                err.println(config.prog() + ": store them with '" + config.prog() + " login --username USER "
                        + "--password-stdin HOST', or pass --authfile FILE");
                return ExitCodes.BAD_INPUT;
            }
            if (name.equals("--blob-dir")) {
                err.println(config.prog() + ": --blob-dir: vbake builds its guest images from Debian packages into "
                        + "its cache; there are no prebuilt blobs to point at");
                err.println(config.prog() + ": set VBAKE_CACHE_DIR to keep the cache elsewhere");
                return ExitCodes.BAD_INPUT;
            }
        }
        Args args = new Args();
        if (!FastOptionParser.parse(args, argv)) {
            args = new Args();
            Integer done = parseWithPicocli(args, argv);
            if (done != null) {
                return done;
            }
        }
        return execute(args);
    }

    /** Full picocli parsing: help, version and error messages. Null when there is a command to run. */
    private Integer parseWithPicocli(Args args, String[] argv) {
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
        return null;
    }

    private int execute(Args args) {
        if (args.configDir != null) {
            config = new ToolConfig(config.prog(), config.runtime(), config.env(), args.configDir.resolve("config"));
        }
        EventPrinter events = new EventPrinter(config.prog(), err, args.debug || args.verbose);
        if (args.networkOption) {
            events.on(new Event.Debug("--network/--no-network: nothing to do: cold guests have no network device, "
                    + "resident ones forward published ports"));
        }
        try {
            if (args.command.isEmpty()) {
                throw new BadInputException("no command given", "try '" + config.prog() + " images' or '"
                        + config.prog() + " --help'");
            }
            GuestOptions options = options(args);
            String verb = args.command.get(0);
            List<String> rest = args.command.subList(1, args.command.size());
            if (verb.equals("clean")) {
                return clean(options, rest);
            }
            if (verb.equals("vmemres") || verb.equals("memres")) {
                return new VmemresCommand(config, options, idleTimeout(), out, err, events).run(rest);
            }
            PrintStream printOut = new PrintStream(out, true, StandardCharsets.UTF_8);
            if (verb.equals("vstorage")) {
                Path root = options.stateRoot() != null ? options.stateRoot()
                        : StateDir.defaultRoot(config.runtime(), options.arch());
                return new VstorageCommand(config, root, options.arch(), printOut).run(rest);
            }
            if (verb.equals("vconfig")) {
                return new VconfigCommand(config, printOut).run(rest);
            }
            if (verb.equals("login") || verb.equals("logout")) {
                LoginCommand login = new LoginCommand(config, stdin, printOut, events);
                Path authFile = args.authFile != null ? args.authFile : args.registryConfig;
                return verb.equals("login")
                        ? login.login(rest, authFile, Set.copyOf(args.insecureRegistries), args.caCert)
                        : login.logout(rest, authFile);
            }
            String missing = SUBCOMMANDS.get(verb);
            if (missing != null && rest.stream().allMatch(a -> a.startsWith("-"))
                    && !rest.contains("--help") && !rest.contains("-h")) {
                // As the engine's own CLI does with nothing after it, but as a failure.
                err.println(config.prog() + ": " + verb + " requires a subcommand: " + missing);
                err.println("Run '" + config.prog() + " " + verb + " --help' for usage");
                return ExitCodes.FAILURE;
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
        if (args.instance != null) {
            if (!args.instance.matches("[A-Za-z0-9][A-Za-z0-9_.]{0,31}")) {
                throw new BadInputException("bad instance name '" + args.instance + "'",
                        "use up to 32 letters, digits, '_' and '.'");
            }
            Path base = stateDir != null ? stateDir.toAbsolutePath().normalize()
                    : StateDir.defaultRoot(config.runtime(), arch);
            stateDir = base.resolveSibling(base.getFileName() + "-" + args.instance);
        }
        String cache = config.env().get("VBAKE_CACHE_DIR");
        String resume = config.env().get("VBAKE_RESUME");
        String where = "VBAKE_RESUME";
        if (resume == null || resume.isBlank()) {
            resume = config.configValue("resume");
            where = config.configFile().toString();
        }
        if (resume != null && !List.of("true", "false", "yes", "no", "1", "0").contains(resume.strip())) {
            throw new BadInputException("resume '" + resume + "' in " + where + " is not true or false");
        }
        boolean resumeOn = !args.noResume && (resume == null || List.of("true", "yes", "1").contains(resume.strip()));
        return GuestOptions.defaults(arch, config.runtime())
                .withResume(resumeOn)
                .withKvm(!args.noKvm)
                .withSuite(suite)
                .withStateRoot(stateDir)
                .withCacheDir(cache != null && !cache.isBlank() ? Path.of(cache) : null)
                .withResources(args.memoryMb, args.cpus)
                .withStorageDriver(args.storageDriver);
    }

    private int runInGuest(GuestOptions options, Args args, EventPrinter events)
            throws VbakeException, InterruptedException {
        if (args.stateless) {
            return stateless(options, args, events);
        }
        StateDir sd = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
        if (args.noDaemon) {
            ResidentClient.State st = ResidentClient.status(sd).current();
            if (st.daemonAlive()) {
                throw new BadInputException("--no-daemon: a resident guest is " + st.label() + " on " + sd.dir()
                        + ", and one store takes one guest", "stop it first ('" + config.prog()
                        + " vmemres stop'), or use another instance (-I NAME) or --stateless");
            }
            return runCommand(options, args, events, null);
        }
        ResidentClient.Link link = ResidentClient.connect(sd, options.bootTimeout());
        if (link == null && autoDaemon()) {
            new GuestImages(cacheRoot(options), new CommonsExecRunner(), events)
                    .ensure(options.suite(), options.arch(), options.runtime(), false);
            link = ResidentClient.start(options, idleTimeout(), events);
        }
        if (link != null) {
            String driver = link.record().driver();
            if (args.storageDriver != null && !args.storageDriver.equals(driver)) {
                link.close();
                throw new BadInputException("the resident guest uses the " + driver + " storage driver, not "
                        + args.storageDriver, "drop --storage-driver, or '" + config.prog()
                        + " vmemres stop' first");
            }
            options = options.withStorageDriver(driver);
            events.on(new Event.Debug("using the resident guest (daemon pid " + link.record().pid() + ")"));
        }
        try {
            return runCommand(options, args, events, link);
        } finally {
            if (link != null) {
                link.close();
            }
        }
    }

    /** {@code --stateless}: a store of its own for this one command, gone afterwards. */
    private int stateless(GuestOptions options, Args args, EventPrinter events)
            throws VbakeException, InterruptedException {
        Path tmp = cacheRoot(options).resolve("tmp");
        Scratch.sweep(tmp, "stateless-", "");
        Path root;
        try {
            root = Scratch.newPrivateDirectory(tmp, "stateless-");
        } catch (IOException e) {
            throw new BadInputException("--stateless: cannot make a store in " + tmp + ": " + e.getMessage());
        }
        try {
            return runCommand(options.withStateRoot(root).withResume(false), args, events, null);
        } finally {
            try {
                Trees.deleteTree(root);
            } catch (IOException e) {
                events.on(new Event.Debug("--stateless: left " + root + ": " + e.getMessage()));
            }
        }
    }

    private Path cacheRoot(GuestOptions options) {
        return options.cacheDir() != null ? options.cacheDir() : GuestImages.defaultCacheDir();
    }

    private boolean autoDaemon() throws BadInputException {
        String v = config.configValue("auto-daemon");
        return v != null && (v.equals("true") || v.equals("yes") || v.equals("1"));
    }

    /** {@code idle-timeout} from the config: seconds, or with s/m/h; 0 = never. Default 30 min. */
    private Duration idleTimeout() throws BadInputException {
        String v = config.configValue("idle-timeout");
        if (v == null || v.isBlank()) {
            return Duration.ofMinutes(30);
        }
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+)\\s*([smh]?)").matcher(v.strip());
        if (!m.matches()) {
            throw new BadInputException("idle-timeout '" + v + "' in " + config.configFile() + " is not a duration",
                    "e.g. idle-timeout=30m, 900 (seconds), 2h, or 0 for never");
        }
        long n = Long.parseLong(m.group(1));
        return switch (m.group(2)) {
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofSeconds(n);
        };
    }

    /** The command's words after vbake's own rewrites: {@code vrun} and {@code vshell}. */
    private List<String> engineCommand(List<String> command) {
        if (command.get(0).equals("vrun")) {
            List<String> run = new ArrayList<>(List.of("run", "--entrypoint="));
            run.addAll(command.subList(1, command.size()));
            return run;
        }
        return command;
    }

    private int runCommand(GuestOptions options, Args args, EventPrinter events, ResidentClient.Link link)
            throws VbakeException, InterruptedException {
        boolean attached = link != null;
        ContainerRuntime runtime = ContainerRuntime.of(options.runtime(), options.storageDriver());
        boolean partition = args.storage != null && PartitionExporter.wanted(args.storage);
        if (partition && attached) {
            throw new BadInputException("--storage " + args.storage + ": an .ext4 partition image needs a guest of its "
                    + "own", "use .tar/.tar.gz/.tar.zst, or '" + config.prog() + " vmemres stop' first");
        }
        if (args.storage != null) {
            if (partition) {
                StorageFile.checkDirectory(args.storage, "--storage");
            } else {
                StorageFile.check(args.storage, "--storage");
            }
        }
        if (args.inputStorage != null && !Files.isRegularFile(args.inputStorage)) {
            throw new BadInputException("--input-storage " + args.inputStorage + ": no such file");
        }
        String verb = args.command.get(0);
        boolean shell = verb.equals("vshell");
        List<String> words = engineCommand(args.command);
        RunArgs runArgs = List.of("run", "exec", "create").contains(words.get(0))
                ? RunArgs.parse(words.subList(1, words.size())) : null;
        List<PublishedPorts.Port> ports = runArgs != null ? PublishedPorts.parse(runArgs) : List.of();
        Path hostAgent = null;
        if (runArgs != null && !runArgs.volumes().isEmpty()) {
            HostVolumes.check(runArgs);
            hostAgent = new HostAgent(cacheRoot(options), new CommonsExecRunner(), events).ensure();
        }
        if (!ports.isEmpty() && !attached) {
            throw new BadInputException("publishing ports (-p) needs a resident guest",
                    "start one first: " + config.prog() + " -a " + options.arch().id() + " vmemres start");
        }
        boolean tty = Terminal.interactive() && handleSignals
                && (shell || (runArgs != null && runArgs.tty()) || (verb.equals("start") && words.contains("-ai")));
        Path cacheRoot = cacheRoot(options);
        if (args.authFile != null && args.registryConfig != null && !args.authFile.equals(args.registryConfig)) {
            throw new BadInputException("--authfile and --config name different files", "give one of them");
        }
        String registry = args.noRegistry ? null : args.registry != null ? args.registry : config.configValue("registry");
        if (registry != null && !registry.isBlank()) {
            VconfigCommand.validate("registry", registry);
        }
        HostCommands.Settings settings = new HostCommands.Settings(Set.copyOf(args.insecureRegistries),
                args.authFile != null ? args.authFile : args.registryConfig, args.allowArchMismatch, config.env(),
                cacheRoot, registry == null || registry.isBlank() ? null : registry, args.caCert, args.secureRegistry);
        HostCommands host = new HostCommands(options, runtime, settings, events, stdin, out, err);
        CommonsExecRunner runner = new CommonsExecRunner();
        AtomicInteger interrupts = new AtomicInteger();
        String transfer = runtime.storagePath() + "/" + ContainerRuntime.TRANSFER_DIR + "/"
                + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime());
        boolean streamed = attached || options.resume();
        Scratch.Swept swept = InputDisk.sweep(cacheRoot.resolve("tmp"));
        if (swept.describe(cacheRoot.resolve("tmp")) != null) {
            events.on(new Event.Debug(swept.describe(cacheRoot.resolve("tmp"))));
        }
        CommandRunner.Export export = null;
        // Opened before the guest starts: a target that cannot be written is known before any work.
        try (StorageFile storageOut = args.storage != null && !partition
                ? StorageFile.create(args.storage, "--storage") : null;
                InputDisk disk = streamed ? InputDisk.create(cacheRoot.resolve("tmp"), transfer + "/input")
                : InputDisk.create(cacheRoot.resolve("tmp"))) {
            HostCommands.Plan plan = shell ? shellPlan(tty) : host.plan(words, disk);
            if (args.storage != null) {
                Path outputDisk = null;
                if (partition) {
                    StateDir sd = StateDir.of(options.stateRoot(), options.arch(), options.runtime(), options.suite());
                    try {
                        outputDisk = PartitionExporter.prepare(args.storage, sd.stateDisk(), runner);
                    } catch (java.nio.file.FileSystemException e) {
                        throw new BadInputException("--storage " + args.storage + ": cannot create a file in "
                                + args.storage.toAbsolutePath().getParent() + " (" + StorageFile.reason(e) + ")");
                    }
                }
                export = new CommandRunner.Export(storageOut, partition ? args.storage : null, outputDisk,
                        args.storageContainers, sourceDateEpoch());
            }
            if (args.inputStorage != null) {
                StorageTrees.stage(args.inputStorage, disk);
            }
            CommandRunner.Plan run = new CommandRunner.Plan(options,
                    attached ? new CommandRunner.ResidentLink(link.client(), link.hello()) : null, disk,
                    args.inputStorage, transfer, attached && !readOnly(words), export);
            Path helper = hostAgent;
            CommandRunner.Steps steps = new CommandRunner.Steps() {
                private List<String> command = words;
                private HostCommands.Plan runPlan = plan;
                private HostVolumes volumes;

                @Override
                public void beforeEngine(GuestSession session) throws VbakeException, InterruptedException {
                    plan.beforeEngine(session);
                }

                @Override
                public boolean needsEngineStopped() {
                    return plan.needsEngineRestart();
                }

                @Override
                public void prepare(GuestSession session) throws VbakeException, InterruptedException {
                    if (helper != null) {
                        volumes = new HostVolumes(session, runArgs, transfer + "/volumes", events, err, config.prog(),
                                helper, runner);
                        command = volumes.copyIn(command);
                    }
                    if (!ports.isEmpty()) {
                        for (PublishedPorts.Port p : ports) {
                            session.forwardPort(p.protocol(), p.host(), p.guest());
                        }
                        command = PublishedPorts.rewrite(command, runArgs);
                    }
                    if (command != words) {
                        try {
                            runPlan = host.plan(command, disk);
                        } catch (IOException e) {
                            throw new VbakeException(ExitCodes.FAILURE, "I/O error: " + e.getMessage(), null, e);
                        }
                    }
                }

                @Override
                public int run(GuestSession session) throws VbakeException, InterruptedException, IOException {
                    int code = tty ? runTty(session, command, shell) : runPlan.run(session);
                    out.flush();
                    return code;
                }

                @Override
                public int finish(GuestSession session, int code) throws VbakeException, InterruptedException {
                    if (volumes == null) {
                        return code;
                    }
                    try {
                        volumes.copyOut();
                        return code;
                    } catch (VbakeException e) {
                        // The container's own exit code wins; a successful one becomes a failure.
                        err.println(config.prog() + ": " + e.getMessage());
                        return code != 0 ? code : e.exitCode();
                    }
                }

                @Override
                public boolean usesTransfer() {
                    return volumes != null;
                }

                @Override
                public boolean keepTransfer() {
                    return volumes != null && volumes.keepInGuest();
                }
            };
            return new CommandRunner(runner, events, line -> err.println(config.prog() + ": " + line))
                    .execute(run, steps, session -> {
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
                    });
        } catch (VbakeException e) {
            if (interrupts.get() > 0 && e.exitCode() != ExitCodes.INTERRUPTED) {
                // What failed was stopped by the user's Ctrl-C (a guest command got SIGINT).
                throw new VbakeException(ExitCodes.INTERRUPTED, "interrupted: " + e.getMessage(), null, e);
            }
            throw e;
        } catch (IOException e) {
            throw new VbakeException(ExitCodes.FAILURE, "I/O error: " + e.getMessage(), null, e);
        } finally {
            if (handleSignals) {
                SignalForwarding.reset();
            }
            CommandRunner.discard(export);
        }
    }

    /** Engine words that are only a group of subcommands: alone, they are an error (not the engine's help). */
    private static final java.util.Map<String, String> SUBCOMMANDS = java.util.Map.of(
            "system", "df, prune, events, info",
            "image", "ls, rm, pull, inspect, tag, push, prune, history");

    private static final Set<String> READ_ONLY = Set.of("images", "ps", "inspect", "info", "version", "logs",
            "history", "events", "top", "stats", "port", "diff", "search", "save", "export");
    private static final Set<String> READ_ONLY_SUB = Set.of("ls", "list", "inspect", "history", "df", "info",
            "save", "export", "logs", "top", "port", "diff", "stats");

    /** Commands that change nothing in the store, so nothing needs syncing after them. */
    static boolean readOnly(List<String> command) {
        String verb = command.get(0);
        if (READ_ONLY.contains(verb)) {
            return true;
        }
        return List.of("image", "container", "volume", "network", "system", "manifest").contains(verb)
                && command.size() > 1 && READ_ONLY_SUB.contains(command.get(1));
    }

    /** {@code vshell}: a shell in the guest, with the engine's CLI on its PATH and environment. */
    private HostCommands.Plan shellPlan(boolean tty) {
        return session -> {
            if (tty) {
                return 0;   // run by runTty
            }
            ExecRequest req = new ExecRequest(List.of("/bin/sh"), session.runtime().cliEnv(), "/", stdin != null);
            Protocol.ExitStatus st = session.exec(req, stdin, out, err);
            return st.code();
        };
    }

    /**
     * A command on a pseudo-terminal: the user's terminal in raw mode, so Ctrl-C, Ctrl-D and every
     * other key go to the container, and window changes follow.
     */
    private int runTty(GuestSession session, List<String> command, boolean shell)
            throws VbakeException, InterruptedException, IOException {
        int[] size = Terminal.size();
        InputStream terminal = new java.io.FileInputStream(java.io.FileDescriptor.in);
        try (Terminal raw = Terminal.raw(session::resizeRunning)) {
            Protocol.ExitStatus st;
            if (shell) {
                ExecRequest req = new ExecRequest(List.of("/bin/sh", "-i"), withTerm(session.runtime().cliEnv()), "/",
                        true).withTty(size[0], size[1]);
                st = session.exec(req, terminal, out, out);
            } else {
                st = session.runCliTty(command, size[0], size[1], terminal, out);
            }
            out.flush();
            return st.code();
        }
    }

    private List<String> withTerm(List<String> env) {
        List<String> e = new ArrayList<>(env != null ? env : List.of());
        String term = config.env().get("TERM");
        e.add("TERM=" + (term != null ? term : "xterm"));
        return e;
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
        ResidentClient.State st = ResidentClient.status(any).current();
        if (st.daemonAlive()) {
            throw new BadInputException("a resident guest is " + st.label() + " on " + any.dir(),
                    "stop it first: " + config.prog() + " vmemres stop");
        }
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
                + "Without a resident guest each command boots the guest, runs, and powers it off. With one "
                + "('vmemres start') commands go to it and answer in well under a second.%n"
                + "vbake's own words: vmemres start|stop|restart [--clean]|status|list, vrun (run with the "
                + "entrypoint cleared), vshell (a shell in the guest), vimport (OCI dir or archive), clean.%n"
                + "'vmemres " + VmemresCommand.STATUS_CODES + ".";
    }

    private String examples() {
        String p = config.prog();
        return "  " + p + " -a aarch64 info            engine info from an arm64 guest%n"
                + "  " + p + " -a aarch64 images          images in the arm64 store%n"
                + "  " + p + " -a x86_64 volume create v  state persists for the next command%n"
                + "  " + p + " -a aarch64 clean           remove the arm64 store%n"
                + "  " + p + " -a aarch64 vmemres start   keep an arm64 guest up; later commands use it%n"
                + "  " + p + " -a aarch64 run -it --rm IMG sh   a terminal in a container (Ctrl-C reaches it)%n"
                + "  " + p + " -a aarch64 run -d -p 8080:80 IMG  port 8080 on 127.0.0.1 (resident guest only)%n"
                + "  " + p + " --debug -a aarch64 info    with phase timings and log paths%n";
    }
}
