package org.vbake.runtime;

import java.util.List;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.api.RuntimeKind;

/**
 * What differs between docker and podman in a guest: the CLI, where the engine keeps its storage
 * (the state disk is mounted there), and how the engine is started and known to be ready.
 */
public interface ContainerRuntime {

    RuntimeKind kind();

    /** The engine's CLI in the guest: {@code docker} or {@code podman}. */
    String cli();

    /** Absolute guest path the state disk is mounted on. */
    String storagePath();

    /** What the agent starts at boot (an empty argv for daemonless engines). */
    EngineRequest engine(long timeoutMillis);

    /** Environment for every CLI command in the guest. */
    List<String> cliEnv();

    static ContainerRuntime of(RuntimeKind kind) {
        return kind == RuntimeKind.DOCKER ? new DockerRuntime() : new PodmanRuntime();
    }
}
