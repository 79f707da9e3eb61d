package org.vbake.runtime.podman;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.image.registry.ImageRef;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.runtime.HostTreeWriter;

/** podman has no daemon: each command opens the storage itself (configured in /etc/containers). */
public final class PodmanRuntime implements ContainerRuntime {

    static final String GRAPH_ROOT = "/var/lib/containers/storage";

    private final String driver;

    PodmanRuntime(String driver) {
        this.driver = driver;
    }

    /** Registered in META-INF/services. */
    public static final class Provider implements ContainerRuntime.Engine {
        @Override
        public RuntimeKind kind() {
            return RuntimeKind.PODMAN;
        }

        @Override
        public List<String> drivers() {
            return List.of("overlay", "vfs");
        }

        @Override
        public ContainerRuntime create(String driver) {
            return new PodmanRuntime(driver);
        }

        @Override
        public String alias(String driver) {
            return driver.equals("overlay2") ? "overlay" : null;
        }
    }

    @Override
    public RuntimeKind kind() {
        return RuntimeKind.PODMAN;
    }

    @Override
    public String cli() {
        return "podman";
    }

    @Override
    public List<String> cliGlobalArgs() {
        return driver.equals("overlay") ? List.of() : List.of("--storage-driver=" + driver);
    }

    @Override
    public String storagePath() {
        return GRAPH_ROOT;
    }

    @Override
    public String driver() {
        return driver;
    }

    @Override
    public EngineRequest engine(long timeoutMillis, boolean network) {
        // No daemon. A resident guest's init gives podman the netavark bridge (containers.conf.d).
        return new EngineRequest(List.of(), List.of(), null, null, timeoutMillis);
    }

    @Override
    public List<String> requiredDirs() {
        // containers.conf puts image copies in the graphroot's tmp/ (image_copy_tmp_dir = "storage"),
        // on the state disk rather than in RAM; podman does not create it.
        return List.of(GRAPH_ROOT + "/tmp");
    }

    @Override
    public List<String> cliEnv() {
        return List.of();
    }

    @Override
    public List<String> exportExcludes() {
        // The libpod database records this guest's paths and network backend; the target's
        // podman creates its own. tmp/ holds half-finished pulls.
        return List.of("lost+found", "libpod/bolt_state.db", "db.sql", "tmp", "defaultNetworkBackend",
                "overlay/backingFsBlockDev", "vfs/backingFsBlockDev", TRANSFER_DIR);
    }

    @Override
    public String storageConf() {
        return "# Written by vbake for the exported container storage; install as /etc/containers/storage.conf.\n"
                + "[storage]\n"
                + "driver = \"" + driver + "\"\n"
                + "graphroot = \"" + GRAPH_ROOT + "\"\n"
                + "runroot = \"/run/containers/storage\"\n";
    }

    @Override
    public ImageTransfer imageTransfer() {
        return ImageTransfer.OCI_LAYOUT;
    }

    @Override
    public String localName(String fullRef) {
        try {
            return ImageRef.parse(fullRef).toString();
        } catch (BadInputException e) {
            return fullRef;
        }
    }

    @Override
    public List<String> untagArgs(String imageId, String name) {
        return List.of("untag", imageId, name);
    }

    @Override
    public boolean exportsContainersAlways() {
        return true;
    }

    @Override
    public String unitDirName() {
        return "quadlet";
    }

    @Override
    public HostTreeWriter hostWriter(String suite) {
        return PodmanTreeWriter.forSuite(suite, driver);
    }
}
