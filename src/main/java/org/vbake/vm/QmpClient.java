package org.vbake.vm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * Just enough of the QEMU Machine Protocol: greeting and {@code qmp_capabilities}, then
 * commands one at a time ({@code quit}, {@code stop}/{@code cont}, migration to and from a file,
 * hot-plug, human monitor commands).
 */
public final class QmpClient {

    private static final ObjectMapper JSON = new ObjectMapper();

    private QmpClient() {
    }

    /** Sends {@code quit}. QEMU exits without waiting for the guest. */
    static void quit(Path socket) throws IOException {
        try (Connection c = open(socket)) {
            c.out().write("{\"execute\":\"quit\"}\n".getBytes(StandardCharsets.UTF_8));
            c.out().flush();
        }
    }

    /** A QMP connection past capability negotiation. */
    public record Connection(SocketChannel channel, BufferedReader in, OutputStream out) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            channel.close();
        }

        /** Runs {@code command} with {@code arguments} (may be null) and returns its "return" value. */
        public JsonNode execute(String command, com.fasterxml.jackson.databind.node.ObjectNode arguments)
                throws IOException {
            com.fasterxml.jackson.databind.node.ObjectNode cmd = JSON.createObjectNode();
            cmd.put("execute", command);
            if (arguments != null) {
                cmd.set("arguments", arguments);
            }
            out.write((JSON.writeValueAsString(cmd) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            try {
                return expect(in, "return").get("return");
            } catch (IOException e) {
                throw new IOException(command + ": " + e.getMessage(), e);
            }
        }

        public JsonNode execute(String command) throws IOException {
            return execute(command, null);
        }
    }

    /** An empty arguments object to fill in. */
    public static com.fasterxml.jackson.databind.node.ObjectNode args() {
        return JSON.createObjectNode();
    }

    /** Connects to QEMU's QMP socket; the caller closes the connection. */
    public static Connection connect(Path socket) throws IOException {
        return open(socket);
    }

    private static Connection open(Path socket) throws IOException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.connect(UnixDomainSocketAddress.of(socket));
            Connection c = new Connection(ch, new BufferedReader(new InputStreamReader(Channels.newInputStream(ch),
                    StandardCharsets.UTF_8)), Channels.newOutputStream(ch));
            expect(c.in(), "QMP");
            c.out().write("{\"execute\":\"qmp_capabilities\"}\n".getBytes(StandardCharsets.UTF_8));
            expect(c.in(), "return");
            return c;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /**
     * Runs a human monitor command (e.g. {@code hostfwd_add}) and returns its output; HMP
     * commands report failure only in that text.
     */
    public static String hmp(Path socket, String commandLine) throws IOException {
        try (Connection c = open(socket)) {
            BufferedReader in = c.in();
            OutputStream out = c.out();
            com.fasterxml.jackson.databind.node.ObjectNode cmd = JSON.createObjectNode();
            cmd.put("execute", "human-monitor-command");
            cmd.putObject("arguments").put("command-line", commandLine);
            out.write((JSON.writeValueAsString(cmd) + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
            return expect(in, "return").get("return").asText("");
        }
    }

    private static JsonNode expect(BufferedReader in, String field) throws IOException {
        while (true) {
            String line = in.readLine();
            if (line == null) {
                throw new IOException("QMP connection closed");
            }
            JsonNode node = JSON.readTree(line);
            if (node.has(field)) {
                return node;
            }
            if (node.has("error")) {
                throw new IOException("QMP error: " + node.get("error"));
            }
            // asynchronous events may come first; skip them
        }
    }
}
