package org.vbake.bake;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import org.vbake.api.RuntimeKind;
import org.vbake.bake.BakeManifest.Autostart;
import org.vbake.bake.BakeManifest.Image;
import org.vbake.bake.BakeManifest.Run;

/**
 * The files that start a bake's autostarted containers at boot: a systemd service per container for
 * docker, a Quadlet {@code .container} file per container for podman. Output is a pure function of the
 * manifest, so two bakes of the same manifest give byte-identical files.
 */
public final class AutostartUnits {

    /** Where docker units go, relative to the target rootfs. */
    public static final String SYSTEMD_UNIT_DIR = "etc/systemd/system";
    /** Where rootful Quadlet files go, relative to the target rootfs. */
    public static final String QUADLET_DIR = "etc/containers/systemd";

    private static final String DOCKER = "/usr/bin/docker";

    private AutostartUnits() {
    }

    /**
     * One file per autostarted image of {@code manifest}, keyed by file name ({@code vbake-app.service}
     * for docker, {@code app.container} for podman), sorted by name; empty when nothing autostarts.
     *
     * @param imageRefByIndex for each autostarted image's {@link Image#index()}, what the engine should run:
     *                        the image ID ({@code sha256:...}) or a name the bake gave it
     * @throws IllegalArgumentException an autostarted image has no entry in {@code imageRefByIndex}
     */
    public static SortedMap<String, String> generate(BakeManifest manifest, Map<Integer, String> imageRefByIndex) {
        SortedMap<String, String> files = new TreeMap<>();
        for (Image image : manifest.autostarted()) {
            String imageRef = imageRefByIndex.get(image.index());
            if (imageRef == null || imageRef.isEmpty()) {
                throw new IllegalArgumentException("no image reference given for " + image.describe());
            }
            if (manifest.runtime() == RuntimeKind.DOCKER) {
                files.put(dockerUnitName(image), dockerUnit(image, imageRef));
            } else {
                files.put(quadletName(image), quadletFile(image, imageRef));
            }
        }
        return Collections.unmodifiableSortedMap(files);
    }

    /** The directory, relative to the target rootfs, that {@link #generate} output belongs in. */
    public static String installDir(RuntimeKind runtime) {
        return runtime == RuntimeKind.DOCKER ? SYSTEMD_UNIT_DIR : QUADLET_DIR;
    }

    /** What a rootfs recipe must do with the generated files so that they start at boot. */
    public static String enableHint(RuntimeKind runtime) {
        if (runtime == RuntimeKind.DOCKER) {
            return "install each vbake-<name>.service into /" + SYSTEMD_UNIT_DIR + "/ and enable it: a symlink "
                    + "/" + SYSTEMD_UNIT_DIR + "/multi-user.target.wants/vbake-<name>.service -> ../vbake-<name>.service "
                    + "(what 'systemctl --root=<rootfs> enable' creates); docker.service must be enabled too";
        }
        return "install each vbake-<name>.container into /" + QUADLET_DIR + "/; no enable step or symlink is needed: "
                + "podman's Quadlet generator turns it into vbake-<name>.service at boot and applies its [Install] "
                + "section itself ('systemctl enable' does not work on generated units)";
    }

    static String dockerUnitName(Image image) {
        return "vbake-" + image.containerName() + ".service";
    }

    static String quadletName(Image image) {
        // Prefixed like the docker units: a container called sshd must not shadow sshd.service.
        return "vbake-" + image.containerName() + ".container";
    }

    private static String dockerUnit(Image image, String imageRef) {
        String name = image.containerName();
        Run run = image.run();
        List<String> argv = new ArrayList<>(List.of(DOCKER, "run", "--rm", "--name", name));
        run.env().forEach((key, value) -> {
            argv.add("--env");
            argv.add(key + "=" + value);
        });
        run.volumes().forEach(v -> {
            argv.add("-v");
            argv.add(v);
        });
        run.ports().forEach(p -> {
            argv.add("-p");
            argv.add(p);
        });
        argv.addAll(run.args());
        argv.add(imageRef);
        argv.addAll(run.command());

        StringBuilder unit = new StringBuilder();
        header(unit, image);
        unit.append("After=docker.service\n");
        unit.append("Requires=docker.service\n");
        unit.append("\n[Service]\n");
        // Leftovers of an unclean shutdown would make "docker run --name" fail; "-" ignores "no such container".
        unit.append("ExecStartPre=-").append(commandLine(List.of(DOCKER, "rm", "-f", name))).append('\n');
        unit.append("ExecStart=").append(commandLine(argv)).append('\n');
        unit.append("ExecStop=").append(commandLine(List.of(DOCKER, "stop", name))).append('\n');
        restart(unit, image.autostart());
        unit.append("\n[Install]\n");
        unit.append("WantedBy=multi-user.target\n");
        return unit.toString();
    }

    private static String quadletFile(Image image, String imageRef) {
        Run run = image.run();
        StringBuilder unit = new StringBuilder();
        header(unit, image);
        unit.append("\n[Container]\n");
        unit.append("Image=").append(escapeExpansions(imageRef)).append('\n');
        unit.append("ContainerName=").append(image.containerName()).append('\n');
        run.env().forEach((key, value) -> unit.append("Environment=").append(quote(key + "=" + value)).append('\n'));
        // Quadlet copies Image=, Volume= and PublishPort= into ExecStart= unquoted (the reader rejects
        // whitespace in volumes and ports), so only the expansions need escaping.
        run.volumes().forEach(v -> unit.append("Volume=").append(escapeExpansions(v)).append('\n'));
        run.ports().forEach(p -> unit.append("PublishPort=").append(escapeExpansions(p)).append('\n'));
        if (!run.args().isEmpty()) {
            unit.append("PodmanArgs=").append(commandLine(run.args())).append('\n');
        }
        if (!run.command().isEmpty()) {
            unit.append("Exec=").append(commandLine(run.command())).append('\n');
        }
        unit.append("\n[Service]\n");
        restart(unit, image.autostart());
        unit.append("\n[Install]\n");
        unit.append("WantedBy=multi-user.target default.target\n");
        return unit.toString();
    }

    private static void header(StringBuilder unit, Image image) {
        unit.append("# Generated by vbake bake for ").append(escapeComment(image.describe())).append(".\n");
        unit.append("[Unit]\n");
        unit.append("Description=vbake autostart container ").append(image.containerName()).append('\n');
    }

    private static void restart(StringBuilder unit, Autostart autostart) {
        switch (autostart) {
            case ALWAYS:
                unit.append("Restart=always\n");
                break;
            case UNLESS_STOPPED:
                unit.append("# unless-stopped: systemd has no such policy. Restart=always restarts the container\n");
                unit.append("# whenever it exits; 'systemctl stop' keeps it down, but only until the next boot.\n");
                unit.append("Restart=always\n");
                break;
            case ON_FAILURE:
                unit.append("Restart=on-failure\n");
                break;
            default:
                throw new IllegalArgumentException("not autostarted: " + autostart);
        }
    }

    /** Arguments as one systemd command line (ExecStart=, Quadlet Exec= and PodmanArgs=). */
    static String commandLine(List<String> argv) {
        StringBuilder line = new StringBuilder();
        for (String arg : argv) {
            if (line.length() > 0) {
                line.append(' ');
            }
            line.append(quote(arg));
        }
        return line.toString();
    }

    /**
     * One argument written so that systemd reads it back unchanged: '%' and '$' doubled (specifiers and
     * variable expansion happen even inside quotes), and double quotes with C escapes around anything
     * with whitespace, quotes, backslashes or ';' (a lone ';' would separate commands), or when empty.
     */
    static String quote(String arg) {
        String escaped = escapeExpansions(arg);
        boolean plain = !escaped.isEmpty() && escaped.chars()
                .noneMatch(c -> Character.isWhitespace(c) || c == '"' || c == '\'' || c == '\\' || c == ';');
        if (plain) {
            return escaped;
        }
        return '"' + escaped.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
    }

    /** Values systemd would otherwise expand: '%' specifiers and '$' variables, both in ExecStart=. */
    private static String escapeExpansions(String value) {
        return value.replace("%", "%%").replace("$", "$$");
    }

    private static String escapeComment(String text) {
        return text.replaceAll("\\p{Cntrl}", "?");
    }
}
