package org.vbake.session;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.GuestImages;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;
import org.vbake.process.ProcessRunner;
import org.vbake.storage.InputDisk;

/**
 * The check before flashing: a fresh target-arch guest whose engine runs on nothing but the
 * exported tree. Every image must be listed, be readable in full ({@code save} walks every layer
 * through its tar-split data) and run a command.
 */
public final class StoreVerifier {

    /** The outcome for one image. */
    public record ImageCheck(String id, List<String> names, String problem) {
        public boolean ok() {
            return problem == null;
        }
    }

    /** One autostart unit, started as the target's init would start it. */
    public record UnitCheck(String unit, String container, String problem) {
        public boolean ok() {
            return problem == null;
        }
    }

    /**
     * All images and units; ok when there is at least one image and nothing failed.
     *
     * @param engine the engine that read the tree and its version, e.g. {@code docker 20.10.24+dfsg1}
     */
    public record Report(List<ImageCheck> images, List<UnitCheck> units, String engine) {
        public Report(List<ImageCheck> images) {
            this(images, List.of(), "");
        }

        public boolean ok() {
            return !images.isEmpty() && images.stream().allMatch(ImageCheck::ok)
                    && units.stream().allMatch(UnitCheck::ok);
        }
    }

    private final ProcessRunner runner;
    private final EventListener events;

    public StoreVerifier(ProcessRunner runner, EventListener events) {
        this.runner = runner;
        this.events = events;
    }

    /**
     * @param options arch, runtime, driver and resources; its state root and input disk are replaced
     * @param command run in each image (e.g. {@code true})
     */
    public Report verify(Path tree, GuestOptions options, List<String> command)
            throws VbakeException, InterruptedException, IOException {
        return verify(tree, options, command, List.of());
    }

    /**
     * Also starts each autostart unit (a bake's {@code systemd/*.service} or {@code quadlet/*.container})
     * the way the target would, and checks its container is running a moment later. Port
     * publishing is left out: a verify guest has no network device.
     */
    public Report verify(Path tree, GuestOptions options, List<String> command, List<Path> units)
            throws VbakeException, InterruptedException, IOException {
        Path cacheRoot = options.cacheDir() != null ? options.cacheDir() : GuestImages.defaultCacheDir();
        Path scratch = java.nio.file.Files.createDirectories(cacheRoot.resolve("tmp"));
        Scratch.sweep(scratch, "verify-", "");
        Path stateRoot = Scratch.newPrivateDirectory(scratch, "verify-");
        boolean partition = PartitionExporter.wanted(tree);
        try (InputDisk disk = InputDisk.create(scratch)) {
            if (!partition) {
                StorageTrees.stage(tree, disk);
            }
            // A fresh store every time: nothing a saved guest could be resumed on. A partition
            // image is the input disk itself (read-only).
            GuestOptions fresh = options.withStateRoot(stateRoot).withResume(false)
                    .withInputDisk(partition ? tree.toAbsolutePath() : disk.build(runner));
            try (GuestSession session = GuestSession.boot(fresh, runner, events,
                    s -> {
                        if (partition) {
                            StorageTrees.unpackPartition(s, events);
                        } else {
                            StorageTrees.unpack(s, disk, events);
                        }
                    })) {
                Report images = check(session, command);
                List<UnitCheck> unitChecks = new ArrayList<>();
                for (Path unit : AutostartCommand.startOrder(units)) {
                    unitChecks.add(startUnit(session, unit));
                }
                return new Report(images.images(), unitChecks, engineVersion(session));
            }
        } finally {
            Trees.deleteTree(stateRoot);
        }
    }

    /** The engine's name and version as it reports them; the name alone if it will not say. */
    private static String engineVersion(GuestSession session) throws InterruptedException {
        String name = session.runtime().kind().id();
        String format = session.runtime().kind() == org.vbake.api.RuntimeKind.DOCKER ? "{{.Server.Version}}" : "{{.Version}}";
        try {
            String v = session.engine(List.of("version", "--format", format), "read the engine's version").strip();
            return v.isEmpty() || v.contains("\n") ? name : name + " " + v;
        } catch (VbakeException e) {
            return name;
        }
    }

    private UnitCheck startUnit(GuestSession session, Path unit) throws InterruptedException, IOException {
        String name = unit.getFileName().toString();
        String text = java.nio.file.Files.readString(unit);
        if (AutostartCommand.isComposeUnit(text)) {
            return startStack(session, unit, text);
        }
        List<String> run;
        List<List<String>> before;
        try {
            run = AutostartCommand.runArgs(text, name, unit.getParent());
            before = AutostartCommand.prerequisites(text, unit.getParent());
        } catch (IllegalArgumentException | IOException e) {
            return new UnitCheck(name, null, e.getMessage());
        }
        String container = AutostartCommand.containerName(run);
        events.on(new Event.Progress("starting " + name + " as the target's init would"));
        try {
            for (List<String> create : before) {
                // the stack's network and volumes, made once (Quadlet's .network and .volume units)
                String what = create.get(0) + " " + create.get(create.size() - 1);
                try {
                    session.engine(List.of(create.get(0), "inspect", create.get(create.size() - 1)), "inspect " + what);
                } catch (VbakeException missing) {
                    session.engine(create, "create " + what);
                }
            }
            session.engine(run, "start " + name);
            Thread.sleep(2000);
            String state = session.engine(List.of("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                    container), "inspect " + container).strip();
            if (!state.startsWith("running")) {
                String logs = "";
                try {
                    logs = session.engine(List.of("logs", "--tail", "5", container), "read logs").strip();
                } catch (VbakeException ignored) {
                    // the state says enough
                }
                return new UnitCheck(name, container, "container " + container + " is not running (" + state + ")"
                        + (logs.isEmpty() ? "" : ": " + logs.replace('\n', ' ')));
            }
            return new UnitCheck(name, container, null);
        } catch (VbakeException e) {
            return new UnitCheck(name, container, e.getMessage());
        }
    }

    /**
     * A docker compose stack's unit: its compose file (beside the bake's units, in
     * {@code compose/PROJECT/}) copied into the guest, brought up as the unit does, and every service
     * of the file checked to be running.
     */
    private UnitCheck startStack(GuestSession session, Path unit, String text) throws InterruptedException, IOException {
        String name = unit.getFileName().toString();
        List<String> up = AutostartCommand.composeArgs(text);
        String project = AutostartCommand.valueAfter(up, "--project-name");
        Path file = unit.toAbsolutePath().getParent().getParent().resolve("compose").resolve(project)
                .resolve("compose.yaml");
        if (project == null || !java.nio.file.Files.isRegularFile(file)) {
            return new UnitCheck(name, null, "no compose file for it: " + file);
        }
        List<String> services;
        try {
            services = org.vbake.bake.ComposeStack.services(file);
        } catch (org.vbake.api.BadInputException e) {
            return new UnitCheck(name, null, e.getMessage());
        }
        String guestFile = "/run/vbake/compose/" + project + "/compose.yaml";
        List<String> args = new ArrayList<>(up);
        args.set(args.indexOf("--file") + 1, guestFile);
        String label = "stack " + project + ": " + String.join(", ", services);
        events.on(new Event.Progress("bringing up " + name + " as the target's init would"));
        try {
            session.writeFile(guestFile, java.nio.file.Files.readAllBytes(file), "644");
            session.engine(args, "bring up " + name);
            Thread.sleep(2000);
            String ps = session.engine(List.of("compose", "--project-name", project, "--file", guestFile, "ps", "--all",
                    "--format", "{{.Service}} {{.State}}"), "list the stack's containers");
            List<String> notRunning = new ArrayList<>();
            for (String service : services) {
                boolean running = ps.lines().map(String::strip).anyMatch(l -> l.equals(service + " running"));
                if (!running) {
                    notRunning.add(service);
                }
            }
            if (!notRunning.isEmpty()) {
                return new UnitCheck(name, label, "not running: " + String.join(", ", notRunning) + " ("
                        + ps.strip().replace('\n', ';') + ")");
            }
            return new UnitCheck(name, label, null);
        } catch (VbakeException e) {
            return new UnitCheck(name, label, e.getMessage());
        }
    }

    private Report check(GuestSession session, List<String> command) throws VbakeException, InterruptedException {
        Map<String, List<String>> byId = session.listImages();
        List<ImageCheck> checks = new ArrayList<>();
        for (Map.Entry<String, List<String>> e : byId.entrySet()) {
            String id = e.getKey();
            String label = id.substring(7, 19) + (e.getValue().isEmpty() ? "" : " " + String.join(", ", e.getValue()));
            events.on(new Event.Progress("checking " + label));
            String problem = null;
            String cli = session.runtime().cli() + " " + String.join(" ", session.runtime().cliGlobalArgs());
            try {
                session.check(List.of("/bin/sh", "-c", cli + " save \"$1\" > /dev/null", "sh", id),
                        "read every layer of " + label, session.runtime().cliEnv());
            } catch (VbakeException ex) {
                problem = ex.getMessage();
            }
            if (problem == null) {
                List<String> run = new ArrayList<>(List.of("run", "--rm", "--network", "none", id));
                run.addAll(command);
                try {
                    session.engine(run, "run '" + String.join(" ", command) + "' in " + label);
                } catch (VbakeException ex) {
                    problem = ex.getMessage();
                }
            }
            checks.add(new ImageCheck(id, e.getValue(), problem));
        }
        return new Report(checks);
    }
}
