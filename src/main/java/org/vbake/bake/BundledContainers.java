package org.vbake.bake;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;

/**
 * meta-virtualization's {@code BUNDLED_CONTAINERS} (container-cross-install.bbclass) as a vbake
 * manifest, so a Yocto layer that used their class switches by changing its inherit line. An entry
 * is {@code name[:runtime][:policy][:external]}: {@code name} is a container recipe's name or an
 * OCI directory in {@code DEPLOY_DIR_IMAGE} ({@code name-latest-oci}, then {@code name-oci}, or
 * the name itself when it ends in {@code -oci}); the image is named after the directory (a last
 * part that is {@code latest} or a version is the tag, else {@code latest}); {@code autostart}
 * means {@code unless-stopped}; {@code external} only tells the class not to depend on a recipe.
 * {@code CONTAINER_SERVICE_FILE[name]} becomes the image's {@code unit:}.
 */
public final class BundledContainers {

    private static final Pattern VERSION_OR_LATEST = Pattern.compile("latest|v?[0-9]+\\.[0-9]+(\\.[0-9]+)?|[0-9]+");
    private static final List<String> POLICIES = List.of("autostart", "always", "unless-stopped", "on-failure", "no");

    private BundledContainers() {
    }

    /** One entry, resolved. */
    public record Entry(String name, String runtime, String policy, boolean external, Path oci, String image,
            String tag) {
    }

    /** Parses and resolves each entry against {@code deployDir}; {@code defaultRuntime} for entries without one. */
    public static List<Entry> resolve(List<String> entries, Path deployDir, String defaultRuntime)
            throws BadInputException {
        List<Entry> out = new ArrayList<>();
        for (String raw : entries) {
            List<String> parts = new ArrayList<>(List.of(raw.split(":", -1)));
            boolean external = parts.remove("external");
            String name = parts.get(0);
            if (name.isEmpty() || parts.size() > 3) {
                throw new BadInputException("BUNDLED_CONTAINERS entry '" + raw + "': give name[:runtime][:autostart]"
                        + "[:external]");
            }
            String runtime = parts.size() > 1 ? parts.get(1) : defaultRuntime;
            if (!runtime.equals("docker") && !runtime.equals("podman")) {
                throw new BadInputException("BUNDLED_CONTAINERS entry '" + raw + "': runtime '" + runtime
                        + "' is not docker or podman");
            }
            String policy = parts.size() > 2 ? parts.get(2) : null;
            if (policy != null && !POLICIES.contains(policy)) {
                throw new BadInputException("BUNDLED_CONTAINERS entry '" + raw + "': '" + policy
                        + "' is not one of " + String.join(", ", POLICIES));
            }
            if (policy != null) {
                policy = policy.equals("autostart") ? "unless-stopped" : policy;
            }
            List<Path> candidates = name.endsWith("-oci") ? List.of(deployDir.resolve(name))
                    : List.of(deployDir.resolve(name + "-latest-oci"), deployDir.resolve(name + "-oci"));
            Path oci = candidates.stream().filter(Files::isDirectory).findFirst().orElseThrow(() ->
                    new BadInputException("BUNDLED_CONTAINERS entry '" + raw + "': no OCI directory " + String.join(" or ",
                            candidates.stream().map(Path::toString).toList()), "build the container recipe for this "
                            + "machine, or drop the entry"));
            String dir = oci.getFileName().toString().replaceFirst("-oci$", "");
            int dash = dir.lastIndexOf('-');
            String last = dash < 0 ? "" : dir.substring(dash + 1);
            String image = dir;
            String tag = "latest";
            if (dash > 0 && VERSION_OR_LATEST.matcher(last).matches()) {
                image = dir.substring(0, dash);
                tag = last;
            }
            out.add(new Entry(name, runtime, "no".equals(policy) ? null : policy, external, oci.toAbsolutePath(),
                    image, tag));
        }
        return out;
    }

    /** The bake manifest (YAML) for the entries, all of one runtime. */
    public static String manifest(List<Entry> entries, Arch arch, Map<String, Path> serviceFiles)
            throws BadInputException {
        if (entries.isEmpty()) {
            throw new BadInputException("BUNDLED_CONTAINERS is empty");
        }
        String runtime = entries.get(0).runtime();
        for (Entry e : entries) {
            if (!e.runtime().equals(runtime)) {
                throw new BadInputException("BUNDLED_CONTAINERS mixes docker and podman (" + entries.get(0).name()
                        + ", " + e.name() + ")", "vbake bakes one engine's tree per image recipe");
            }
        }
        Map<String, Path> units = new LinkedHashMap<>(serviceFiles);
        StringBuilder y = new StringBuilder();
        y.append("# Made by vbake from BUNDLED_CONTAINERS (meta-virtualization's container-cross-install syntax).\n");
        y.append("arch: ").append(arch.id()).append('\n');
        y.append("runtime: ").append(runtime).append('\n');
        y.append("images:\n");
        for (Entry e : entries) {
            y.append("  - oci: ").append(quote(e.oci().toString())).append('\n');
            y.append("    name: ").append(quote(e.image() + ":" + e.tag())).append('\n');
            if (e.policy() != null) {
                y.append("    autostart: ").append(e.policy()).append('\n');
                y.append("    run:\n      name: ").append(quote(e.image().replaceAll("[^a-zA-Z0-9_.-]", "-")))
                        .append('\n');
            }
            Path unit = units.remove(e.name());
            if (unit != null) {
                if (!unit.isAbsolute()) {
                    throw new BadInputException("CONTAINER_SERVICE_FILE[" + e.name() + "] " + unit + ": give an "
                            + "absolute path");
                }
                y.append("    unit: ").append(quote(unit.toString())).append('\n');
            }
        }
        if (!units.isEmpty()) {
            throw new BadInputException("CONTAINER_SERVICE_FILE names containers BUNDLED_CONTAINERS does not have: "
                    + String.join(", ", units.keySet()));
        }
        return y.toString();
    }

    private static String quote(String s) {
        return "'" + s.replace("'", "''") + "'";
    }
}
