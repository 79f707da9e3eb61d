package org.vbake.runtime;

import java.util.List;
import java.util.ServiceLoader;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.storage.StoreKind;

/**
 * Everything that differs between docker and podman, asked of the engine instead of branched on:
 * the CLI, where the engine keeps its storage (the state disk is mounted there), its storage
 * driver, how the engine is started and known to be ready, how images reach it and get their
 * names, which parts of the storage tree are runtime-only and so stay out of an export, and the
 * host-side writer of its storage tree. Each engine has its home in a package of its own
 * ({@code runtime.docker}, {@code runtime.podman}), found through {@link Engine}.
 */
public interface ContainerRuntime {

    /**
     * A directory at the top of the state disk, left alone by the engines and never exported,
     * where host files are copied for a resident guest (inputs, volumes). Not under the engines'
     * {@code tmp/}, which dockerd empties when it starts.
     */
    String TRANSFER_DIR = ".vbake-transfer";

    /**
     * Where the guest pulls staged OCI layouts from (a symlink per image, {@code image-N} for the
     * bake's N-th image): podman 4 names a pulled image after this path, so it must not vary.
     */
    String LAYOUT_PULL_DIR = "/run/vbake-pull";

    RuntimeKind kind();

    /** The engine's CLI in the guest: {@code docker} or {@code podman}. */
    String cli();

    /** Global options that go before every CLI command (podman's storage driver). */
    List<String> cliGlobalArgs();

    /** Absolute guest path the state disk is mounted on. */
    String storagePath();

    /** The storage driver in use: overlay2/vfs (docker), overlay/vfs (podman). */
    String driver();

    /**
     * What the agent starts at boot (an empty argv for daemonless engines).
     *
     * @param network the guest has a NIC (a resident guest): containers get the engine's default
     *                bridge and published ports; without one they get loopback only
     */
    EngineRequest engine(long timeoutMillis, boolean network);

    /** Directories on the state disk the engine expects to exist before it starts (absolute guest paths). */
    default List<String> requiredDirs() {
        return List.of();
    }

    /** Environment for every CLI command in the guest. */
    List<String> cliEnv();

    /**
     * Paths under {@link #storagePath()} (relative, no leading slash) that a rootfs must not get:
     * runtime state, host-specific identity, caches and the state disk's own lost+found.
     */
    List<String> exportExcludes();

    /**
     * True when the driver unpacks each layer into an empty directory of its own (overlay), so a
     * hardlink in a layer can only name a file of the same layer; vfs starts from a copy of the
     * layers below.
     */
    default boolean layersUnpackedAlone() {
        return !driver().equals("vfs");
    }

    /** The most layers an image may have in this engine. */
    default int maxLayers() {
        return Integer.MAX_VALUE;
    }

    /**
     * Options for the agent's {@code export-tree} beyond the excludes: how to leave the engine's
     * containers out of an export unless {@code withContainers}.
     */
    default List<String> exportOptions(boolean withContainers) {
        return List.of();
    }

    /**
     * The engine configuration a target needs to open an exported tree with the driver it was
     * made with (podman's storage.conf), or null when the engine needs none (docker).
     */
    default String storageConf() {
        return null;
    }

    /** How images reach the engine: the form they are staged in and the command that loads them. */
    enum ImageTransfer {
        /** A {@code docker save} archive with the layers uncompressed, loaded with {@code load -i}. */
        DOCKER_ARCHIVE,
        /** An OCI layout holding the original manifest and blobs, loaded with {@code pull oci:DIR}. */
        OCI_LAYOUT
    }

    ImageTransfer imageTransfer();

    /** The engine and driver as a storage tree shows them. */
    default StoreKind storeKind() {
        return StoreKind.of(kind(), driver());
    }

    /** The name the engine's CLI shows and takes for a full reference: docker's short form, podman's full one. */
    String localName(String fullRef);

    /** The CLI arguments that take one name off an image (not the image itself). */
    List<String> untagArgs(String imageId, String name);

    /**
     * Whether the engine's containers stay in an export whatever is asked (podman keeps them in
     * the same JSON files as the images).
     */
    default boolean exportsContainersAlways() {
        return false;
    }

    /** The directory beside a bake's tree that its autostart units go in: {@code systemd}, {@code quadlet}. */
    String unitDirName();

    /**
     * The writer of this engine's storage tree on the host for the engine version of a guest suite
     * ({@code trixie}, {@code bookworm}), or null where there is none.
     */
    default HostTreeWriter hostWriter(String suite) {
        return null;
    }

    /** An engine's home: registered in META-INF/services, so this package knows none of them. */
    interface Engine {
        RuntimeKind kind();

        /** The storage drivers it supports, default first. */
        List<String> drivers();

        ContainerRuntime create(String driver);

        /** A driver name from another engine that means the same here, or null. */
        default String alias(String driver) {
            return null;
        }
    }

    static ContainerRuntime of(RuntimeKind kind) {
        try {
            return of(kind, null);
        } catch (BadInputException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The runtime with a chosen storage driver; null picks the default. */
    static ContainerRuntime of(RuntimeKind kind, String driver) throws BadInputException {
        Engine engine = engine(kind);
        List<String> drivers = engine.drivers();
        if (driver == null) {
            return engine.create(drivers.get(0));
        }
        String d = engine.alias(driver) != null ? engine.alias(driver) : driver;
        if (!drivers.contains(d)) {
            throw new BadInputException("unknown " + kind.id() + " storage driver '" + driver + "'",
                    "choose " + drivers.get(0) + " (default) or " + String.join(", ", drivers.subList(1, drivers.size())));
        }
        return engine.create(d);
    }

    /** The storage drivers {@code kind} supports, default first. */
    static List<String> drivers(RuntimeKind kind) {
        return engine(kind).drivers();
    }

    private static Engine engine(RuntimeKind kind) {
        for (Engine e : ServiceLoader.load(Engine.class, ContainerRuntime.class.getClassLoader())) {
            if (e.kind() == kind) {
                return e;
            }
        }
        throw new IllegalStateException("no engine registered for " + kind + " (META-INF/services)");
    }
}
