package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.RuntimeKind;

/** dockerd on the state disk (overlay2 or vfs); containerd is started by dockerd itself. */
final class DockerRuntime implements ContainerRuntime {

    static final String DATA_ROOT = "/var/lib/docker";
    static final String SOCKET = "/var/run/docker.sock";

    private final String driver;

    DockerRuntime(String driver) {
        this.driver = driver;
    }

    @Override
    public RuntimeKind kind() {
        return RuntimeKind.DOCKER;
    }

    @Override
    public String cli() {
        return "docker";
    }

    @Override
    public List<String> cliGlobalArgs() {
        return List.of();
    }

    @Override
    public String storagePath() {
        return DATA_ROOT;
    }

    @Override
    public String driver() {
        return driver;
    }

    @Override
    public EngineRequest engine(long timeoutMillis) {
        // Cold guests have no network device, and a resident guest's containers share its own
        // (-p forwards to the guest): no iptables rules or default bridge to set up, which also
        // saves seconds of TCG time at start-up. Containers get network "none" unless told otherwise.
        List<String> argv = List.of("dockerd",
                "--data-root=" + DATA_ROOT,
                "--host=unix://" + SOCKET,
                "--storage-driver=" + driver,
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--userland-proxy=false",
                "--log-level=warn");
        return new EngineRequest(argv, List.of(), SOCKET, "/_ping", timeoutMillis);
    }

    @Override
    public List<String> cliEnv() {
        return List.of("DOCKER_HOST=unix://" + SOCKET);
    }

    /** moby's layer store refuses deeper chains (layer/layer_store.go, maxLayerDepth), after the work. */
    static final int MAX_LAYERS = 125;

    @Override
    public int maxLayers() {
        return MAX_LAYERS;
    }

    @Override
    public List<String> exportOptions(boolean withContainers) {
        // The agent reads which layers belong to containers from layerdb/mounts itself.
        return withContainers ? List.of() : List.of("--docker-containers", driver);
    }

    @Override
    public List<String> exportExcludes() {
        // runtimes/, tmp/, the containerd state of the daemon-managed containerd and network/
        // (which holds this guest's networks) are rebuilt by the target's dockerd; engine-id
        // must be unique per device; buildkit/ is a build cache.
        return List.of("lost+found", "runtimes", "tmp", "containerd", "network", "engine-id", "buildkit",
                "swarm", "overlay2/backingFsBlockDev", "vfs/backingFsBlockDev", "volumes/backingFsBlockDev", TRANSFER_DIR);
    }
}
