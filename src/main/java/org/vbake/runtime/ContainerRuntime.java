package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;

/**
 * What differs between docker and podman in a guest: the CLI, where the engine keeps its storage
 * (the state disk is mounted there), its storage driver, how the engine is started and known to
 * be ready, and which parts of the storage tree are runtime-only and so stay out of an export.
 */
public interface ContainerRuntime {

    /**
     * A directory at the top of the state disk, left alone by the engines and never exported,
     * where host files are copied for a resident guest (inputs, volumes). Not under the engines'
     * {@code tmp/}, which dockerd empties when it starts.
     */
    String TRANSFER_DIR = ".vbake-transfer";

    RuntimeKind kind();

    /** The engine's CLI in the guest: {@code docker} or {@code podman}. */
    String cli();

    /** Global options that go before every CLI command (podman's storage driver). */
    List<String> cliGlobalArgs();

    /** Absolute guest path the state disk is mounted on. */
    String storagePath();

    /** The storage driver in use: overlay2/vfs (docker), overlay/vfs (podman). */
    String driver();

    /** What the agent starts at boot (an empty argv for daemonless engines). */
    EngineRequest engine(long timeoutMillis);

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

    static ContainerRuntime of(RuntimeKind kind) {
        return kind == RuntimeKind.DOCKER ? new DockerRuntime("overlay2") : new PodmanRuntime("overlay");
    }

    /** The runtime with a chosen storage driver; null picks the default. */
    static ContainerRuntime of(RuntimeKind kind, String driver) throws BadInputException {
        if (driver == null) {
            return of(kind);
        }
        if (kind == RuntimeKind.DOCKER) {
            if (!List.of("overlay2", "vfs").contains(driver)) {
                throw new BadInputException("unknown docker storage driver '" + driver + "'",
                        "choose overlay2 (default) or vfs");
            }
            return new DockerRuntime(driver);
        }
        if (driver.equals("overlay2")) {
            driver = "overlay";
        }
        if (!List.of("overlay", "vfs").contains(driver)) {
            throw new BadInputException("unknown podman storage driver '" + driver + "'",
                    "choose overlay (default) or vfs");
        }
        return new PodmanRuntime(driver);
    }
}
