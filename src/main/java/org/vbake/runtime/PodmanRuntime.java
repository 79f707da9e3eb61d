package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.RuntimeKind;

/** podman has no daemon: each command opens the storage itself (configured in /etc/containers). */
final class PodmanRuntime implements ContainerRuntime {

    static final String GRAPH_ROOT = "/var/lib/containers/storage";

    @Override
    public RuntimeKind kind() {
        return RuntimeKind.PODMAN;
    }

    @Override
    public String cli() {
        return "podman";
    }

    @Override
    public String storagePath() {
        return GRAPH_ROOT;
    }

    @Override
    public EngineRequest engine(long timeoutMillis) {
        return new EngineRequest(List.of(), List.of(), null, null, timeoutMillis);
    }

    @Override
    public List<String> cliEnv() {
        return List.of();
    }
}
