package org.vbake.bake;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.stream.Collectors;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/**
 * What {@code vbake bake} is asked to build: the images to put into one container storage tree and
 * which of them start at boot. Read and validated by {@link BakeManifestReader}, so every field here
 * is already known to be usable.
 *
 * @param file    the manifest as the user named it; error messages start with it
 * @param arch    the architecture of the target rootfs
 * @param runtime the engine whose storage tree is baked
 * @param driver  the storage driver asked for, or null for the engine's default ({@link #driverOrDefault()})
 * @param output  how the storage tree is packed
 * @param suite   the Debian suite of the guest whose engine version the tree is for: trixie
 *                (docker 26.1, podman 5.4; the default) or bookworm (docker 20.10, podman 4.3)
 * @param size    {@code output: ext4} only: the image size asked for in bytes, or null for the
 *                tree's minimum plus a margin
 * @param images  in manifest order; {@link Image#index()} is the position in this list. A compose
 *                entry's service images follow the entries, once each
 * @param stacks  the compose stacks ({@code compose:} entries), in manifest order
 */
public record BakeManifest(Path file, Arch arch, RuntimeKind runtime, String driver, Output output, String suite,
        Long size, List<Image> images, List<ComposeStack> stacks) {

    public BakeManifest {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(arch, "arch");
        Objects.requireNonNull(runtime, "runtime");
        Objects.requireNonNull(output, "output");
        Objects.requireNonNull(suite, "suite");
        images = List.copyOf(images);
        stacks = stacks == null ? List.of() : List.copyOf(stacks);
    }

    /** The guest suites a bake can target, the default first. */
    public static final List<String> SUITES = List.of("trixie", "bookworm");

    /** The storage drivers a bake can produce for {@code runtime}; the first is the default. */
    public static List<String> drivers(RuntimeKind runtime) {
        return org.vbake.runtime.ContainerRuntime.drivers(runtime);
    }

    /** {@link #driver()}, or the runtime's default: overlay2 for docker, overlay for podman. */
    public String driverOrDefault() {
        return driver != null ? driver : drivers(runtime).get(0);
    }

    /** The images that get a generated unit started at boot (autostarted, no unit of their own), in manifest order. */
    public List<Image> autostarted() {
        return images.stream().filter(i -> i.autostarts() && i.unit() == null).collect(Collectors.toUnmodifiableList());
    }

    /** {@code bake.yaml:12}: where {@code image} is declared, to start a message about it. */
    public String location(Image image) {
        return file + ":" + image.line();
    }

    /** How the baked storage tree is packed; {@link #id()} is what the manifest says. */
    public enum Output {
        TAR("tar"),
        TAR_GZ("tar.gz"),
        TAR_ZST("tar.zst"),
        /** A reproducible ext4 partition image of the tree ({@code storage.ext4}). */
        EXT4("ext4");

        private final String id;

        Output(String id) {
            this.id = id;
        }

        /** {@code tar.zst}: the manifest spelling, also the file name suffix. */
        public String id() {
            return id;
        }

        public static Optional<Output> parse(String text) {
            return Arrays.stream(values()).filter(o -> o.id.equals(text)).findFirst();
        }

        public static String choices() {
            return Arrays.stream(values()).map(Output::id).collect(Collectors.joining(", "));
        }

        @Override
        public String toString() {
            return id;
        }
    }

    /** Where an image comes from; {@link #key()} is the manifest key that names it. */
    public enum SourceKind {
        /** Pulled from a registry. */
        REF("ref"),
        /** An OCI image layout directory. */
        OCI("oci"),
        /** A tar of an OCI image layout. */
        OCI_ARCHIVE("oci-archive"),
        /** A {@code docker save} tar. */
        DOCKER_ARCHIVE("docker-archive"),
        /** A root filesystem directory or tarball, made into a one-layer image on the host. */
        ROOTFS("rootfs");

        private final String key;

        SourceKind(String key) {
            this.key = key;
        }

        public String key() {
            return key;
        }

        /** True for the sources that are files or directories on the host. */
        public boolean isLocal() {
            return this != REF;
        }

        public static Optional<SourceKind> ofKey(String key) {
            return Arrays.stream(values()).filter(k -> k.key.equals(key)).findFirst();
        }

        public static String keys() {
            return Arrays.stream(values()).map(SourceKind::key).collect(Collectors.joining(", "));
        }

        @Override
        public String toString() {
            return key;
        }
    }

    /**
     * Whether and how an image's container starts at boot. The names are docker's restart policies,
     * which is what people know; {@link AutostartUnits} maps them onto systemd's Restart=.
     */
    public enum Autostart {
        NO("no"),
        ALWAYS("always"),
        UNLESS_STOPPED("unless-stopped"),
        ON_FAILURE("on-failure");

        private final String id;

        Autostart(String id) {
            this.id = id;
        }

        public String id() {
            return id;
        }

        public static Optional<Autostart> parse(String text) {
            return Arrays.stream(values()).filter(a -> a.id.equals(text)).findFirst();
        }

        public static String choices() {
            return Arrays.stream(values()).map(Autostart::id).collect(Collectors.joining(", "));
        }

        @Override
        public String toString() {
            return id;
        }
    }

    /**
     * One entry of {@code images:}.
     *
     * @param index         position in {@link BakeManifest#images()}, as in {@code images[1]}
     * @param line          1-based line of the entry in the manifest
     * @param kind          which source key the entry used
     * @param source        that key's value as written: the reference, or the path before resolving
     * @param path          for local sources the absolute, normalised path (known to exist); null for {@link SourceKind#REF}
     * @param name          the name given to a local image ({@code name:}); null for refs and for
     *                      docker-archives that rely on their own RepoTags
     * @param tags          extra names, in manifest order; validated references without digest
     * @param allowUnpinned whether a ref was allowed to lack a digest
     * @param autostart     {@link Autostart#NO} unless the entry says otherwise
     * @param run           never null; for autostarted images {@link Run#name()} is the resolved container name
     * @param command       for {@link SourceKind#ROOTFS}: the image's default command (its config Cmd); else empty
     * @param unit          a unit the user wrote for the image ({@code unit:}, a {@code .service} for
     *                      docker or a {@code .container} for podman; absolute, known to exist), installed
     *                      as it is instead of a generated one; null for none
     */
    public record Image(int index, int line, SourceKind kind, String source, Path path, String name,
            List<String> tags, boolean allowUnpinned, Autostart autostart, Run run, List<String> command, Path unit) {

        public Image(int index, int line, SourceKind kind, String source, Path path, String name,
                List<String> tags, boolean allowUnpinned, Autostart autostart, Run run) {
            this(index, line, kind, source, path, name, tags, allowUnpinned, autostart, run, List.of(), null);
        }

        public Image(int index, int line, SourceKind kind, String source, Path path, String name,
                List<String> tags, boolean allowUnpinned, Autostart autostart, Run run, List<String> command) {
            this(index, line, kind, source, path, name, tags, allowUnpinned, autostart, run, command, null);
        }

        public Image {
            Objects.requireNonNull(kind, "kind");
            Objects.requireNonNull(source, "source");
            Objects.requireNonNull(autostart, "autostart");
            Objects.requireNonNull(run, "run");
            if (kind.isLocal() != (path != null)) {
                throw new IllegalArgumentException("path must be given exactly for local sources: " + kind);
            }
            tags = List.copyOf(tags);
            command = command == null ? List.of() : List.copyOf(command);
        }

        /** The registry reference for {@link SourceKind#REF}, else null. */
        public String ref() {
            return kind == SourceKind.REF ? source : null;
        }

        public boolean autostarts() {
            return autostart != Autostart.NO;
        }

        /** For autostarted images: the container's name (given or derived); null otherwise. */
        public String containerName() {
            return autostarts() ? run.name() : null;
        }

        /** {@code images[1] (oci images/app-oci)}: names the entry in messages about it. */
        public String describe() {
            return "images[" + index + "] (" + kind.key() + " " + source + ")";
        }
    }

    /**
     * How an autostarted container runs. Strings are passed to the engine as they are, one argument each.
     *
     * @param name    the container name; resolved for autostarted images, as given (or null) otherwise
     * @param command replaces the image's CMD when not empty
     * @param env     in manifest order
     * @param volumes {@code -v} / {@code Volume=} values
     * @param ports   {@code -p} / {@code PublishPort=} values
     * @param args    extra engine run arguments, before the image
     */
    public record Run(String name, List<String> command, Map<String, String> env, List<String> volumes,
            List<String> ports, List<String> args) {

        public static final Run NONE = new Run(null, List.of(), Map.of(), List.of(), List.of(), List.of());

        public Run {
            command = List.copyOf(command);
            env = Collections.unmodifiableMap(new LinkedHashMap<>(env));
            volumes = List.copyOf(volumes);
            ports = List.copyOf(ports);
            args = List.copyOf(args);
        }

        public Run withName(String newName) {
            return new Run(newName, command, env, volumes, ports, args);
        }
    }
}
