package org.vbake.agent;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;

/**
 * The JSON payloads of agent protocol version 1 (docs/agent-protocol.md), as Jackson records.
 * They mirror the wire and nothing else, so domain types can change without touching the
 * protocol. Optional fields are nullable boxes, left out of the JSON when null, and unknown
 * fields are ignored: that is how the protocol grows without a version bump.
 */
public final class Protocol {

    /** The protocol version this client speaks. */
    public static final int VERSION = 1;

    // One mapper for the whole protocol: it is thread-safe once configured and never exposed,
    // so nobody can reconfigure it under the reader thread.
    private static final ObjectMapper MAPPER = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    private Protocol() {
    }

    /**
     * HELLO in both directions. The host sets {@code client}; the agent answers with
     * {@code agent}, {@code arch}, {@code kernel} and {@code uptimeMillis}.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Hello(int protocol, String client, String agent, String arch, String kernel,
            Long uptimeMillis) {

        public static Hello fromClient(String client) {
            return new Hello(VERSION, client, null, null, null, null);
        }
    }

    /**
     * EXEC: run {@code argv} directly (no shell). {@code env} entries are {@code K=V} added to the
     * agent's environment; {@code cwd} null means the agent's default ({@code /}).
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ExecRequest(List<String> argv, List<String> env, String cwd, boolean stdin, Boolean tty,
            Integer rows, Integer cols) {

        public ExecRequest {
            if (argv == null || argv.isEmpty()) {
                throw new IllegalArgumentException("argv must name a program");
            }
            argv = List.copyOf(argv);
            env = env == null ? null : List.copyOf(env);
        }

        public ExecRequest(List<String> argv, List<String> env, String cwd, boolean stdin) {
            this(argv, env, cwd, stdin, null, null, null);
        }

        /** A command without extra environment, in {@code /}, with stdin from /dev/null. */
        public static ExecRequest of(String... argv) {
            return new ExecRequest(Arrays.asList(argv), null, null, false);
        }

        public ExecRequest withEnv(List<String> newEnv) {
            return new ExecRequest(argv, newEnv, cwd, stdin, tty, rows, cols);
        }

        public ExecRequest withCwd(String newCwd) {
            return new ExecRequest(argv, env, newCwd, stdin, tty, rows, cols);
        }

        public ExecRequest withStdin(boolean newStdin) {
            return new ExecRequest(argv, env, cwd, newStdin, tty, rows, cols);
        }

        /**
         * On a pseudo-terminal of {@code rows} x {@code cols} (0 = unknown): stdout and stderr
         * both arrive as STDOUT, and the command is a session leader with it as controlling tty.
         */
        public ExecRequest withTty(int newRows, int newCols) {
            return new ExecRequest(argv, env, cwd, true, Boolean.TRUE, newRows > 0 ? newRows : null,
                    newCols > 0 ? newCols : null);
        }

        public boolean ttyRequested() {
            return Boolean.TRUE.equals(tty);
        }
    }

    /** RESIZE: a tty command's new window size. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Resize(int rows, int cols) {
    }

    /**
     * EXIT, the last frame of a channel. {@code signal} is set when the command died of a signal
     * ({@code code} is then 128+signal); {@code error} when it could not be started
     * ({@code code} 126 or 127).
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ExitStatus(int code, Integer signal, String error) {

        public boolean succeeded() {
            return code == 0 && error == null;
        }
    }

    /** SIGNAL: a Linux signal number for the command's process group (2 = SIGINT, 9 = SIGKILL). */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record SignalRequest(int signal) {
    }

    /** WINDOW: the agent wrote {@code bytes} more bytes of STDIN to the command. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Window(long bytes) {
    }

    /**
     * ENGINE: start the container engine and report when {@code socket} (and, if set,
     * {@code httpPath} on it) answers. An empty {@code argv} starts nothing and only probes.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record EngineRequest(List<String> argv, List<String> env, String socket, String httpPath,
            long timeoutMillis, Boolean stop) {

        public EngineRequest {
            argv = argv == null ? List.of() : List.copyOf(argv);
            env = env == null ? null : List.copyOf(env);
        }

        public EngineRequest(List<String> argv, List<String> env, String socket, String httpPath, long timeoutMillis) {
            this(argv, env, socket, httpPath, timeoutMillis, null);
        }

        /** Stops the running engine (SIGTERM, then SIGKILL); the reply comes once it has exited. */
        public static EngineRequest stopRequest(long timeoutMillis) {
            return new EngineRequest(List.of(), null, null, null, timeoutMillis, Boolean.TRUE);
        }

        public boolean stopping() {
            return Boolean.TRUE.equals(stop);
        }
    }

    /** ENGINE_READY: {@code millis} until ready when ok, otherwise a {@code message}. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record EngineReady(boolean ok, Long millis, String message) {
    }

    /** The agent's POWEROFF reply, sent just before it powers the guest off. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record PowerOffReply(boolean ok, String message) {
    }

    /**
     * LOCK, resident daemon only: {@code hold} true asks for the guest to oneself (other clients'
     * new commands wait, running ones are waited for), false gives it back. The reply echoes
     * {@code hold} with {@code ok}.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record LockRequest(boolean hold, Boolean ok, String message) {
    }

    /** STATUS, resident daemon only: what {@code vmemres status} shows. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record DaemonStatus(long pid, Long qemuPid, String arch, String runtime, String suite, int memoryMb,
            int cpus, long startedMillis, long lastActivityMillis, int clients, int commands, Long qemuRssKb,
            Long idleTimeoutSeconds, String stateDir) {
    }

    /**
     * FORWARD, resident daemon only: forward {@code 127.0.0.1:hostPort} on the host to
     * {@code guestPort} in the guest ({@code protocol} tcp or udp). The reply echoes it with
     * {@code ok} and, on failure, {@code message}.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Forward(String protocol, int hostPort, int guestPort, Boolean ok, String message) {
    }

    /** ERROR: the agent found a protocol error in something the host sent. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record ErrorMessage(String message) {
    }

    public static byte[] toJson(Object message) {
        try {
            return MAPPER.writeValueAsBytes(message);
        } catch (IOException e) {
            // Only our own records go through here; failing to serialise them is a bug.
            throw new IllegalStateException("cannot serialise " + message, e);
        }
    }

    /** Decodes a control frame's payload; malformed JSON means the peers disagree on the wire. */
    public static <T> T fromJson(Frame frame, Class<T> type) throws AgentProtocolException {
        try {
            T value = MAPPER.readValue(frame.payload(), type);
            if (value == null) {
                throw new AgentProtocolException("malformed " + frame.type() + " payload: null");
            }
            return value;
        } catch (IOException e) {
            throw new AgentProtocolException("malformed " + frame.type() + " payload "
                    + abbreviate(frame.payloadText()) + ": " + (e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage()), e);
        }
    }

    /**
     * A client's EXEC payload with {@code outputWindow} set: the agent then sends at most that
     * many bytes of the command's output ahead of the WINDOW frames that acknowledge it. Other
     * fields pass through untouched, including ones this version does not know.
     */
    public static byte[] withOutputWindow(Frame exec, long window) throws AgentProtocolException {
        try {
            com.fasterxml.jackson.databind.JsonNode tree = MAPPER.readTree(exec.payload());
            if (!(tree instanceof com.fasterxml.jackson.databind.node.ObjectNode object)) {
                throw new AgentProtocolException("malformed EXEC payload " + abbreviate(exec.payloadText()));
            }
            object.put("outputWindow", window);
            return MAPPER.writeValueAsBytes(object);
        } catch (IOException e) {
            throw new AgentProtocolException("malformed EXEC payload " + abbreviate(exec.payloadText()), e);
        }
    }

    private static String abbreviate(String s) {
        return s.length() > 200 ? s.substring(0, 200) + "..." : s;
    }
}
