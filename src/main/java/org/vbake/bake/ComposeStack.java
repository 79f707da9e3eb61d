package org.vbake.bake;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;
import org.vbake.bake.YamlTree.Entry;
import org.vbake.bake.YamlTree.ListNode;
import org.vbake.bake.YamlTree.MapNode;
import org.vbake.bake.YamlTree.Node;
import org.vbake.bake.YamlTree.Scalar;
import org.vbake.image.registry.ImageRef;

/**
 * A compose file as a bake installs it ({@code compose:} in a manifest): every service's image,
 * and what its units need. Only what vbake can carry to both engines is read: each service's
 * {@code image}, {@code command}, {@code entrypoint}, {@code environment}, {@code ports},
 * {@code volumes}, {@code restart}, {@code depends_on} and {@code container_name}, and top-level
 * {@code services}, {@code volumes} (named, without options), {@code name} and the obsolete
 * {@code version}. Any other key is refused with its file, line and name, never dropped: a stack
 * that started differently on the device than in the file would be worse than no stack.
 *
 * @param file     the compose file (absolute)
 * @param line     the manifest line of the entry
 * @param project  the stack's project name: the file's {@code name:}, else the entry's, else its directory's
 * @param services in file order
 * @param volumes  named volumes, in file order
 * @param content  the file's bytes, installed as they are for docker
 */
public record ComposeStack(Path file, int line, String project, List<Service> services, List<String> volumes,
        byte[] content) {

    /**
     * One service.
     *
     * @param command     empty for the image's own
     * @param entrypoint  null for the image's own
     * @param ports       {@code [IP:]HOST:CONTAINER[/proto]} as written
     * @param volumes     {@code SOURCE:TARGET[:ro|rw]} or a bare {@code TARGET}
     * @param restart     no, always, on-failure or unless-stopped (compose's default: no)
     * @param dependsOn   services started first
     */
    public record Service(String name, int line, String image, List<String> command, List<String> entrypoint,
            Map<String, String> environment, List<String> ports, List<String> volumes, String restart,
            List<String> dependsOn, String containerName) {
    }

    static final List<String> TOP_KEYS = List.of("services", "volumes", "name", "version");
    static final List<String> SERVICE_KEYS = List.of("image", "command", "entrypoint", "environment", "ports",
            "volumes", "restart", "depends_on", "container_name");
    private static final List<String> RESTARTS = List.of("no", "always", "on-failure", "unless-stopped");
    private static final Pattern PROJECT = Pattern.compile("[a-z0-9][a-z0-9_-]*");
    private static final Pattern SERVICE = Pattern.compile("[a-zA-Z0-9][a-zA-Z0-9_.-]*");
    private static final Pattern PORT = Pattern.compile("(?:(\\d{1,3}(?:\\.\\d{1,3}){3}):)?(\\d{1,5}):(\\d{1,5})(/(tcp|udp))?");
    private static final Pattern VOLUME_NAME = Pattern.compile("[a-zA-Z0-9][a-zA-Z0-9_.-]*");
    private static final Pattern ENV_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*");

    /**
     * Reads and checks {@code file}.
     *
     * @param projectHint   the manifest entry's {@code name:}, or null
     * @param allowUnpinned whether service images may lack a digest
     */
    public static ComposeStack read(Path file, int manifestLine, String projectHint, boolean allowUnpinned)
            throws BadInputException, IOException {
        return new Reader(file).read(manifestLine, projectHint, allowUnpinned);
    }

    /** The service names of a compose file vbake made a unit for (read leniently: pinning is the bake's business). */
    public static List<String> services(Path file) throws BadInputException, IOException {
        return read(file, 0, "x", true).services().stream().map(Service::name).toList();
    }

    /** Compose's project name rule: lower case letters, digits, '_' and '-', starting with a letter or digit. */
    static String normalizeProject(String name) {
        return name.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9_-]", "").replaceFirst("^[_-]+", "");
    }

    /** The services in an order that starts each after those it depends on (file order otherwise). */
    public List<Service> startOrder() {
        Map<String, Service> byName = new LinkedHashMap<>();
        services.forEach(s -> byName.put(s.name(), s));
        Set<String> done = new LinkedHashSet<>();
        for (Service s : services) {
            visit(s, byName, done);
        }
        List<Service> out = new ArrayList<>();
        done.forEach(n -> out.add(byName.get(n)));
        return out;
    }

    private static void visit(Service s, Map<String, Service> byName, Set<String> done) {
        if (done.contains(s.name())) {
            return;
        }
        for (String d : s.dependsOn()) {
            visit(byName.get(d), byName, done);
        }
        done.add(s.name());
    }

    private static final class Reader {
        private final Path file;

        Reader(Path file) {
            this.file = file;
        }

        ComposeStack read(int manifestLine, String projectHint, boolean allowUnpinned)
                throws BadInputException, IOException {
            Node root = YamlTree.parse(file, "compose file", "a compose file", false);
            if (!(root instanceof MapNode top)) {
                throw error(root.line(), "", "a compose file must be a mapping with services");
            }
            for (Entry e : top.entries().values()) {
                if (!TOP_KEYS.contains(e.key()) && !e.key().startsWith("x-")) {
                    throw notTranslated(e, e.key(), "top-level keys " + String.join(", ", TOP_KEYS) + " and x-*");
                }
            }
            String project = projectHint;
            if (top.entries().containsKey("name")) {
                project = text(top.entries().get("name"), "name");
            }
            if (project == null) {
                Path dir = file.toAbsolutePath().getParent();
                project = dir == null || dir.getFileName() == null ? "" : dir.getFileName().toString();
            }
            String normalized = normalizeProject(project);
            if (!PROJECT.matcher(normalized).matches()) {
                throw error(top.line(), "name", "'" + project + "' gives no project name (letters, digits, '_', "
                        + "'-'); set name:");
            }

            List<String> volumes = new ArrayList<>();
            Entry volumesEntry = top.entries().get("volumes");
            if (volumesEntry != null) {
                if (!(volumesEntry.value() instanceof MapNode vm)) {
                    throw error(volumesEntry.value().line(), "volumes", "must be a mapping of volume names");
                }
                for (Entry v : vm.entries().values()) {
                    String path = "volumes." + v.key();
                    if (!VOLUME_NAME.matcher(v.key()).matches()) {
                        throw error(v.keyLine(), path, "is not a volume name (letters, digits, '_', '.', '-')");
                    }
                    if (v.value() instanceof MapNode opts && !opts.entries().isEmpty()) {
                        Entry first = opts.entries().values().iterator().next();
                        throw notTranslated(first, path + "." + first.key(), "named volumes without options");
                    }
                    if (v.value() instanceof Scalar s && s.text() != null || v.value() instanceof ListNode) {
                        throw error(v.value().line(), path, "must be empty (a named volume with no options)");
                    }
                    volumes.add(v.key());
                }
            }

            Entry servicesEntry = top.entries().get("services");
            if (servicesEntry == null) {
                throw error(top.line(), "services", "is required: a mapping with at least one service");
            }
            if (!(servicesEntry.value() instanceof MapNode sm) || sm.entries().isEmpty()) {
                throw error(servicesEntry.value().line(), "services", "must be a mapping with at least one service");
            }
            List<Service> services = new ArrayList<>();
            for (Entry s : sm.entries().values()) {
                services.add(service(s, volumes, allowUnpinned));
            }
            Set<String> names = new LinkedHashSet<>();
            services.forEach(s -> names.add(s.name()));
            Set<String> containerNames = new LinkedHashSet<>();
            for (Service s : services) {
                for (String d : s.dependsOn()) {
                    if (!names.contains(d)) {
                        throw error(s.line(), "services." + s.name() + ".depends_on", "'" + d + "' is not a service "
                                + "of this file");
                    }
                }
                if (s.containerName() != null && !containerNames.add(s.containerName())) {
                    throw error(s.line(), "services." + s.name() + ".container_name", "'" + s.containerName()
                            + "' is another service's too");
                }
            }
            checkAcyclic(services);
            return new ComposeStack(file.toAbsolutePath().normalize(), manifestLine, normalized, services, volumes,
                    Files.readAllBytes(file));
        }

        private Service service(Entry entry, List<String> volumes, boolean allowUnpinned) throws BadInputException {
            String name = entry.key();
            String path = "services." + name;
            if (!SERVICE.matcher(name).matches()) {
                throw error(entry.keyLine(), path, "is not a service name (letters, digits, '_', '.', '-')");
            }
            if (!(entry.value() instanceof MapNode m)) {
                throw error(entry.value().line(), path, "must be a mapping");
            }
            for (Entry e : m.entries().values()) {
                if (e.key().equals("build")) {
                    throw error(e.keyLine(), path + ".build", "vbake bakes images, it builds none: build the image, "
                            + "push it and give image: with its digest");
                }
                if (!SERVICE_KEYS.contains(e.key()) && !e.key().startsWith("x-")) {
                    throw notTranslated(e, path + "." + e.key(), "service keys " + String.join(", ", SERVICE_KEYS));
                }
            }
            Entry imageEntry = m.entries().get("image");
            if (imageEntry == null) {
                throw error(entry.keyLine(), path + ".image", "is required (vbake bakes images, it builds none)");
            }
            String image = text(imageEntry, path + ".image");
            ImageRef ref;
            try {
                ref = ImageRef.parse(image);
            } catch (BadInputException e) {
                throw error(imageEntry.value().line(), path + ".image", "'" + image + "' is not a valid image reference");
            }
            if (ref.digest() == null && !allowUnpinned) {
                throw error(imageEntry.value().line(), path + ".image", "'" + image
                        + "' is not pinned by digest (add @sha256:... or allow-unpinned: true on the manifest entry)");
            }
            List<String> command = words(m.entries().get("command"), path + ".command");
            List<String> entrypoint = m.entries().containsKey("entrypoint")
                    ? words(m.entries().get("entrypoint"), path + ".entrypoint") : null;
            Map<String, String> env = environment(m.entries().get("environment"), path + ".environment");
            List<String> ports = new ArrayList<>();
            for (Scalar p : scalars(m.entries().get("ports"), path + ".ports", "short syntax: \"8080:80\"")) {
                if (!PORT.matcher(p.text()).matches()) {
                    throw error(p.line(), path + ".ports", "'" + p.text() + "': give [IP:]HOST:CONTAINER[/tcp|udp] "
                            + "(a port without a host port would get a random one at every boot)");
                }
                ports.add(p.text());
            }
            List<String> mounts = new ArrayList<>();
            for (Scalar v : scalars(m.entries().get("volumes"), path + ".volumes", "short syntax: \"data:/data\"")) {
                mounts.add(volume(v, path + ".volumes", volumes));
            }
            String restart = "no";
            if (m.entries().containsKey("restart")) {
                Entry r = m.entries().get("restart");
                restart = text(r, path + ".restart");
                if (!RESTARTS.contains(restart)) {
                    throw error(r.value().line(), path + ".restart", "'" + restart + "' is not one of "
                            + String.join(", ", RESTARTS));
                }
            }
            List<String> dependsOn = dependsOn(m.entries().get("depends_on"), path + ".depends_on");
            String containerName = null;
            if (m.entries().containsKey("container_name")) {
                containerName = text(m.entries().get("container_name"), path + ".container_name");
                if (!SERVICE.matcher(containerName).matches()) {
                    throw error(m.entries().get("container_name").value().line(), path + ".container_name",
                            "'" + containerName + "' is not a container name");
                }
            }
            return new Service(name, entry.keyLine(), image, command, entrypoint, env, ports, mounts, restart,
                    dependsOn, containerName);
        }

        private String volume(Scalar v, String path, List<String> named) throws BadInputException {
            String spec = v.text();
            String[] parts = spec.split(":", -1);
            if (parts.length > 3 || spec.isEmpty() || spec.contains(",")) {
                throw error(v.line(), path, "'" + spec + "': give SOURCE:TARGET[:ro|rw] or TARGET");
            }
            if (parts.length == 1) {
                if (!spec.startsWith("/")) {
                    throw error(v.line(), path, "'" + spec + "': the target must be an absolute path");
                }
                return spec;
            }
            String source = parts[0];
            if (!parts[1].startsWith("/")) {
                throw error(v.line(), path, "'" + spec + "': the target must be an absolute path");
            }
            if (parts.length == 3 && !parts[2].equals("ro") && !parts[2].equals("rw")) {
                throw notTranslatedText(v.line(), path, "mode '" + parts[2] + "'", "ro and rw");
            }
            if (source.startsWith(".") || source.startsWith("~")) {
                throw error(v.line(), path, "'" + source + "' is a path on the build host; on the device give an "
                        + "absolute path, or a named volume");
            }
            if (!source.startsWith("/") && !named.contains(source)) {
                throw error(v.line(), path, "'" + source + "' is not declared under the top-level volumes:");
            }
            return spec;
        }

        private Map<String, String> environment(Entry e, String path) throws BadInputException {
            Map<String, String> env = new LinkedHashMap<>();
            if (e == null) {
                return env;
            }
            if (e.value() instanceof MapNode m) {
                for (Entry kv : m.entries().values()) {
                    if (!ENV_NAME.matcher(kv.key()).matches()) {
                        throw error(kv.keyLine(), path + "." + kv.key(), "is not a variable name");
                    }
                    if (!(kv.value() instanceof Scalar s) || s.text() == null) {
                        throw error(kv.keyLine(), path + "." + kv.key(), "has no value: compose would take it from "
                                + "the environment of whoever starts the stack; write the value");
                    }
                    env.put(kv.key(), s.text());
                }
                return env;
            }
            for (Scalar s : scalars(e, path, "a mapping or a list of NAME=VALUE")) {
                int eq = s.text().indexOf('=');
                if (eq <= 0) {
                    throw error(s.line(), path, "'" + s.text() + "' has no value: compose would take it from the "
                            + "environment of whoever starts the stack; write NAME=VALUE");
                }
                if (!ENV_NAME.matcher(s.text().substring(0, eq)).matches()) {
                    throw error(s.line(), path, "'" + s.text().substring(0, eq) + "' is not a variable name");
                }
                env.put(s.text().substring(0, eq), s.text().substring(eq + 1));
            }
            return env;
        }

        private List<String> dependsOn(Entry e, String path) throws BadInputException {
            List<String> out = new ArrayList<>();
            if (e == null) {
                return out;
            }
            if (e.value() instanceof MapNode m) {
                for (Entry d : m.entries().values()) {
                    if (d.value() instanceof MapNode opts) {
                        for (Entry o : opts.entries().values()) {
                            if (!o.key().equals("condition")) {
                                throw notTranslated(o, path + "." + d.key() + "." + o.key(), "condition: service_started");
                            }
                            String c = text(o, path + "." + d.key() + ".condition");
                            if (!c.equals("service_started")) {
                                throw notTranslatedText(o.value().line(), path + "." + d.key() + ".condition",
                                        "'" + c + "'", "service_started (systemd orders the units; it cannot wait "
                                                + "for health or completion)");
                            }
                        }
                    } else if (!(d.value() instanceof Scalar s && s.text() == null)) {
                        throw error(d.value().line(), path + "." + d.key(), "must be a mapping (condition: ...)");
                    }
                    out.add(d.key());
                }
                return out;
            }
            for (Scalar s : scalars(e, path, "a list of services")) {
                out.add(s.text());
            }
            return out;
        }

        private void checkAcyclic(List<Service> services) throws BadInputException {
            Map<String, Service> byName = new LinkedHashMap<>();
            services.forEach(s -> byName.put(s.name(), s));
            for (Service s : services) {
                Set<String> seen = new LinkedHashSet<>();
                List<String> stack = new ArrayList<>(s.dependsOn());
                while (!stack.isEmpty()) {
                    String n = stack.remove(stack.size() - 1);
                    if (n.equals(s.name())) {
                        throw error(s.line(), "services." + s.name() + ".depends_on", "depends on itself ("
                                + s.name() + " -> " + String.join(" -> ", seen) + " -> " + s.name() + ")");
                    }
                    if (seen.add(n)) {
                        stack.addAll(byName.get(n).dependsOn());
                    }
                }
            }
        }

        /** A string (split as a shell would, as compose does) or a list of strings. */
        private List<String> words(Entry e, String path) throws BadInputException {
            if (e == null) {
                return List.of();
            }
            if (e.value() instanceof Scalar s) {
                if (s.text() == null) {
                    return List.of();
                }
                return shellWords(s.text(), s.line(), path);
            }
            List<String> out = new ArrayList<>();
            for (Scalar s : scalars(e, path, "a string or a list of strings")) {
                out.add(s.text());
            }
            return out;
        }

        private List<String> shellWords(String text, int line, String path) throws BadInputException {
            try {
                return CommandWords.shell(text);
            } catch (IllegalArgumentException e) {
                throw error(line, path, e.getMessage());
            }
        }

        private List<Scalar> scalars(Entry e, String path, String expected) throws BadInputException {
            List<Scalar> out = new ArrayList<>();
            if (e == null) {
                return out;
            }
            if (!(e.value() instanceof ListNode l)) {
                throw error(e.value().line(), path, "must be a list (" + expected + ")");
            }
            for (Node n : l.items()) {
                if (n instanceof MapNode m && !m.entries().isEmpty()) {
                    Entry first = m.entries().values().iterator().next();
                    throw notTranslated(first, path + "." + first.key(), expected);
                }
                if (!(n instanceof Scalar s) || s.text() == null) {
                    throw error(n.line(), path, "must be a list of strings (" + expected + ")");
                }
                out.add(s);
            }
            return out;
        }

        private String text(Entry e, String path) throws BadInputException {
            if (!(e.value() instanceof Scalar s) || s.text() == null) {
                throw error(e.value().line(), path, "must be a string");
            }
            return s.text();
        }

        private BadInputException notTranslated(Entry e, String path, String what) {
            return YamlTree.error(file, e.keyLine(), path, "not translated by vbake (it carries " + what
                    + "); remove it or bake the stack another way");
        }

        private BadInputException notTranslatedText(int line, String path, String value, String what) {
            return YamlTree.error(file, line, path, value + " is not translated by vbake (it carries " + what + ")");
        }

        private BadInputException error(int line, String path, String message) {
            return YamlTree.error(file, line, path, message);
        }
    }
}
