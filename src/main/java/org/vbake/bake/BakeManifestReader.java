package org.vbake.bake;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.bake.BakeManifest.Autostart;
import org.vbake.bake.BakeManifest.Image;
import org.vbake.bake.BakeManifest.Output;
import org.vbake.bake.BakeManifest.Run;
import org.vbake.bake.BakeManifest.SourceKind;
import org.vbake.bake.YamlTree.Entry;
import org.vbake.bake.YamlTree.ListNode;
import org.vbake.bake.YamlTree.MapNode;
import org.vbake.bake.YamlTree.Node;
import org.vbake.bake.YamlTree.Scalar;
import org.vbake.image.registry.ImageRef;

/**
 * Reads a bake manifest (YAML, or JSON) and checks everything that can be checked without pulling an
 * image, so that a bake fails before it boots a guest. Every error is one line,
 * {@code file:line: field: what is wrong}, pointing at the key or value to fix.
 *
 * <p>The file is parsed into a small tree that remembers the line of every key and value (Jackson's
 * tree model forgets them), then validated field by field.
 */
public final class BakeManifestReader {

    private static final List<String> TOP_KEYS = List.of("arch", "runtime", "driver", "output", "size", "suite",
            "images");
    private static final List<String> IMAGE_KEYS = List.of("ref", "oci", "oci-archive", "docker-archive", "rootfs",
            "name", "tags", "autostart", "allow-unpinned", "run", "command", "unit");
    private static final List<String> RUN_KEYS = List.of("name", "command", "env", "volumes", "ports", "args");
    private static final String ARCH_CHOICES = "aarch64, arm64, x86_64, amd64";

    /** Docker's rule for container names; also safe inside systemd unit names. */
    private static final Pattern CONTAINER_NAME = Pattern.compile("[a-zA-Z0-9][a-zA-Z0-9_.-]+");
    private static final Pattern ENV_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");
    private static final Pattern NOT_NAME_CHAR = Pattern.compile("[^a-zA-Z0-9_.-]+");
    private static final Pattern CONTROL = Pattern.compile("\\p{Cntrl}");
    private static final Pattern WHITESPACE = Pattern.compile("\\s");

    private final Path file;
    /** The manifest's runtime, once read (the unit's kind depends on it). */
    private RuntimeKind runtime;
    /** The manifest's suite, once read. */
    private String suite;
    private final Path baseDir;

    private BakeManifestReader(Path file) {
        this.file = file;
        this.baseDir = file.toAbsolutePath().normalize().getParent();
    }

    /**
     * Reads and validates {@code file}: {@code .yaml}/{@code .yml} as YAML, {@code .json} as JSON.
     * Relative image paths resolve against the manifest's directory.
     *
     * @throws BadInputException anything wrong with the manifest or the paths it names, as
     *                           {@code file:line: field: message}
     * @throws IOException       the file exists but could not be read
     */
    public static BakeManifest read(Path file) throws BadInputException, IOException {
        return new BakeManifestReader(file).read();
    }

    private BakeManifest read() throws BadInputException, IOException {
        Node root = parse();
        Map<String, Entry> top = mapping(root, "", TOP_KEYS, "the manifest must be a mapping with "
                + "arch, runtime and images");

        Arch arch = Arch.parse(requiredText(top, root, "", "arch", ARCH_CHOICES))
                .orElseThrow(() -> notOneOf(top.get("arch"), "arch", ARCH_CHOICES));
        String runtimes = "docker, podman";
        RuntimeKind runtime = RuntimeKind.parse(requiredText(top, root, "", "runtime", runtimes))
                .orElseThrow(() -> notOneOf(top.get("runtime"), "runtime", runtimes));
        this.runtime = runtime;

        String driver = null;
        if (top.containsKey("driver")) {
            driver = text(top.get("driver"), "driver");
            List<String> drivers = BakeManifest.drivers(runtime);
            if (!drivers.contains(driver)) {
                throw error(top.get("driver").value().line(), "driver", "'" + driver + "' is not a " + runtime
                        + " storage driver; use one of " + String.join(", ", drivers));
            }
        }
        Output output = Output.TAR_ZST;
        if (top.containsKey("output")) {
            Entry e = top.get("output");
            output = Output.parse(text(e, "output")).orElseThrow(() -> notOneOf(e, "output", Output.choices()));
        }

        Long size = null;
        if (top.containsKey("size")) {
            Entry e = top.get("size");
            if (output != Output.EXT4) {
                throw error(e.value().line(), "size", "only applies to output: ext4 (the partition image's size)");
            }
            try {
                size = org.vbake.session.Ext4Packer.parseSize(text(e, "size"));
            } catch (BadInputException ex) {
                throw error(e.value().line(), "size", ex.getMessage().substring("size: ".length()));
            }
            if (size < (8L << 20)) {
                throw error(e.value().line(), "size", "'" + text(e, "size") + "' is under the 8M an ext4 image needs");
            }
        }

        String suite = BakeManifest.SUITES.get(0);
        if (top.containsKey("suite")) {
            Entry e = top.get("suite");
            suite = text(e, "suite");
            if (!BakeManifest.SUITES.contains(suite)) {
                throw notOneOf(e, "suite", String.join(", ", BakeManifest.SUITES));
            }
        }

        this.suite = suite;
        Entry imagesEntry = top.get("images");
        if (imagesEntry == null) {
            throw error(root.line(), "images", "is required: a list with at least one image");
        }
        if (!(imagesEntry.value() instanceof ListNode list)) {
            throw error(imagesEntry.value().line(), "images", "must be a list of images");
        }
        if (list.items().isEmpty()) {
            throw error(imagesEntry.value().line(), "images", "needs at least one image");
        }
        List<Image> images = new ArrayList<>();
        List<ComposeStack> stacks = new ArrayList<>();
        List<Node> imageItems = new ArrayList<>();
        for (int i = 0; i < list.items().size(); i++) {
            Node item = list.items().get(i);
            if (item instanceof MapNode m && m.entries().containsKey("compose")) {
                stacks.add(stack(i, m));
            } else {
                images.add(image(images.size(), item));
                imageItems.add(item);
            }
        }
        checkUniqueContainerNames(images, new ListNode(list.line(), imageItems));
        addStackImages(images, stacks);
        return new BakeManifest(file, arch, runtime, driver, output, suite, size, images, stacks);
    }

    private static final List<String> COMPOSE_KEYS = List.of("compose", "name", "allow-unpinned");

    /** A {@code compose:} entry: the stack it names, read and checked. */
    private ComposeStack stack(int index, MapNode node) throws BadInputException, IOException {
        String path = "images[" + index + "]";
        Map<String, Entry> fields = mapping(node, path, COMPOSE_KEYS, "must be a mapping");
        Entry e = fields.get("compose");
        String source = text(e, path + ".compose");
        Path resolved = baseDir.resolve(source).normalize();
        if (!Files.isRegularFile(resolved)) {
            throw error(e.value().line(), path + ".compose", "'" + source + "' is not a file (" + resolved + ")");
        }
        boolean allowUnpinned = false;
        if (fields.containsKey("allow-unpinned")) {
            String value = text(fields.get("allow-unpinned"), path + ".allow-unpinned");
            if (!value.equals("true") && !value.equals("false")) {
                throw notOneOf(fields.get("allow-unpinned"), path + ".allow-unpinned", "true, false");
            }
            allowUnpinned = value.equals("true");
        }
        String name = fields.containsKey("name") ? text(fields.get("name"), path + ".name") : null;
        if (runtime == RuntimeKind.PODMAN && "bookworm".equals(suite)) {
            throw error(e.keyLine(), path + ".compose", "podman stacks are installed as Quadlet files, which "
                    + "bookworm's podman 4.3 does not read; use suite: trixie");
        }
        return ComposeStack.read(resolved, node.line(), name, allowUnpinned);
    }

    /** Each stack's service images, once each and after the manifest's own, pulled like ref: entries. */
    private void addStackImages(List<Image> images, List<ComposeStack> stacks) throws BadInputException {
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Image i : images) {
            if (i.ref() != null) {
                seen.add(i.ref());
            }
        }
        java.util.Set<String> projects = new java.util.HashSet<>();
        for (ComposeStack stack : stacks) {
            if (!projects.add(stack.project())) {
                throw error(stack.line(), "compose", "a second stack named '" + stack.project() + "'; give one of "
                        + "them another name:");
            }
            for (ComposeStack.Service s : stack.services()) {
                if (seen.add(s.image())) {
                    images.add(new Image(images.size(), stack.line(), SourceKind.REF, s.image(), null, null, List.of(),
                            !s.image().contains("@"), Autostart.NO, BakeManifest.Run.NONE));
                }
            }
        }
    }

    private Image image(int index, Node node) throws BadInputException {
        String path = "images[" + index + "]";
        Map<String, Entry> fields = mapping(node, path, IMAGE_KEYS, "must be a mapping with one of "
                + SourceKind.keys());

        Entry sourceEntry = null;
        SourceKind kind = null;
        for (Entry e : fields.values()) {
            SourceKind k = SourceKind.ofKey(e.key()).orElse(null);
            if (k == null) {
                continue;
            }
            if (kind != null) {
                throw error(e.keyLine(), path + "." + e.key(), "cannot be combined with " + kind.key()
                        + "; an image comes from exactly one of " + SourceKind.keys());
            }
            kind = k;
            sourceEntry = e;
        }
        if (kind == null) {
            throw error(node.line(), path, "needs one of " + SourceKind.keys());
        }
        String sourcePath = path + "." + kind.key();
        String source = text(sourceEntry, sourcePath);

        boolean allowUnpinned = false;
        if (fields.containsKey("allow-unpinned")) {
            Entry e = fields.get("allow-unpinned");
            if (kind != SourceKind.REF) {
                throw error(e.keyLine(), path + ".allow-unpinned", "only applies to ref (local images are "
                        + "what they are)");
            }
            String value = text(e, path + ".allow-unpinned");
            if (!value.equals("true") && !value.equals("false")) {
                throw notOneOf(e, path + ".allow-unpinned", "true, false");
            }
            allowUnpinned = value.equals("true");
        }

        Path resolved = null;
        if (kind == SourceKind.REF) {
            ImageRef ref = parseRef(source, sourceEntry.value().line(), sourcePath);
            if (ref.digest() == null && !allowUnpinned) {
                throw error(sourceEntry.value().line(), sourcePath, "'" + source
                        + "' is not pinned by digest (add @sha256:... or allow-unpinned: true)");
            }
        } else {
            resolved = existingPath(kind, source, sourceEntry.value().line(), sourcePath);
        }

        String name = null;
        if (fields.containsKey("name")) {
            Entry e = fields.get("name");
            if (kind == SourceKind.REF) {
                throw error(e.keyLine(), path + ".name", "only applies to local images (oci, oci-archive, docker-archive, rootfs); "
                        + "give a ref more names with tags");
            }
            name = text(e, path + ".name");
            checkNameWithoutDigest(name, e.value().line(), path + ".name");
        } else if (kind == SourceKind.OCI || kind == SourceKind.OCI_ARCHIVE || kind == SourceKind.ROOTFS) {
            throw error(node.line(), path + ".name", "is required for " + kind.key() + " images (the name to give it, "
                    + "like app:1)");
        }

        List<String> tags = new ArrayList<>();
        if (fields.containsKey("tags")) {
            List<Scalar> items = strings(fields.get("tags"), path + ".tags");
            for (int i = 0; i < items.size(); i++) {
                String tagPath = path + ".tags[" + i + "]";
                String tag = nonEmpty(items.get(i), tagPath);
                checkNameWithoutDigest(tag, items.get(i).line(), tagPath);
                tags.add(tag);
            }
        }

        Autostart autostart = Autostart.NO;
        if (fields.containsKey("autostart")) {
            Entry e = fields.get("autostart");
            autostart = Autostart.parse(text(e, path + ".autostart"))
                    .orElseThrow(() -> notOneOf(e, path + ".autostart", Autostart.choices()));
        }

        Run run = fields.containsKey("run") ? run(fields.get("run"), path + ".run") : Run.NONE;
        if (autostart != Autostart.NO && run.name() == null) {
            String from = !tags.isEmpty() ? tags.get(0)
                    : kind == SourceKind.REF ? source
                    : name != null ? name
                    : stripArchiveSuffix(resolved.getFileName().toString());
            String derived = containerNameFrom(from);
            if (!CONTAINER_NAME.matcher(derived).matches()) {
                throw error(node.line(), path, "cannot derive a container name from '" + from + "'; set run.name");
            }
            run = run.withName(derived);
        }
        List<String> command = new ArrayList<>();
        if (fields.containsKey("command")) {
            Entry e = fields.get("command");
            if (kind != SourceKind.ROOTFS) {
                throw error(e.keyLine(), path + ".command", "only applies to rootfs images (the image's default "
                        + "command); for a container's command use run.command");
            }
            List<Scalar> items = strings(e, path + ".command");
            for (int i = 0; i < items.size(); i++) {
                command.add(nonEmpty(items.get(i), path + ".command[" + i + "]"));
            }
        }
        Path unit = null;
        if (fields.containsKey("unit")) {
            Entry e = fields.get("unit");
            String value = text(e, path + ".unit");
            String want = runtime == RuntimeKind.DOCKER ? ".service" : ".container";
            if (!value.endsWith(want)) {
                throw error(e.value().line(), path + ".unit", "'" + value + "' must be a " + want + " file for "
                        + runtime.id() + (runtime == RuntimeKind.DOCKER ? " (a systemd unit)" : " (a Quadlet file)"));
            }
            unit = file.toAbsolutePath().getParent().resolve(value).normalize();
            if (!Files.isRegularFile(unit)) {
                throw error(e.value().line(), path + ".unit", unit + (Files.exists(unit) ? " is not a file"
                        : " does not exist"));
            }
        }
        return new Image(index, node.line(), kind, source, resolved, name, tags, allowUnpinned, autostart, run,
                command, unit);
    }

    private Run run(Entry entry, String path) throws BadInputException {
        Map<String, Entry> fields = mapping(entry.value(), path, RUN_KEYS, "must be a mapping of "
                + String.join(", ", RUN_KEYS));
        String name = null;
        if (fields.containsKey("name")) {
            name = text(fields.get("name"), path + ".name");
            if (!CONTAINER_NAME.matcher(name).matches()) {
                throw error(fields.get("name").value().line(), path + ".name", "'" + name
                        + "' is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)");
            }
        }
        Map<String, String> env = new LinkedHashMap<>();
        if (fields.containsKey("env")) {
            Entry envEntry = fields.get("env");
            if (!(envEntry.value() instanceof MapNode map)) {
                throw error(envEntry.value().line(), path + ".env", "must be a mapping of NAME: value");
            }
            for (Entry e : map.entries().values()) {
                String varPath = path + ".env." + e.key();
                if (!ENV_NAME.matcher(e.key()).matches()) {
                    throw error(e.keyLine(), varPath, "'" + e.key()
                            + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
                }
                if (!(e.value() instanceof Scalar s) || s.text() == null) {
                    throw error(e.value().line(), varPath, "needs a text value (write \"\" for an empty one)");
                }
                env.put(e.key(), unitSafe(s, varPath));
            }
        }
        return new Run(name,
                unitSafeList(fields.get("command"), path + ".command", false),
                env,
                unitSafeList(fields.get("volumes"), path + ".volumes", true),
                unitSafeList(fields.get("ports"), path + ".ports", true),
                unitSafeList(fields.get("args"), path + ".args", false));
    }

    /**
     * A list of strings that end up in unit files. Control characters cannot be written there; volumes
     * and ports must also be free of whitespace because Quadlet takes Volume= and PublishPort= verbatim.
     */
    private List<String> unitSafeList(Entry entry, String path, boolean noWhitespace) throws BadInputException {
        if (entry == null) {
            return List.of();
        }
        List<Scalar> items = strings(entry, path);
        List<String> values = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            String itemPath = path + "[" + i + "]";
            String value = noWhitespace ? nonEmpty(items.get(i), itemPath) : unitSafe(items.get(i), itemPath);
            if (noWhitespace && WHITESPACE.matcher(value).find()) {
                throw error(items.get(i).line(), itemPath, "'" + value + "' must not contain whitespace");
            }
            values.add(unitSafe(items.get(i), itemPath));
        }
        return values;
    }

    private String unitSafe(Scalar scalar, String path) throws BadInputException {
        if (scalar.text() == null) {
            throw error(scalar.line(), path, "needs a text value (write \"\" for an empty one)");
        }
        if (CONTROL.matcher(scalar.text()).find()) {
            throw error(scalar.line(), path, "contains a control character (newline, tab, ...), "
                    + "which a unit file cannot carry");
        }
        return scalar.text();
    }

    private void checkUniqueContainerNames(List<Image> images, ListNode list) throws BadInputException {
        Map<String, Image> byName = new HashMap<>();
        for (Image image : images) {
            if (!image.autostarts()) {
                continue;
            }
            Image first = byName.putIfAbsent(image.containerName(), image);
            if (first != null) {
                String path = "images[" + image.index() + "]";
                Node node = list.items().get(image.index());
                Entry run = ((MapNode) node).entries().get("run");
                Entry runName = run != null && run.value() instanceof MapNode runMap
                        ? runMap.entries().get("name") : null;
                String message = "container name '" + image.containerName() + "' is already used by images["
                        + first.index() + "]";
                if (runName != null) {
                    throw error(runName.value().line(), path + ".run.name", message);
                }
                throw error(node.line(), path, message + "; set run.name to tell them apart");
            }
        }
    }

    private ImageRef parseRef(String text, int line, String path) throws BadInputException {
        try {
            return ImageRef.parse(text);
        } catch (BadInputException e) {
            String prefix = "invalid image reference '" + text + "': ";
            String why = e.getMessage().startsWith(prefix) ? e.getMessage().substring(prefix.length()) : e.getMessage();
            throw error(line, path, "'" + text + "' is not a valid image reference: " + why);
        }
    }

    private void checkNameWithoutDigest(String text, int line, String path) throws BadInputException {
        if (text.contains("@")) {
            throw error(line, path, "'" + text + "' must not carry a digest (a name is repository[:tag])");
        }
        parseRef(text, line, path);
    }

    /**
     * The source's path resolved against the manifest's directory. For images, the path may pick
     * one image ({@code DIR@sha256:...}, {@code DIR:REFNAME}); the result then keeps the choice,
     * for {@link org.vbake.image.LocalImageSource.Spec#parse} to split again.
     */
    private Path existingPath(SourceKind kind, String text, int line, String path) throws BadInputException {
        Path full = baseDir.resolve(text).normalize();
        Path resolved = full;
        if (!Files.exists(full) && kind != SourceKind.ROOTFS) {
            org.vbake.image.LocalImageSource.Spec spec = org.vbake.image.LocalImageSource.Spec.parse(full.toString());
            resolved = spec.path();
            full = spec.select() == null ? resolved : full;
        }
        if (!Files.exists(resolved)) {
            throw error(line, path, resolved + " does not exist");
        }
        if (kind == SourceKind.OCI && !Files.isDirectory(resolved)) {
            throw error(line, path, resolved + " is not a directory (an OCI image layout is one; "
                    + "use oci-archive for a tar)");
        }
        if (kind != SourceKind.OCI && kind != SourceKind.ROOTFS && !Files.isRegularFile(resolved)) {
            throw error(line, path, resolved + " is not a file (" + kind.key() + " is a tar)");
        }
        return full;
    }

    /** {@code registry:5000/team/my_app:1} → {@code my_app}: the repository's last component. */
    static String containerNameFrom(String reference) {
        String name = reference;
        int at = name.indexOf('@');
        if (at >= 0) {
            name = name.substring(0, at);
        }
        int colon = name.lastIndexOf(':');
        if (colon > name.lastIndexOf('/')) {
            name = name.substring(0, colon);
        }
        name = name.substring(name.lastIndexOf('/') + 1);
        name = NOT_NAME_CHAR.matcher(name).replaceAll("-");
        return name.replaceFirst("^[^a-zA-Z0-9]+", "");
    }

    private static String stripArchiveSuffix(String fileName) {
        return fileName.replaceFirst("(\\.oci)?\\.(tar(\\.gz|\\.zst)?|tgz)$", "");
    }

    // ---- validation helpers: each names the field and the line of what is wrong ----

    private Map<String, Entry> mapping(Node node, String path, List<String> allowed, String notAMapping)
            throws BadInputException {
        if (!(node instanceof MapNode map)) {
            throw error(node.line(), path, notAMapping);
        }
        for (Entry e : map.entries().values()) {
            if (!allowed.contains(e.key())) {
                throw error(e.keyLine(), child(path, e.key()), "unknown key; expected one of "
                        + String.join(", ", allowed));
            }
        }
        return map.entries();
    }

    private String requiredText(Map<String, Entry> fields, Node parent, String path, String key, String choices)
            throws BadInputException {
        Entry e = fields.get(key);
        if (e == null) {
            throw error(parent.line(), child(path, key), "is required: one of " + choices);
        }
        return text(e, child(path, key));
    }

    /** A non-empty scalar value. */
    private String text(Entry e, String path) throws BadInputException {
        if (!(e.value() instanceof Scalar s)) {
            throw error(e.value().line(), path, "must be a single value, not a "
                    + (e.value() instanceof ListNode ? "list" : "mapping"));
        }
        return nonEmpty(s, path);
    }

    private String nonEmpty(Scalar s, String path) throws BadInputException {
        if (s.text() == null || s.text().isBlank()) {
            throw error(s.line(), path, "must not be empty");
        }
        return s.text();
    }

    private List<Scalar> strings(Entry e, String path) throws BadInputException {
        if (!(e.value() instanceof ListNode list)) {
            throw error(e.value().line(), path, "must be a list");
        }
        List<Scalar> items = new ArrayList<>();
        for (int i = 0; i < list.items().size(); i++) {
            Node item = list.items().get(i);
            if (!(item instanceof Scalar s)) {
                throw error(item.line(), path + "[" + i + "]", "must be a single value, not a "
                        + (item instanceof ListNode ? "list" : "mapping"));
            }
            items.add(s);
        }
        return items;
    }

    private BadInputException notOneOf(Entry e, String path, String choices) {
        String value = e.value() instanceof Scalar s ? s.text() : null;
        return error(e.value().line(), path, "'" + value + "' is not one of " + choices);
    }

    private BadInputException error(int line, String path, String message) {
        return new BadInputException(file + ":" + line + ": " + (path.isEmpty() ? "" : path + ": ") + message);
    }

    private static String child(String path, String key) {
        return YamlTree.child(path, key);
    }

    private Node parse() throws BadInputException, IOException {
        return YamlTree.parse(file, "manifest", "a bake manifest", true);
    }
}
