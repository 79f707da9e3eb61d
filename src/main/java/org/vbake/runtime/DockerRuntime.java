package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.RuntimeKind;

/** dockerd with overlay2 on the state disk; containerd is started by dockerd itself. */
final class DockerRuntime implements ContainerRuntime {

    static final String DATA_ROOT = "/var/lib/docker";
    static final String SOCKET = "/var/run/docker.sock";

    @Override
    public RuntimeKind kind() {
        return RuntimeKind.DOCKER;
    }

    @Override
    public String cli() {
        return "docker";
    }

    @Override
    public String storagePath() {
        return DATA_ROOT;
    }

    @Override
    public EngineRequest engine(long timeoutMillis) {
        // The guest has no network: no iptables rules or default bridge to set up, which also
        // saves seconds of TCG time at start-up. Containers get network "none" unless told otherwise.
        List<String> argv = List.of("dockerd",
                "--data-root=" + DATA_ROOT,
                "--host=unix://" + SOCKET,
                "--storage-driver=overlay2",
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
}
