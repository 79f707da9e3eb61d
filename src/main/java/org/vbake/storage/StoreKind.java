package org.vbake.storage;

import org.vbake.api.RuntimeKind;

/**
 * An engine and the storage driver that wrote a storage tree, told from the tree's own paths. The
 * one place that knows which paths prove which kind: the normalizer, {@code --input-storage} and
 * {@code vbake verify} all ask it.
 */
public enum StoreKind {
    DOCKER_OVERLAY2(RuntimeKind.DOCKER, "overlay2"),
    DOCKER_VFS(RuntimeKind.DOCKER, "vfs"),
    PODMAN_OVERLAY(RuntimeKind.PODMAN, "overlay"),
    PODMAN_VFS(RuntimeKind.PODMAN, "vfs");

    private final RuntimeKind runtime;
    private final String driver;

    StoreKind(RuntimeKind runtime, String driver) {
        this.runtime = runtime;
        this.driver = driver;
    }

    public RuntimeKind runtime() {
        return runtime;
    }

    public boolean docker() {
        return runtime == RuntimeKind.DOCKER;
    }

    /** The storage driver's name as the engine spells it. */
    public String driver() {
        return driver;
    }

    public boolean overlay() {
        return driver.startsWith("overlay");
    }

    public static StoreKind of(RuntimeKind runtime, String driver) {
        for (StoreKind k : values()) {
            if (k.runtime == runtime && k.driver.equals(driver)) {
                return k;
            }
        }
        throw new IllegalArgumentException(runtime + " has no storage driver " + driver);
    }

    /**
     * The kind a path in a tree (relative, no "./") is proof of, or null: docker keeps
     * {@code image/DRIVER/}, containers/storage {@code DRIVER-layers/} and {@code DRIVER-images/}.
     */
    public static StoreKind evidence(String path) {
        String[] c = path.split("/", 3);
        if (c.length >= 3 && c[0].equals("image")) {
            return switch (c[1]) {
                case "overlay2" -> DOCKER_OVERLAY2;
                case "vfs" -> DOCKER_VFS;
                default -> null;
            };
        }
        return switch (c[0]) {
            case "overlay-layers", "overlay-images" -> PODMAN_OVERLAY;
            case "vfs-layers", "vfs-images" -> PODMAN_VFS;
            default -> null;
        };
    }

    @Override
    public String toString() {
        return runtime.id() + "/" + driver;
    }
}
