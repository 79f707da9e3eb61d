package org.vbake.runtime.docker;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.image.registry.ImageRef;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.runtime.HostTreeWriter;

/** dockerd on the state disk (overlay2 or vfs); containerd is started by dockerd itself. */
public final class DockerRuntime implements ContainerRuntime {

    static final String DATA_ROOT = "/var/lib/docker";
    static final String SOCKET = "/var/run/docker.sock";

    private final String driver;

    DockerRuntime(String driver) {
        this.driver = driver;
    }

    /** Registered in META-INF/services. */
    public static final class Provider implements ContainerRuntime.Engine {
        @Override
        public RuntimeKind kind() {
            return RuntimeKind.DOCKER;
        }

        @Override
        public List<String> drivers() {
            return List.of("overlay2", "vfs");
        }

        @Override
        public ContainerRuntime create(String driver) {
            return new DockerRuntime(driver);
        }
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
    public EngineRequest engine(long timeoutMillis, boolean network) {
        List<String> argv = new java.util.ArrayList<>(List.of("dockerd",
                "--data-root=" + DATA_ROOT,
                "--host=unix://" + SOCKET,
                "--storage-driver=" + driver,
                "--ip6tables=false",
                "--log-level=warn"));
        if (!network) {
            // A cold guest has no network device: no bridge, no iptables rules, no userland
            // proxies, and the seconds of TCG time they cost at start-up saved. Containers get
            // loopback only.
            argv.addAll(List.of("--iptables=false", "--bridge=none", "--userland-proxy=false"));
        }
        // A resident guest gets docker0 with its iptables (nft) rules, as on a real host:
        // -p publishes on the guest's address, where QEMU forwards the host's 127.0.0.1 port.
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

    @Override
    public ImageTransfer imageTransfer() {
        return ImageTransfer.DOCKER_ARCHIVE;
    }

    @Override
    public String localName(String fullRef) {
        try {
            ImageRef r = ImageRef.parse(fullRef);
            String name = familiar(r);
            String last = fullRef.substring(fullRef.lastIndexOf('/') + 1);
            if (r.digest() != null) {
                return fullRef.contains("@") && last.indexOf(':') < last.indexOf('@') && last.indexOf(':') >= 0
                        ? name + ":" + r.tag() + "@" + r.digest() : name + "@" + r.digest();
            }
            // A bare repository name stays one (parse would add "latest").
            return last.contains(":") ? name + ":" + r.tag() : name;
        } catch (BadInputException e) {
            return fullRef;
        }
    }

    /** docker's short form of a reference's name: {@code alpine}, {@code foo/bar}, {@code host:5000/x}. */
    public static String familiar(ImageRef ref) {
        if (ImageRef.DOCKER_HUB.equals(ref.registry())) {
            String repo = ref.repository();
            return repo.startsWith("library/") && repo.indexOf('/', 8) < 0 ? repo.substring(8) : repo;
        }
        return ref.registry() + "/" + ref.repository();
    }

    @Override
    public List<String> untagArgs(String imageId, String name) {
        // rmi of a name that is not the image's last one only removes the name.
        return List.of("rmi", name);
    }

    @Override
    public String unitDirName() {
        return "systemd";
    }

    @Override
    public HostTreeWriter hostWriter(String suite) {
        return DockerTreeWriter.forSuite(suite, driver);
    }
}
