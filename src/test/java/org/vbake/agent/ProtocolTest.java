package org.vbake.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ProtocolTest {

    private static Frame exec(String json) {
        return new Frame(FrameType.EXEC, 5, json.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void outputWindowIsSetAndEverythingElsePassesThrough() throws Exception {
        byte[] out = Protocol.withOutputWindow(
                exec("{\"argv\":[\"sh\",\"-c\",\"x\"],\"stdin\":true,\"tty\":true,\"rows\":3,\"later\":{\"k\":[1]}}"), 4096);
        assertThat(new String(out, StandardCharsets.UTF_8)).isEqualTo(
                "{\"argv\":[\"sh\",\"-c\",\"x\"],\"stdin\":true,\"tty\":true,\"rows\":3,\"later\":{\"k\":[1]},"
                        + "\"outputWindow\":4096}");
    }

    @Test
    void aClientsOwnOutputWindowIsReplaced() throws Exception {
        byte[] out = Protocol.withOutputWindow(exec("{\"argv\":[\"true\"],\"outputWindow\":0}"), 1 << 22);
        assertThat(new String(out, StandardCharsets.UTF_8)).isEqualTo("{\"argv\":[\"true\"],\"outputWindow\":4194304}");
    }

    @Test
    void anExecThatIsNoJsonObjectIsAProtocolError() {
        assertThatThrownBy(() -> Protocol.withOutputWindow(exec("[\"argv\"]"), 1))
                .isInstanceOf(AgentProtocolException.class).hasMessageContaining("malformed EXEC payload");
        assertThatThrownBy(() -> Protocol.withOutputWindow(exec("{\"argv\":"), 1))
                .isInstanceOf(AgentProtocolException.class).hasMessageContaining("malformed EXEC payload");
    }
}
