package org.vbake.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.BlobCache;
import org.vbake.image.Digest;
import org.vbake.image.LocalImageSource;
import org.vbake.image.ResolvedImage;
import org.vbake.image.RootfsTar;
import org.vbake.image.registry.ImageRef;
import org.vbake.image.registry.RegistryAuth;
import org.vbake.image.registry.RegistryClient;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.session.GuestOptions;
import org.vbake.session.GuestSession;
import org.vbake.session.ImageLoader;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StorageFile;

/**
 * The engine commands whose arguments name host files or registries: {@code pull}, {@code load
 * -i}, {@code vimport}, {@code import} and {@code save -o}. Their inputs are read, verified and
 * staged on the host before the guest boots; the guest only loads what is on its input disk.
 * Every other command goes to the guest's engine unchanged.
 */
final class HostCommands {

    /** Host-side preparation of one command, and what to run once the guest is up. */
    interface Plan {
        /** Before the engine starts (docker's RepoDigests). */
        default void beforeEngine(GuestSession session) throws VbakeException, InterruptedException {
        }

        int run(GuestSession session) throws VbakeException, InterruptedException, IOException;

        /** True when {@link #beforeEngine} has work, which on a resident guest means an engine restart. */
        default boolean needsEngineRestart() {
            return false;
        }
    }

    /**
     * What the vdkr/vpdmn options say about registries and arch checks.
     *
     * @param defaultRegistry registry for names that name none ({@code alpine:3.20}); null for docker.io
     * @param caCert          a CA to trust besides the JDK's (PEM), or null
     * @param tlsForLoopback  https also for loopback registries (--secure-registry)
     */
    record Settings(Set<String> insecureRegistries, Path authFile, boolean allowArchMismatch, Map<String, String> env,
            Path cacheRoot, String defaultRegistry, Path caCert, boolean tlsForLoopback) {
    }

    /**
     * {@code alpine:3.20} with a default registry set: {@code HOST/alpine:3.20}; a name whose first
     * part is a host ({@code a.b/x}, {@code h:5000/x}, {@code localhost/x}) is left as it is.
     */
    static String withDefaultRegistry(String name, String registry) {
        if (registry == null) {
            return name;
        }
        int slash = name.indexOf('/');
        String first = slash < 0 ? "" : name.substring(0, slash);
        if (first.contains(".") || first.contains(":") || first.equals("localhost")) {
            return name;
        }
        return registry.replaceAll("/+$", "") + "/" + name;
    }

    private final GuestOptions options;
    private final ContainerRuntime runtime;
    private final Settings settings;
    private final EventListener events;
    private final InputStream stdin;
    private final OutputStream out;
    private final PrintStream err;

    HostCommands(GuestOptions options, ContainerRuntime runtime, Settings settings, EventListener events,
            InputStream stdin, OutputStream out, PrintStream err) {
        this.options = options;
        this.runtime = runtime;
        this.settings = settings;
        this.events = events;
        this.stdin = stdin;
        this.out = out;
        this.err = err;
    }

    /** The plan for {@code command}; files it needs go to {@code disk}. */
    Plan plan(List<String> command, InputDisk disk) throws VbakeException, IOException, InterruptedException {
        String verb = command.get(0);
        List<String> rest = command.subList(1, command.size());
        switch (verb) {
            case "pull":
                return pull(rest, disk);
            case "load":
                return load(rest, disk);
            case "vimport":
                return vimport(rest, disk);
            case "import":
                return importRootfs(rest, disk);
            case "save":
            case "export":
                return toHostFile(verb, rest);
            case "images":
                return images(command);
            case "cp":
                return cp(rest);
            case "push":
                return push(rest);
            default:
                return passthrough(command);
        }
    }

    private Plan passthrough(List<String> command) {
        return session -> exitCode(session.runCli(command, stdin, out, err));
    }

    /**
     * docker's {@code images} with no options beyond -a/-q/--no-trunc is answered from the engine
     * API (see {@link DockerImagesTable}); anything else, or an API failure, goes to the CLI.
     */
    private Plan images(List<String> command) {
        DockerImagesTable.Options o = DockerImagesTable.Options.parse(command.subList(1, command.size()));
        // The table is docker's (podman's images output has other columns).
        if (runtime.kind() != org.vbake.api.RuntimeKind.DOCKER || o == null) {
            return passthrough(command);
        }
        return session -> {
            java.io.ByteArrayOutputStream json = new java.io.ByteArrayOutputStream();
            ExitStatus st = session.exec(new org.vbake.agent.Protocol.ExecRequest(List.of(GuestSession.AGENT,
                    "engine-get", "--socket", runtime.engine(0, true).socket(), o.apiPath()), null, null, false),
                    null, json, OutputStream.nullOutputStream());
            if (!st.succeeded()) {
                return exitCode(session.runCli(command, stdin, out, err));
            }
            out.write(DockerImagesTable.render(json.toByteArray(), o, System.currentTimeMillis())
                    .getBytes(StandardCharsets.UTF_8));
            out.flush();
            return 0;
        };
    }

    private int exitCode(ExitStatus status) throws IOException {
        if (status.error() != null) {
            err.println(runtime.cli() + ": " + status.error());
        }
        out.flush();
        return status.code();
    }

    private ImageLoader loader() throws BadInputException, IOException {
        return new ImageLoader(runtime, events, ImageLoader.rules(runtime, settings.cacheRoot(), settings.env()));
    }

    private BlobCache cache() {
        return new BlobCache(settings.cacheRoot());
    }

    private Plan pull(List<String> args, InputDisk disk) throws VbakeException, IOException, InterruptedException {
        List<String> refs = new ArrayList<>();
        boolean quiet = false;
        for (String a : args) {
            if (a.equals("-q") || a.equals("--quiet")) {
                quiet = true;
            } else if (a.startsWith("-")) {
                throw new BadInputException("pull: option " + a + " is not supported (vbake pulls on the host for "
                        + options.arch() + ")");
            } else {
                refs.add(a);
            }
        }
        if (refs.isEmpty()) {
            throw new BadInputException("pull: no image given", "e.g. pull docker.io/library/alpine:3.20");
        }
        RegistryClient client = RegistryClient.create(settings.insecureRegistries(),
                RegistryAuth.load(settings.authFile(), settings.env(), events), events, settings.caCert(),
                settings.tlsForLoopback());
        ImageLoader loader = loader();
        List<ImageLoader.Staged> staged = new ArrayList<>();
        int n = 0;
        for (String r : refs) {
            ImageRef ref = ImageRef.parse(withDefaultRegistry(r, settings.defaultRegistry()));
            RegistryClient.Result result = client.resolve(ref, options.arch(), settings.allowArchMismatch(), cache());
            List<String> tags = ref.tag() != null ? List.of(ref.name() + ":" + ref.tag()) : List.of();
            staged.add(loader.stage(result.image(), tags, result.repoDigest(), disk, "pull-" + n++));
        }
        boolean q = quiet;
        return new Plan() {
            @Override
            public void beforeEngine(GuestSession session) throws VbakeException, InterruptedException {
                loader.addRepoDigests(session, staged);
            }

            @Override
            public boolean needsEngineRestart() {
                return loader.needsRepoDigests(staged);
            }

            @Override
            public int run(GuestSession session) throws VbakeException, InterruptedException, IOException {
                for (ImageLoader.Staged s : staged) {
                    loader.load(session, s);
                    String name = s.image().repository();
                    String line = s.tags().isEmpty() ? name + "@" + s.repoDigest() : s.tags().get(0);
                    if (!q) {
                        print("Digest: " + s.repoDigest());
                        print("Image ID: " + s.image().configDigest());
                    }
                    print(line);
                }
                return 0;
            }
        };
    }

    private Plan load(List<String> args, InputDisk disk) throws VbakeException, IOException, InterruptedException {
        Path input = null;
        boolean quiet = false;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("-i") || a.equals("--input")) {
                if (i + 1 >= args.size()) {
                    throw new BadInputException("load: " + a + " needs a file");
                }
                input = Path.of(args.get(++i));
            } else if (a.startsWith("--input=")) {
                input = Path.of(a.substring(8));
            } else if (a.equals("-q") || a.equals("--quiet")) {
                quiet = true;
            } else {
                throw new BadInputException("load: unexpected argument " + a, "usage: load [-q] [-i FILE]");
            }
        }
        if (input == null) {
            // From stdin, as the engine itself reads it.
            return passthrough(prepend("load", args));
        }
        LocalImageSource.Spec spec = LocalImageSource.Spec.parse(input.toString());
        ResolvedImage image = LocalImageSource.read(spec.path(), spec.select(), options.arch(),
                settings.allowArchMismatch(), cache(), events);
        List<String> tags = new ArrayList<>();
        for (String t : image.tags()) {
            tags.add(ImageLoader.fullTag(t));
        }
        return imagePlan(image, tags, disk, quiet);
    }

    private Plan vimport(List<String> args, InputDisk disk) throws VbakeException, IOException, InterruptedException {
        if (args.isEmpty() || args.size() > 2 || args.get(0).startsWith("-")) {
            throw new BadInputException("vimport: usage: vimport PATH [NAME[:TAG]]",
                    "PATH is an OCI layout directory, an oci-archive, a docker-archive, or a rootfs directory/tarball");
        }
        LocalImageSource.Spec spec = LocalImageSource.Spec.parse(args.get(0));
        Path path = spec.path();
        String name = args.size() > 1 ? args.get(1) : null;
        LocalImageSource.Kind kind = LocalImageSource.detect(path);
        if (kind == LocalImageSource.Kind.ROOTFS_DIR || kind == LocalImageSource.Kind.ROOTFS_TAR) {
            if (spec.select() != null) {
                throw new BadInputException("vimport: " + path + " is a " + kind.label() + ", not an image layout or "
                        + "archive: there is no image '" + spec.select() + "' to pick in it");
            }
            List<String> importArgs = new ArrayList<>(List.of("import"));
            return rootfsPlan(path, name, importArgs, disk);
        }
        ResolvedImage image = LocalImageSource.read(path, spec.select(), options.arch(), settings.allowArchMismatch(),
                cache(), events);
        List<String> tags = new ArrayList<>();
        if (name != null) {
            tags.add(ImageLoader.fullTag(name));
        } else {
            for (String t : image.tags()) {
                tags.add(ImageLoader.fullTag(t));
            }
        }
        return imagePlan(image, tags, disk, false);
    }

    private Plan imagePlan(ResolvedImage image, List<String> tags, InputDisk disk, boolean quiet)
            throws IOException, VbakeException {
        ImageLoader loader = loader();
        ImageLoader.Staged s = loader.stage(image, tags, null, disk, "image");
        return session -> {
            loader.load(session, s);
            if (tags.isEmpty()) {
                print("Loaded image ID: " + image.configDigest());
            }
            for (String t : tags) {
                print("Loaded image: " + t);
            }
            return 0;
        };
    }

    /** {@code import [OPTIONS] FILE|DIR [REPOSITORY[:TAG]]}: the rootfs goes over the input disk. */
    private Plan importRootfs(List<String> args, InputDisk disk) throws VbakeException, IOException {
        List<String> options = new ArrayList<>(List.of("import"));
        String file = null;
        String name = null;
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.startsWith("-") && !a.equals("-")) {
                options.add(a);
                boolean takesValue = List.of("-c", "--change", "-m", "--message", "--platform", "--arch", "--os",
                        "--variant").contains(a);
                if (takesValue && i + 1 < args.size()) {
                    options.add(args.get(++i));
                }
            } else if (file == null) {
                file = a;
            } else if (name == null) {
                name = a;
            } else {
                throw new BadInputException("import: too many arguments: " + a);
            }
        }
        if (file == null) {
            throw new BadInputException("import: no file given", "usage: import [OPTIONS] FILE|DIR|- [NAME[:TAG]]");
        }
        if (file.equals("-")) {
            return passthrough(prepend("import", args));
        }
        if (file.matches("^[a-z]+://.*")) {
            throw new BadInputException("import: " + file + ": the guest reaches no network; download it first");
        }
        return rootfsPlan(Path.of(file), name, options, disk);
    }

    private Plan rootfsPlan(Path path, String name, List<String> importArgs, InputDisk disk)
            throws VbakeException, IOException {
        if (!Files.exists(path)) {
            throw new BadInputException(path + ": no such file or directory");
        }
        disk.write("rootfs.tar", o -> RootfsTar.write(path, o));
        List<String> argv = new ArrayList<>(importArgs);
        argv.add(disk.guestPath("rootfs.tar"));
        if (name != null) {
            argv.add(ImageLoader.fullTag(name));
        }
        return session -> exitCode(session.runCli(argv, null, out, err));
    }

    /**
     * {@code save -o FILE} (images) and {@code export -o FILE} (a container's filesystem): the tar
     * streams out of the guest into FILE on the host, which appears only when complete.
     */
    private Plan toHostFile(String verb, List<String> args) throws VbakeException, IOException {
        Path output = null;
        List<String> rest = new ArrayList<>(List.of(verb));
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("-o") || a.equals("--output")) {
                if (i + 1 >= args.size()) {
                    throw new BadInputException(verb + ": " + a + " needs a file");
                }
                output = Path.of(args.get(++i));
            } else if (a.startsWith("--output=")) {
                output = Path.of(a.substring(9));
            } else {
                rest.add(a);
            }
        }
        if (output == null) {
            return passthrough(rest);
        }
        Path target = output;
        StorageFile.checkDirectory(target, verb + " -o");
        return session -> {
            try (StorageFile sf = StorageFile.createPlain(target, verb + " -o")) {
                ExitStatus st = session.runCli(rest, null, sf.stream(), err);
                if (st.succeeded()) {
                    sf.commit();
                }
                return exitCode(st);
            }
        };
    }

    /**
     * {@code cp [OPTIONS] HOST_PATH CTR:PATH} and {@code cp [OPTIONS] CTR:PATH HOST_PATH}: the host
     * side goes through the same tree tools as {@code -v} (byte-exact names, hardlinks, modes,
     * atomic per file), staged in the guest's transfer directory, and the engine's own {@code cp}
     * does the container side. {@code -} (a tar on stdin or stdout) goes to the engine unchanged.
     */
    private Plan cp(List<String> args) throws VbakeException, InterruptedException {
        List<String> options = new ArrayList<>();
        List<String> paths = new ArrayList<>();
        for (String a : args) {
            if (a.startsWith("-") && !a.equals("-")) {
                options.add(a);
            } else {
                paths.add(a);
            }
        }
        if (paths.size() != 2) {
            throw new BadInputException("cp: give a source and a destination", "usage: cp [OPTIONS] HOST_PATH CTR:PATH"
                    + " | cp [OPTIONS] CTR:PATH HOST_PATH");
        }
        String src = paths.get(0);
        String dst = paths.get(1);
        if (src.equals("-") || dst.equals("-")) {
            return passthrough(prepend("cp", args));
        }
        boolean toContainer = isContainerPath(dst) && !isContainerPath(src);
        if (toContainer == (isContainerPath(src) && !isContainerPath(dst))) {
            throw new BadInputException("cp: one path must be CONTAINER:PATH and the other a host path, got " + src
                    + " and " + dst);
        }
        Path helper = new org.vbake.image.HostAgent(settings.cacheRoot(), new org.vbake.process.CommonsExecRunner(),
                events).ensure();
        org.vbake.process.ProcessRunner runner = new org.vbake.process.CommonsExecRunner();
        if (toContainer) {
            Path host = Path.of(src);
            if (!Files.exists(host, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                throw new BadInputException("cp: " + host + ": no such file or directory");
            }
            return session -> {
                String t = transfer(session);
                try {
                    String name = host.toAbsolutePath().normalize().getFileName().toString();
                    HostCopy copy = new HostCopy(session, runner, helper, events);
                    if (Files.isDirectory(host, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                        copy.in(host, t + "/" + name);
                    } else {
                        Path one = org.vbake.instance.Scratch.newPrivateDirectory(settings.cacheRoot().resolve("tmp"),
                                "cp-");
                        try {
                            Path link = one.resolve(name);
                            try {
                                Files.createLink(link, host);
                            } catch (IOException | UnsupportedOperationException e) {
                                Files.copy(host, link, java.nio.file.LinkOption.NOFOLLOW_LINKS,
                                        java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
                            }
                            copy.in(one, t);
                        } finally {
                            org.vbake.instance.Trees.deleteTree(one);
                        }
                    }
                    List<String> argv = new ArrayList<>(List.of("cp"));
                    argv.addAll(options);
                    argv.addAll(List.of(t + "/" + name, dst));
                    return exitCode(session.runCli(argv, null, out, err));
                } finally {
                    session.check(List.of("rm", "-rf", t), "remove " + t);
                }
            };
        }
        Path host = Path.of(dst);
        Path parent = host.toAbsolutePath().getParent();
        if (!Files.isDirectory(host) && (parent == null || !Files.isDirectory(parent))) {
            throw new BadInputException("cp: " + host + ": its directory does not exist");
        }
        String name = Path.of(src.substring(src.indexOf(':') + 1)).normalize().getFileName() == null ? "."
                : Path.of(src.substring(src.indexOf(':') + 1)).normalize().getFileName().toString();
        return session -> {
            String t = transfer(session);
            try {
                session.check(List.of("mkdir", "-p", t), "make " + t);
                List<String> argv = new ArrayList<>(List.of("cp"));
                argv.addAll(options);
                argv.addAll(List.of(src, t + "/"));
                int code = exitCode(session.runCli(argv, null, out, err));
                if (code != 0) {
                    return code;
                }
                HostCopy copy = new HostCopy(session, runner, helper, events);
                if (Files.isDirectory(host)) {
                    copy.out(t, host, w -> err.println(runtime.cli() + ": warning: " + w));
                } else {
                    // As the engine does: the copy is named HOST_PATH itself; it appears whole.
                    Path staging = org.vbake.instance.Scratch.newDirectory(parent, "." + host.getFileName() + ".cp-");
                    try {
                        copy.out(t, staging, w -> err.println(runtime.cli() + ": warning: " + w));
                        Files.move(staging.resolve(name), host, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    } finally {
                        org.vbake.instance.Trees.deleteTree(staging);
                    }
                }
                return 0;
            } finally {
                session.check(List.of("rm", "-rf", t), "remove " + t);
            }
        };
    }

    /**
     * {@code push NAME[:TAG]}, done on the host with the same registry client as pulls: an image
     * the store holds as it was pulled (its RepoDigest's manifest and blobs are in the blob cache)
     * goes up byte for byte, so its digest stays; any other is read from the engine's own
     * {@code save} stream, config untouched (the image ID stays), with the manifest the save
     * wrote, or one made for its layers.
     */
    private Plan push(List<String> args) throws VbakeException {
        List<String> names = new ArrayList<>();
        for (String a : args) {
            if (a.equals("-q") || a.equals("--quiet")) {
                continue;
            }
            if (a.startsWith("-")) {
                throw new BadInputException("push: option " + a + " is not supported (vbake pushes from the host)");
            }
            names.add(a);
        }
        if (names.size() != 1) {
            throw new BadInputException("push: give one image", "usage: push NAME[:TAG]");
        }
        String name = names.get(0);
        ImageRef parsed = ImageRef.parse(withDefaultRegistry(name, settings.defaultRegistry()));
        if (parsed.digest() != null && parsed.tag() == null) {
            throw new BadInputException("push: " + name + " names a digest; push a NAME:TAG");
        }
        ImageRef target = ImageRef.parse(parsed.name() + ":" + (parsed.tag() != null ? parsed.tag() : "latest"));
        RegistryClient client = RegistryClient.create(settings.insecureRegistries(),
                RegistryAuth.load(settings.authFile(), settings.env(), events), events, settings.caCert(),
                settings.tlsForLoopback());
        return session -> {
            String local = runtime.localName(target.toString());
            java.io.ByteArrayOutputStream inspected = new java.io.ByteArrayOutputStream();
            ExitStatus st = session.runCli(List.of("image", "inspect", "--format",
                    "{{.Id}} {{range .RepoDigests}}{{.}} {{end}}", local), null, inspected, err);
            if (!st.succeeded()) {
                return exitCode(st);
            }
            String[] words = inspected.toString(StandardCharsets.UTF_8).strip().split("\\s+");
            String id = words[0].startsWith("sha256:") ? words[0] : "sha256:" + words[0];
            ResolvedImage image = asPulled(id, java.util.Arrays.asList(words).subList(1, words.length));
            Path saved = null;
            try {
                if (image == null) {
                    saved = org.vbake.instance.Scratch.newFile(Files.createDirectories(settings.cacheRoot()
                            .resolve("tmp")), "push-", ".tar");
                    try (java.io.OutputStream o = new java.io.BufferedOutputStream(Files.newOutputStream(saved))) {
                        ExitStatus s = session.runCli(List.of("save", local), null, o, err);
                        if (!s.succeeded()) {
                            return exitCode(s);
                        }
                    }
                    image = LocalImageSource.read(saved, local, options.arch(), true, cache(), events);
                }
                print("The push refers to repository [" + target.registry() + "/" + target.repository() + "]");
                Digest digest = client.push(image, target);
                print(target.tag() + ": digest: " + digest + " size: " + (image.manifestBytes() != null
                        ? image.manifestBytes().length : RegistryClient.ociManifestSize(image)));
                return 0;
            } finally {
                if (saved != null) {
                    Files.deleteIfExists(saved);
                }
            }
        };
    }

    /** The image as it was pulled, from the blob cache, when one of its RepoDigests is there whole. */
    private ResolvedImage asPulled(String imageId, List<String> repoDigests) {
        for (String rd : repoDigests) {
            try {
                ImageRef ref = ImageRef.parse(rd.contains("/") || rd.contains(".") ? rd : "docker.io/library/" + rd);
                RegistryClient cacheOnly = RegistryClient.create(Set.of(), RegistryAuth.none(), events, null, false)
                        .offline();
                ResolvedImage image = cacheOnly.resolve(ref, options.arch(), true, cache()).image();
                if (image.configDigest().toString().equals(imageId)) {
                    events.on(new org.vbake.api.Event.Debug("push: as pulled, from " + rd));
                    return image;
                }
            } catch (VbakeException | RuntimeException e) {
                events.on(new org.vbake.api.Event.Debug("push: " + rd + " is not in the blob cache whole: "
                        + e.getMessage()));
            }
        }
        return null;
    }

    private static boolean isContainerPath(String p) {
        int colon = p.indexOf(':');
        int slash = p.indexOf('/');
        return colon > 0 && (slash < 0 || colon < slash);
    }

    private static String transfer(GuestSession session) {
        return session.runtime().storagePath() + "/" + ContainerRuntime.TRANSFER_DIR + "/cp-"
                + ProcessHandle.current().pid() + "-" + Long.toHexString(System.nanoTime());
    }

    private static List<String> prepend(String verb, List<String> args) {
        List<String> l = new ArrayList<>();
        l.add(verb);
        l.addAll(args);
        return l;
    }

    private void print(String line) throws IOException {
        out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }
}
