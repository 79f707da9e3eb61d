package org.vbake.bake;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.vbake.api.RuntimeKind;
import org.vbake.bake.ComposeStack.Service;

/**
 * What a compose stack installs on the target, by path in the bake's output. docker: the compose
 * file as written ({@code compose/PROJECT/compose.yaml}, for {@link #TARGET_DIR} on the target)
 * and a unit that brings the stack up at boot with {@code docker compose}. podman: Quadlet files
 * translated from it, one {@code .container} per service (ordered by {@code depends_on}, on the
 * stack's {@code .network} under its service name, named volumes as {@code .volume} files), so
 * the target needs nothing but podman. A pure function of the stack.
 */
public final class ComposeUnits {

    /** Where the target keeps docker stacks' compose files. */
    public static final String TARGET_DIR = "/usr/share/vbake/compose";
    /** The header line that marks a file as part of a stack (verify reads it back). */
    public static final String STACK_MARK = "# vbake compose stack ";

    private static final String DOCKER = "/usr/bin/docker";

    private ComposeUnits() {
    }

    /** The docker unit's file name. */
    public static String dockerUnitName(String project) {
        return "vbake-compose-" + project + ".service";
    }

    /** Every file, by output-relative path, for {@code runtime}, each service naming its image as written. */
    public static Map<String, byte[]> generate(ComposeStack stack, RuntimeKind runtime, String unitDir) {
        return generate(stack, runtime, unitDir, Map.of());
    }

    /**
     * The same, with podman's {@code Image=} taken from {@code localRefs} (the compose reference →
     * the reference the baked store answers to). podman finds a baked image by its ID; a
     * reference by an index digest it would try to pull. docker finds it by the repo digest the
     * bake records, so the compose file stays as written.
     */
    public static Map<String, byte[]> generate(ComposeStack stack, RuntimeKind runtime, String unitDir,
            Map<String, String> localRefs) {
        Map<String, byte[]> files = new TreeMap<>();
        if (runtime == RuntimeKind.DOCKER) {
            files.put("compose/" + stack.project() + "/compose.yaml", stack.content());
            files.put(unitDir + "/" + dockerUnitName(stack.project()), bytes(dockerUnit(stack)));
            return files;
        }
        String p = stack.project();
        files.put(unitDir + "/" + p + ".network", bytes(STACK_MARK + p + "\n[Network]\nNetworkName=" + p
                + "_default\n"));
        for (String v : stack.volumes()) {
            files.put(unitDir + "/" + p + "-" + v + ".volume", bytes(STACK_MARK + p + "\n[Volume]\nVolumeName=" + p
                    + "_" + v + "\n"));
        }
        for (Service s : stack.services()) {
            files.put(unitDir + "/" + p + "-" + s.name() + ".container", bytes(container(stack, s,
                    localRefs.getOrDefault(s.image(), s.image()))));
        }
        return files;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String dockerUnit(ComposeStack stack) {
        String p = stack.project();
        String file = TARGET_DIR + "/" + p + "/compose.yaml";
        List<String> base = List.of(DOCKER, "compose", "--project-name", p, "--file", file);
        List<String> up = new ArrayList<>(base);
        up.addAll(List.of("up", "--detach", "--no-build", "--pull", "never"));
        List<String> down = new ArrayList<>(base);
        down.add("down");
        return STACK_MARK + p + " (" + stack.file().getFileName() + ", " + stack.services().size() + " service(s))\n"
                + "[Unit]\n"
                + "Description=vbake compose stack " + p + "\n"
                + "After=docker.service\n"
                + "Requires=docker.service\n"
                + "\n[Service]\n"
                + "Type=oneshot\n"
                + "RemainAfterExit=yes\n"
                + "ExecStart=" + AutostartUnits.commandLine(up) + "\n"
                + "ExecStop=" + AutostartUnits.commandLine(down) + "\n"
                + "\n[Install]\n"
                + "WantedBy=multi-user.target\n";
    }

    private static String container(ComposeStack stack, Service s, String image) {
        String p = stack.project();
        StringBuilder u = new StringBuilder();
        u.append(STACK_MARK).append(p).append(": service ").append(s.name()).append('\n');
        u.append("[Unit]\n");
        u.append("Description=vbake compose stack ").append(p).append(": ").append(s.name()).append('\n');
        for (String d : s.dependsOn()) {
            u.append("Requires=").append(p).append('-').append(d).append(".service\n");
            u.append("After=").append(p).append('-').append(d).append(".service\n");
        }
        u.append("\n[Container]\n");
        if (!image.equals(s.image())) {
            u.append("# image: ").append(s.image().replaceAll("\\p{Cntrl}", "?")).append('\n');
        }
        u.append("Image=").append(escape(image)).append('\n');
        u.append("ContainerName=").append(s.containerName() != null ? s.containerName() : p + "-" + s.name() + "-1")
                .append('\n');
        u.append("Network=").append(p).append(".network\n");
        u.append("NetworkAlias=").append(s.name()).append('\n');
        if (s.entrypoint() != null) {
            u.append("Entrypoint=").append(AutostartUnits.quote(entrypoint(s.entrypoint()))).append('\n');
        }
        s.environment().forEach((k, v) -> u.append("Environment=").append(AutostartUnits.quote(k + "=" + v))
                .append('\n'));
        for (String port : s.ports()) {
            u.append("PublishPort=").append(escape(port)).append('\n');
        }
        for (String v : s.volumes()) {
            int colon = v.indexOf(':');
            String source = colon < 0 ? null : v.substring(0, colon);
            if (source != null && !source.startsWith("/")) {
                // Quadlet makes the .volume's service a dependency and uses its VolumeName.
                v = p + "-" + source + ".volume" + v.substring(colon);
            }
            u.append("Volume=").append(escape(v)).append('\n');
        }
        if (!s.command().isEmpty()) {
            u.append("Exec=").append(AutostartUnits.commandLine(s.command())).append('\n');
        }
        u.append("\n[Service]\n");
        switch (s.restart()) {
            case "always", "unless-stopped" -> u.append("Restart=always\n");
            case "on-failure" -> u.append("Restart=on-failure\n");
            default -> u.append("Restart=no\n");
        }
        u.append("\n[Install]\n");
        u.append("WantedBy=multi-user.target default.target\n");
        return u.toString();
    }

    /** podman's --entrypoint takes one word, or a JSON array for several. */
    static String entrypoint(List<String> words) {
        if (words.size() == 1) {
            return words.get(0);
        }
        StringBuilder json = new StringBuilder("[");
        for (String w : words) {
            if (json.length() > 1) {
                json.append(',');
            }
            json.append('"');
            for (char c : w.toCharArray()) {
                if (c == '"' || c == '\\') {
                    json.append('\\').append(c);
                } else if (c < 0x20) {
                    json.append(String.format("\\u%04x", (int) c));
                } else {
                    json.append(c);
                }
            }
            json.append('"');
        }
        return json.append(']').toString();
    }

    private static String escape(String value) {
        return value.replace("%", "%%").replace("$", "$$");
    }
}
