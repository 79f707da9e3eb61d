package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.RuntimeKind;

/** podman has no daemon: each command opens the storage itself (configured in /etc/containers). */
final class PodmanRuntime implements ContainerRuntime {

    static final String GRAPH_ROOT = "/var/lib/containers/storage";

    private final String driver;

    PodmanRuntime(String driver) {
        this.driver = driver;
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
    public EngineRequest engine(long timeoutMillis) {
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
}
