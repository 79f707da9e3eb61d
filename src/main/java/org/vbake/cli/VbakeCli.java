package org.vbake.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import org.vbake.image.GuestImage;
import org.vbake.image.GuestImages;
import org.vbake.kernel.KernelConfig;
import org.vbake.kernel.KernelConfigCheck;
import org.vbake.process.CommonsExecRunner;
import org.vbake.session.GuestOptions;
import org.vbake.bake.Baker;
import org.vbake.session.GuestSession;
import org.vbake.session.StorageTrees;
import org.vbake.session.StoreVerifier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code vbake}: the umbrella CLI for what is not an engine command (kernel checks, guest images). */
@Command(name = "vbake", mixinStandardHelpOptions = true, version = "vbake 0.1.0",
        description = "Bakes ready-to-run container storage for embedded Linux images in a target-arch QEMU guest.%n"
                + "Engine commands: vdkr (docker) and vpdmn (podman).",
        subcommands = {VbakeCli.Bake.class, VbakeCli.Verify.class, VbakeCli.Manifest.class, VbakeCli.Kernel.class,
            VbakeCli.Images.class, CommandLine.HelpCommand.class})
final class VbakeCli {

    static int run(String[] args, PrintStream out, PrintStream err, Map<String, String> env) {
        CommandLine cl = new CommandLine(new VbakeCli());
        cl.setOut(new java.io.PrintWriter(out, true));
        cl.setErr(new java.io.PrintWriter(err, true));
        cl.setParameterExceptionHandler((e, a) -> {
            err.println("vbake: " + e.getMessage());
            List<String> words = commandPath(e.getCommandLine());
            words.add(0, "vbake");
            err.println("Try '" + String.join(" ", words) + " --help' for usage.");
            return ExitCodes.BAD_INPUT;
        });
        cl.setExecutionExceptionHandler((e, c, parseResult) -> {
            if (e instanceof VbakeException v) {
                err.println("vbake: " + v.getMessage());
                if (v.hint() != null) {
                    err.println("vbake: " + v.hint());
                }
                return v.exitCode();
            }
            if (e instanceof InterruptedException) {
                return ExitCodes.INTERRUPTED;
            }
            err.println("vbake: internal error: " + e);
            return ExitCodes.FAILURE;
        });
        if (args.length == 0) {
            cl.usage(err);
            return ExitCodes.BAD_INPUT;
        }
        return cl.execute(args);
    }

    private static List<String> commandPath(CommandLine cl) {
        List<String> names = new ArrayList<>();
        for (CommandLine c = cl; c != null && c.getParent() != null; c = c.getParent()) {
            names.add(0, c.getCommandName());
        }
        return names;
    }

    static Arch arch(String value) throws BadInputException {
        if (value == null) {
            return Arch.host().orElseThrow(() -> new BadInputException("cannot tell the host arch; pass --arch"));
        }
        return Arch.parse(value).orElseThrow(() -> new BadInputException("unknown arch '" + value + "'",
                "choose one of: " + Arch.choices()));
    }

    static RuntimeKind runtime(String value) throws BadInputException {
        return RuntimeKind.parse(value).orElseThrow(() -> new BadInputException("unknown runtime '" + value + "'",
                "choose one of: docker, podman"));
    }

    @Command(name = "manifest", description = "Bake manifests made from other tools' settings.",
            mixinStandardHelpOptions = true, subcommands = {Manifest.FromBundled.class})
    static final class Manifest {

        @Command(name = "from-bundled", mixinStandardHelpOptions = true, sortOptions = false,
                description = "Writes a bake manifest for meta-virtualization's BUNDLED_CONTAINERS entries "
                        + "(name[:runtime][:autostart][:external], OCI directories in DEPLOY_DIR_IMAGE as their "
                        + "container-cross-install class finds them), so a Yocto layer switches to vbake.bbclass "
                        + "without rewriting its settings.",
                footerHeading = "%nExamples:%n",
                footer = {"  vbake manifest from-bundled --deploy-dir tmp/deploy/images/qemuarm64 -a aarch64 \\",
                        "      container-base:docker myapp:docker:autostart --service-file myapp=/srv/myapp.service"})
        static final class FromBundled implements Callable<Integer> {
            @Parameters(paramLabel = "ENTRY", arity = "1..*", description = "BUNDLED_CONTAINERS entries.")
            List<String> entries;

            @Option(names = "--deploy-dir", required = true, paramLabel = "DIR",
                    description = "DEPLOY_DIR_IMAGE: where the OCI directories are.")
            Path deployDir;

            @Option(names = {"-a", "--arch"}, required = true, description = "The target: aarch64 or x86_64.")
            String arch;

            @Option(names = "--runtime", defaultValue = "docker",
                    description = "For entries without one (their CONTAINER_PROFILE default). Default: ${DEFAULT-VALUE}.")
            String runtime;

            @Option(names = "--service-file", paramLabel = "NAME=FILE",
                    description = "CONTAINER_SERVICE_FILE[NAME]: the container's own unit (repeatable).")
            List<String> serviceFiles = new ArrayList<>();

            @Option(names = {"-o", "--output"}, paramLabel = "FILE", description = "Write here (default: stdout).")
            Path output;

            @CommandLine.Spec
            CommandLine.Model.CommandSpec spec;

            @Override
            public Integer call() throws Exception {
                if (!Files.isDirectory(deployDir)) {
                    throw new BadInputException("--deploy-dir " + deployDir + ": no such directory");
                }
                Map<String, Path> units = new java.util.LinkedHashMap<>();
                for (String sf : serviceFiles) {
                    int eq = sf.indexOf('=');
                    if (eq <= 0) {
                        throw new BadInputException("--service-file " + sf + ": give NAME=FILE");
                    }
                    units.put(sf.substring(0, eq), Path.of(sf.substring(eq + 1)));
                }
                String yaml = org.vbake.bake.BundledContainers.manifest(
                        org.vbake.bake.BundledContainers.resolve(entries, deployDir, runtime), arch(arch), units);
                if (output != null) {
                    Files.writeString(output, yaml);
                } else {
                    spec.commandLine().getOut().print(yaml);
                    spec.commandLine().getOut().flush();
                }
                return ExitCodes.OK;
            }
        }
    }

    @Command(name = "kernel", description = "Guest kernel checks.", mixinStandardHelpOptions = true,
            subcommands = {Kernel.Check.class})
    static final class Kernel {

        @Command(name = "check", mixinStandardHelpOptions = true,
                description = "Reports the options a guest kernel config lacks for a runtime (kernel-config/*.cfg). "
                        + "Exit 0 when every required option is there (warnings allowed), 1 when some are missing.",
                footerHeading = "%nExamples:%n",
                footer = {"  vbake kernel check /boot/config-$(uname -r) --arch x86_64 --runtime docker",
                        "  vbake kernel check ~/.cache/vbake/guest/trixie-aarch64-docker/kernel.config --arch aarch64"})
        static final class Check implements Callable<Integer> {
            @Parameters(paramLabel = "CONFIG", description = "A kernel .config (or config.gz).")
            Path config;

            @Option(names = {"-a", "--arch"}, description = "aarch64 or x86_64 (default: the host's).")
            String arch;

            @Option(names = {"-r", "--runtime"}, defaultValue = "docker", description = "docker or podman (default: ${DEFAULT-VALUE}).")
            String runtime;

            @CommandLine.Spec
            CommandLine.Model.CommandSpec spec;

            @Override
            public Integer call() throws Exception {
                if (!Files.isRegularFile(config)) {
                    throw new BadInputException("no such kernel config file: " + config);
                }
                KernelConfig kc;
                try {
                    kc = KernelConfig.read(config);
                } catch (IllegalArgumentException e) {
                    throw new BadInputException(config + " is not a kernel config: " + e.getMessage());
                } catch (IOException e) {
                    throw new BadInputException("cannot read " + config + ": " + e.getMessage());
                }
                KernelConfigCheck.Report report = KernelConfigCheck.check(kc, arch(arch), runtime(runtime));
                spec.commandLine().getOut().print(report.render());
                spec.commandLine().getOut().flush();
                return report.ok() ? ExitCodes.OK : ExitCodes.FAILURE;
            }
        }
    }

    @Command(name = "images", description = "Guest images (kernel, initramfs, tools disk) built from Debian packages.",
            mixinStandardHelpOptions = true, subcommands = {Images.Build.class})
    static final class Images {

        @Command(name = "build", mixinStandardHelpOptions = true,
                description = "Builds (or checks) the cached guest images. vdkr/vpdmn do this on first use; "
                        + "run it ahead of time, or with --force to pick up newer Debian packages. Needs root.")
        static final class Build implements Callable<Integer> {
            @Option(names = {"-a", "--arch"}, split = ",", description = "aarch64, x86_64 (default: both).")
            List<String> arches = List.of("aarch64", "x86_64");

            @Option(names = {"-r", "--runtime"}, split = ",", description = "docker, podman (default: both).")
            List<String> runtimes = List.of("docker", "podman");

            @Option(names = "--suite", defaultValue = GuestOptions.DEFAULT_SUITE,
                    description = "trixie or bookworm (default: ${DEFAULT-VALUE}).")
            String suite;

            @Option(names = "--force", description = "Rebuild even when the cache is current.")
            boolean force;

            @CommandLine.Spec
            CommandLine.Model.CommandSpec spec;

            @Override
            public Integer call() throws Exception {
                if (!GuestSession.SUITES.contains(suite)) {
                    throw new BadInputException("unknown suite '" + suite + "'", "choose one of: trixie, bookworm");
                }
                List<Arch> as = new ArrayList<>();
                for (String a : arches) {
                    as.add(arch(a));
                }
                List<RuntimeKind> rs = new ArrayList<>();
                for (String r : runtimes) {
                    rs.add(runtime(r));
                }
                PrintStream err = new PrintStream(new WriterOutputStream(spec.commandLine().getErr()), true);
                EventPrinter events = new EventPrinter("vbake", err, false);
                String cache = System.getenv("VBAKE_CACHE_DIR");
                GuestImages images = new GuestImages(
                        cache != null && !cache.isBlank() ? Path.of(cache) : GuestImages.defaultCacheDir(),
                        new CommonsExecRunner(), events);
                for (Arch a : as) {
                    for (RuntimeKind r : rs) {
                        GuestImage image = images.ensure(suite, a, r, force);
                        spec.commandLine().getOut().println(suite + "-" + a + "-" + r + "\t" + image.dir());
                    }
                }
                spec.commandLine().getOut().flush();
                return ExitCodes.OK;
            }
        }
    }

    @Command(name = "bake", mixinStandardHelpOptions = true, sortOptions = false,
            description = "Turns a manifest of images into the files an image recipe installs: the engine's storage "
                    + "tree (storage.tar.zst, or storage.ext4 with output: ext4), podman's storage.conf, systemd units "
                    + "or Quadlet files for autostarted images and compose stacks, listing.json (images, digests, "
                    + "layers and the OS packages inside each) and a CycloneDX SBOM. The same manifest gives "
                    + "byte-identical files; unchanged images are not imported again. OUTDIR appears complete or not "
                    + "at all.",
            footerHeading = "%nExamples:%n",
            footer = {"  vbake bake examples/hello/bake.yaml -o build/hello-data",
                    "  SOURCE_DATE_EPOCH=1735689600 vbake bake images.yaml -o out --progress=plain",
                    "  vbake bake images.yaml -o out --offline        # from the cache only"})
    static final class Bake implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "MANIFEST", description = "The bake manifest (.yaml, .yml or .json).")
        Path manifest;

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUTDIR",
                description = "Output directory: new, empty, or an earlier bake's untouched output (replaced; "
                        + "anything else is refused and left alone).")
        Path output;

        @Option(names = "--no-resume", description = "Boot the bake's guest and power it off at the end instead of "
                + "resuming the guest the previous bake saved.")
        boolean noResume;

        @Option(names = "--offline", description = "Use only the local blob cache; fail on anything not in it.")
        boolean offline;

        @Option(names = "--writer", paramLabel = "WHO", defaultValue = "auto",
                description = "Who writes the storage tree: host (vbake itself, at the host's speed, with the "
                        + "engine's exact layout; no guest is started), guest (the engine in a target-arch guest) "
                        + "or auto (host where it mirrors the engine for these images and this engine version, "
                        + "else guest, saying why). Default: ${DEFAULT-VALUE}.")
        String writer;

        @Option(names = "--fresh", description = "Start from an empty store instead of the previous bake's "
                + "(implies --no-cache).")
        boolean fresh;

        @Option(names = "--no-cache", description = "Bake even when an earlier bake had the same inputs (by default "
                + "its output is reused: kept if OUTDIR holds it, else copied from the bake cache).")
        boolean noCache;

        @Option(names = "--cache-registry", paramLabel = "HOST/REPO",
                description = "Share bakes between build hosts through this OCI registry repository: look a bake's "
                        + "inputs up there first and download its output on a hit (digests checked), push it "
                        + "after a miss. Credentials as for pulls; a registry that cannot be reached only warns.")
        String cacheRegistry;

        @Option(names = "--state-dir", paramLabel = "DIR",
                description = "Where the bake's engine store persists between bakes (default: in the cache).")
        Path stateDir;

        @Option(names = "--progress", paramLabel = "MODE", defaultValue = "auto",
                description = "plain (lines, for recipe logs), json (one object per event), tty (one status line), "
                        + "auto (tty on a terminal, else plain). Default: ${DEFAULT-VALUE}.")
        String progress;

        @Option(names = "--insecure-registry", paramLabel = "HOST[:PORT]",
                description = "Pull from this registry over plain http (repeatable); loopback always is.")
        List<String> insecure = new ArrayList<>();

        @Option(names = "--authfile", paramLabel = "FILE", description = "Registry credentials file.")
        Path authFile;

        @Option(names = "--memory", paramLabel = "MB", description = "Guest memory in MiB (default 2048).")
        int memoryMb;

        @Option(names = "--cpus", paramLabel = "N", description = "Guest CPUs (default 2).")
        int cpus;

        @Option(names = "--debug", description = "Phase timings and guest detail.")
        boolean debug;

        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            Map<String, String> env = System.getenv();
            PrintStream err = new PrintStream(new WriterOutputStream(spec.commandLine().getErr()), true);
            EventPrinter events = new EventPrinter("vbake", err, debug, EventPrinter.Mode.parse(progress));
            String cache = env.get("VBAKE_CACHE_DIR");
            Path cacheRoot = cache != null && !cache.isBlank() ? Path.of(cache) : GuestImages.defaultCacheDir();
            Long epoch = ToolConfig.sourceDateEpoch(env);
            Baker.Writer who = Baker.Writer.parse(writer);
            Baker.Options options = new Baker.Options(manifest, output, cacheRoot, stateDir, offline, fresh,
                    java.util.Set.copyOf(insecure), authFile, epoch, env, memoryMb, cpus,
                    !noResume && !List.of("false", "no", "0").contains(env.getOrDefault("VBAKE_RESUME", "").strip()),
                    who, noCache, cacheRegistry);
            Baker.Result r;
            try {
                r = new Baker(new CommonsExecRunner(), events).bake(options);
            } finally {
                events.clearStatus();
            }
            java.io.PrintWriter out = spec.commandLine().getOut();
            for (Path f : r.files()) {
                out.println(String.format(java.util.Locale.ROOT, "%-60s %10d", r.outDir().relativize(f), Files.size(f)));
            }
            String how = switch (r.reuse()) {
                case UP_TO_DATE -> "up to date: the same inputs as the bake that wrote it";
                case CACHED -> "from the bake cache: an earlier bake of the same inputs";
                case DOWNLOADED -> "downloaded from the bake cache " + cacheRegistry + ": a bake of the same inputs";
                case NONE -> r.writer().startsWith("host") ? "the tree written on the " + r.writer()
                        : r.loaded() + " imported, " + r.reused() + " reused by the " + r.writer();
            };
            out.println(String.format(java.util.Locale.ROOT, "baked %d image(s) into %s (%s) in %.1f s",
                    r.loaded() + r.reused(), r.outDir(), how, r.took().toMillis() / 1000.0));
            out.flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "verify", mixinStandardHelpOptions = true, sortOptions = false,
            description = "Boots a fresh target-arch guest whose engine runs on nothing but STORAGE (a --storage export), "
                    + "then for every image: reads every layer (save) and runs COMMAND in it. Reports per image; exit 0 "
                    + "when all pass, 1 when any fails. The check to run before flashing.",
            footerHeading = "%nExamples:%n",
            footer = {"  vbake verify rootfs-docker.tar.zst --arch aarch64",
                    "  vbake verify store.tar -a x86_64 -r podman -- /bin/sh -c 'test -x /bin/busybox'"})
    static final class Verify implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "STORAGE",
                description = "The storage tree (.tar, .tar.gz, .tar.zst or a bake's .ext4), or a bake's output "
                        + "directory: then its storage tree, and its autostart units and compose stacks are started too.")
        Path storage;

        @Parameters(index = "1..*", paramLabel = "COMMAND", description = "Run in each image (default: true).")
        List<String> command = new ArrayList<>();

        @Option(names = {"-a", "--arch"}, description = "Target arch: aarch64 or x86_64 (default: the host's).")
        String arch;

        @Option(names = {"-r", "--runtime"}, description = "docker or podman (default: told by the tree's layout).")
        String runtime;

        @Option(names = "--storage-driver", paramLabel = "DRIVER",
                description = "overlay2/vfs (docker), overlay/vfs (podman); default: told by the tree's layout.")
        String driver;

        @Option(names = "--suite", paramLabel = "SUITE",
                description = "The guest's engine: trixie (docker 26.1, podman 5.4) or bookworm (docker 20.10, "
                        + "podman 4.3); default: a bake's own (its listing), else trixie.")
        String suite;

        @Option(names = "--debug", description = "Phase timings and guest detail.")
        boolean debug;

        @CommandLine.Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            List<Path> units = new ArrayList<>();
            if (Files.isDirectory(storage)) {
                Path dir = storage;
                Path listing = dir.resolve(org.vbake.bake.Baker.LISTING);
                if (suite == null && Files.isRegularFile(listing)) {
                    String s = new com.fasterxml.jackson.databind.ObjectMapper().readTree(listing.toFile())
                            .path("suite").asText("");
                    suite = s.isEmpty() ? null : s;
                }
                storage = null;
                for (String n : List.of("storage.tar.zst", "storage.tar.gz", "storage.tar", "storage.ext4")) {
                    if (Files.isRegularFile(dir.resolve(n))) {
                        storage = dir.resolve(n);
                        break;
                    }
                }
                if (storage == null) {
                    throw new BadInputException(dir + " holds no storage.tar, storage.tar.gz, storage.tar.zst or storage.ext4");
                }
                for (String sub : List.of("systemd", "quadlet")) {
                    if (Files.isDirectory(dir.resolve(sub))) {
                        try (var s = Files.list(dir.resolve(sub))) {
                            s.filter(p -> p.toString().endsWith(".service") || p.toString().endsWith(".container"))
                                    .sorted().forEach(units::add);
                        }
                    }
                }
            }
            if (!Files.isRegularFile(storage)) {
                throw new BadInputException("no such storage tree: " + storage);
            }
            PrintStream err = new PrintStream(new WriterOutputStream(spec.commandLine().getErr()), true);
            EventPrinter events = new EventPrinter("vbake", err, debug);
            org.vbake.storage.StoreKind origin = storage.getFileName().toString().endsWith(".ext4")
                    ? partitionKind(storage) : StorageTrees.sniff(storage);
            RuntimeKind rk;
            if (runtime != null) {
                rk = runtime(runtime);
            } else if (origin != null) {
                rk = origin.runtime();
            } else {
                throw new BadInputException(storage + " does not look like a docker or podman storage tree",
                        "pass --runtime if it is one");
            }
            String d = driver != null ? driver : origin != null && origin.runtime() == rk ? origin.driver() : null;
            String cache = System.getenv("VBAKE_CACHE_DIR");
            if (suite != null && !org.vbake.bake.BakeManifest.SUITES.contains(suite)) {
                throw new BadInputException("--suite " + suite + ": choose " + String.join(" or ",
                        org.vbake.bake.BakeManifest.SUITES));
            }
            GuestOptions options = GuestOptions.defaults(arch(arch), rk)
                    .withCacheDir(cache != null && !cache.isBlank() ? Path.of(cache) : null)
                    .withStorageDriver(d);
            if (suite != null) {
                options = options.withSuite(suite);
            }
            List<String> cmd = command.isEmpty() ? List.of("true") : command;
            StoreVerifier.Report report = new StoreVerifier(new CommonsExecRunner(), events)
                    .verify(storage, options, cmd, units);
            java.io.PrintWriter out = spec.commandLine().getOut();
            for (StoreVerifier.ImageCheck c : report.images()) {
                String label = c.id() + (c.names().isEmpty() ? "" : " " + String.join(", ", c.names()));
                out.println((c.ok() ? "ok     " : "FAILED ") + label + (c.ok() ? "" : ": " + c.problem()));
            }
            for (StoreVerifier.UnitCheck u : report.units()) {
                out.println((u.ok() ? "ok     " : "FAILED ") + "unit " + u.unit()
                        + (u.ok() ? " (" + (u.container().startsWith("stack ") ? "" : "container ") + u.container()
                                + " running)" : ": " + u.problem()));
            }
            if (report.images().isEmpty()) {
                out.println("FAILED the tree holds no images");
            }
            long bad = report.images().stream().filter(c -> !c.ok()).count();
            long badUnits = report.units().stream().filter(u -> !u.ok()).count();
            out.println(report.ok() ? "verified " + report.images().size() + " image(s)"
                    + (units.isEmpty() ? "" : " and " + units.size() + " unit(s)") + " on " + options.arch() + " "
                    + (report.engine().isEmpty() ? rk : report.engine()) + " (" + options.suite() + ")"
                    : "verify failed: " + bad + " of " + report.images().size() + " image(s)"
                            + (badUnits > 0 ? ", " + badUnits + " of " + units.size() + " unit(s)" : ""));
            out.flush();
            return report.ok() ? ExitCodes.OK : ExitCodes.FAILURE;
        }

        /**
         * A bake's ext4 image holds no tar to sniff: its listing's writer says the engine and
         * driver ("host (docker 26.1 overlay2)", "guest (podman trixie overlay)").
         */
        private org.vbake.storage.StoreKind partitionKind(Path image) throws IOException {
            Path listing = image.resolveSibling(org.vbake.bake.Baker.LISTING);
            if (!Files.isRegularFile(listing)) {
                return null;
            }
            String writer = new com.fasterxml.jackson.databind.ObjectMapper().readTree(listing.toFile())
                    .path("writer").asText("");
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\((docker|podman) .* (\\S+)\\)$").matcher(writer);
            if (!m.find()) {
                return null;
            }
            try {
                return org.vbake.storage.StoreKind.of(runtime(m.group(1)), m.group(2));
            } catch (RuntimeException | BadInputException e) {
                return null;
            }
        }
    }

    /** Lets the EventPrinter write to picocli's error writer. */
    private static final class WriterOutputStream extends java.io.OutputStream {
        private final java.io.PrintWriter w;

        WriterOutputStream(java.io.PrintWriter w) {
            this.w = w;
        }

        @Override
        public void write(int b) {
            w.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            w.write(new String(b, off, len, java.nio.charset.StandardCharsets.UTF_8));
        }

        @Override
        public void flush() {
            w.flush();
        }
    }
}
