package org.vbake.agent;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.agent.Protocol.EngineReady;
import org.vbake.agent.Protocol.EngineRequest;
import org.vbake.agent.Protocol.ExecRequest;
import org.vbake.agent.Protocol.ExitStatus;
import org.vbake.agent.Protocol.Hello;
import org.vbake.agent.Protocol.PowerOffReply;

@Timeout(value = 20, unit = TimeUnit.SECONDS)
class AgentClientTest {

    private static final Duration LONG = Duration.ofSeconds(30);
    /** "Fails fast" means well under the waiter's own timeout. */
    private static final long FAST_MILLIS = 3000;

    private final List<String> events = new CopyOnWriteArrayList<>();
    private final ExecutorService executor = Executors.newCachedThreadPool();
    private AgentClient client;
    private FakeAgent agent;

    @BeforeEach
    void link() {
        TestPipe hostToAgent = new TestPipe(128 * 1024);
        TestPipe agentToHost = new TestPipe(128 * 1024);
        client = new AgentClient(agentToHost.in(), hostToAgent.out(), events::add, true);
        agent = new FakeAgent(hostToAgent.in(), agentToHost.out());
    }

    @AfterEach
    void unlink() throws IOException {
        client.close();
        agent.close();
        executor.shutdownNow();
    }

    private <T> Future<T> async(Callable<T> call) {
        return executor.submit(call);
    }

    private static <T> T get(Future<T> future) throws Exception {
        try {
            return future.get(FakeAgent.PATIENCE.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof Exception cause ? cause : e;
        }
    }

    private Hello handshake() throws Exception {
        Future<Hello> hello = async(() -> client.handshake(LONG));
        agent.answerHello();
        return get(hello);
    }

    private static String text(Frame frame) {
        return frame.payloadText();
    }

    private static String text(ByteArrayOutputStream out) {
        return out.toString(StandardCharsets.UTF_8);
    }

    // ---- handshake ----

    @Test
    void handshakeSendsHelloAndReturnsTheAgentsHello() throws Exception {
        Future<Hello> hello = async(() -> client.handshake(LONG));

        Frame sent = agent.expect(FrameType.HELLO, 0);
        assertThat(text(sent)).isEqualTo("{\"protocol\":1,\"client\":\"vbake/0.1\"}");
        agent.sendJson(FrameType.HELLO, 0, "{\"protocol\":1,\"agent\":\"vbake-agent/0.1\",\"arch\":\"x86_64\","
                + "\"kernel\":\"6.1.0-31-cloud-amd64\",\"uptimeMillis\":812,\"someday\":{\"new\":true}}");

        assertThat(get(hello)).isEqualTo(
                new Hello(1, null, "vbake-agent/0.1", "x86_64", "6.1.0-31-cloud-amd64", 812L));
        assertThat(events).anySatisfy(e -> assertThat(e).contains("vbake-agent/0.1"));
    }

    @Test
    void handshakeAnsweredWithErrorThrowsTheAgentsMessage() throws Exception {
        Future<Hello> hello = async(() -> client.handshake(LONG));
        agent.expect(FrameType.HELLO, 0);

        agent.sendJson(FrameType.ERROR, 0, "{\"message\":\"unsupported protocol 1, agent speaks 2\"}");

        assertThatThrownBy(() -> get(hello))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("unsupported protocol 1, agent speaks 2");
    }

    @Test
    void handshakeCanBeRetriedAfterAnError() throws Exception {
        Future<Hello> first = async(() -> client.handshake(LONG));
        agent.expect(FrameType.HELLO, 0);
        agent.sendJson(FrameType.ERROR, 0, "{\"message\":\"nope\"}");
        assertThatThrownBy(() -> get(first)).isInstanceOf(AgentProtocolException.class);

        assertThat(handshake().agent()).isEqualTo("fake-agent/1");
    }

    @Test
    void handshakeWithAnotherProtocolVersionIsRefused() throws Exception {
        Future<Hello> hello = async(() -> client.handshake(LONG));
        agent.expect(FrameType.HELLO, 0);

        agent.sendJson(FrameType.HELLO, 0, "{\"protocol\":2,\"agent\":\"vbake-agent/9\"}");

        assertThatThrownBy(() -> get(hello))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("speaks protocol 2");
    }

    @Test
    void handshakeTimesOut() {
        long start = System.nanoTime();

        assertThatThrownBy(() -> client.handshake(Duration.ofMillis(150)))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("no HELLO from the agent within");
        assertThat(elapsedMillis(start)).isBetween(140L, FAST_MILLIS);
    }

    @Test
    void handshakeFailsFastWhenTheLinkCloses() throws Exception {
        long start = System.nanoTime();
        Future<Hello> hello = async(() -> client.handshake(LONG));
        agent.expect(FrameType.HELLO, 0);

        agent.closeLink();

        assertThatThrownBy(() -> get(hello))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("agent connection closed");
        assertThat(elapsedMillis(start)).isLessThan(FAST_MILLIS);
        assertThat(client.isOpen()).isFalse();
    }

    @Test
    void malformedFrameFromTheAgentBreaksTheLink() throws Exception {
        Future<Hello> hello = async(() -> client.handshake(LONG));
        agent.expect(FrameType.HELLO, 0);

        agent.sendRaw(new byte[] {0, 0, 0, 5, 0x7F, 0, 0, 0, 0});

        assertThatThrownBy(() -> get(hello))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("unknown frame type 0x7F");
        assertThatThrownBy(() -> client.handshake(LONG))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("unknown frame type 0x7F");
    }

    @Test
    void nothingButHelloIsSentBeforeTheHandshake() {
        assertThatThrownBy(() -> client.start(ExecRequest.of("true"), null, null, null))
                .isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> client.powerOff(LONG)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> client.startEngine(new EngineRequest(List.of(), null, "/s", null, 1), LONG))
                .isInstanceOf(IllegalStateException.class);
    }

    // ---- commands ----

    @Test
    void execKeepsInterleavedStdoutAndStderrApartAndReturnsTheExitCode() throws Exception {
        handshake();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ExecRequest request = new ExecRequest(List.of("sh", "-c", "work"), List.of("A=1"), "/tmp", false);

        Future<ExitStatus> status = async(() -> client.exec(request, null, out, err));
        Frame exec = agent.expect(FrameType.EXEC, 1);
        assertThat(text(exec)).isEqualTo(
                "{\"argv\":[\"sh\",\"-c\",\"work\"],\"env\":[\"A=1\"],\"cwd\":\"/tmp\",\"stdin\":false}");
        agent.sendText(FrameType.STDOUT, 1, "out 1\n");
        agent.sendText(FrameType.STDERR, 1, "err 1\n");
        agent.sendText(FrameType.STDOUT, 1, "out 2\n");
        agent.sendData(FrameType.STDERR, 1, new byte[] {(byte) 0xFF, 0, 'x'});
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":3}");

        assertThat(get(status)).isEqualTo(new ExitStatus(3, null, null));
        assertThat(text(out)).isEqualTo("out 1\nout 2\n");
        assertThat(err.toByteArray()).containsExactly('e', 'r', 'r', ' ', '1', '\n', 0xFF, 0, 'x');
    }

    @Test
    void execRequestWithoutOptionalFieldsLeavesThemOut() throws Exception {
        handshake();

        client.start(ExecRequest.of("true"), null, null, null);

        assertThat(text(agent.expect(FrameType.EXEC, 1))).isEqualTo("{\"argv\":[\"true\"],\"stdin\":false}");
    }

    @Test
    void commandThatCouldNotStartReportsTheError() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("nosuch"), null, null, null);
        agent.expect(FrameType.EXEC, 1);

        agent.sendJson(FrameType.EXIT, 1, "{\"code\":127,\"error\":\"exec: \\\"nosuch\\\": not found\"}");

        ExitStatus status = command.waitFor();
        assertThat(status.code()).isEqualTo(127);
        assertThat(status.error()).isEqualTo("exec: \"nosuch\": not found");
        assertThat(status.succeeded()).isFalse();
    }

    @Test
    void stdinOfThreeMebibytesArrivesCompleteInOrderAndWithinTheWindow() throws Exception {
        handshake();
        byte[] input = new byte[3 * 1024 * 1024];
        new Random(7).nextBytes(input);

        CommandHandle command = client.start(ExecRequest.of("cat"), new ByteArrayInputStream(input), null, null);
        Frame exec = agent.expect(FrameType.EXEC, 1);
        assertThat(text(exec)).isEqualTo("{\"argv\":[\"cat\"],\"stdin\":true}");

        ByteArrayOutputStream delivered = new ByteArrayOutputStream();
        long acknowledged = 0;
        boolean checkedStall = false;
        while (true) {
            Frame frame = agent.expect(FrameType.STDIN, 1);
            if (frame.payload().length == 0) {
                break;
            }
            delivered.write(frame.payload());
            // Counted from the frames taken off the queue, so none can be waiting behind them.
            if (delivered.size() - acknowledged == CommandHandle.STDIN_WINDOW) {
                if (!checkedStall) {
                    // With the window full the host must wait for WINDOW, however long it takes.
                    assertThat(agent.poll(Duration.ofMillis(200))).isNull();
                    checkedStall = true;
                }
                // Acknowledge in pieces, as the agent does while the command drains its pipe.
                for (int i = 0; i < 4; i++) {
                    agent.ack(1, CommandHandle.STDIN_WINDOW / 4);
                    acknowledged += CommandHandle.STDIN_WINDOW / 4;
                }
            }
        }
        agent.ack(1, delivered.size() - acknowledged);
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":0}");

        assertThat(command.waitFor().code()).isZero();
        assertThat(agent.violations()).isEmpty();
        assertThat(checkedStall).isTrue();
        assertThat(agent.maxOutstandingStdin(1)).isEqualTo(CommandHandle.STDIN_WINDOW);
        assertThat(delivered.size()).isEqualTo(input.length);
        assertThat(Arrays.equals(delivered.toByteArray(), input)).as("stdin delivered in order").isTrue();
    }

    @Test
    void stdinPumpingStopsWhenTheCommandExits() throws Exception {
        handshake();
        InputStream endless = new InputStream() {
            @Override
            public int read() {
                return 'y';
            }

            @Override
            public int read(byte[] b, int off, int len) {
                Arrays.fill(b, off, off + len, (byte) 'y');
                return len;
            }
        };

        CommandHandle command = client.start(ExecRequest.of("head", "-c", "1"), endless, null, null);
        agent.expect(FrameType.EXEC, 1);
        long taken = 0;
        while (taken < CommandHandle.STDIN_WINDOW) {
            taken += agent.expect(FrameType.STDIN, 1).payload().length;
        }
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":0}");
        assertThat(command.waitFor().code()).isZero();
        // An agent that acknowledges late must not restart the flow.
        agent.ack(1, CommandHandle.STDIN_WINDOW);

        assertThat(agent.poll(Duration.ofMillis(300))).isNull();
        assertThat(agent.violations()).isEmpty();
    }

    @Test
    void stdinRequestedWithoutAStreamIsEmpty() throws Exception {
        handshake();

        client.start(ExecRequest.of("cat").withStdin(true), null, null, null);

        assertThat(text(agent.expect(FrameType.EXEC, 1))).contains("\"stdin\":true");
        assertThat(agent.expect(FrameType.STDIN, 1).payload()).isEmpty();
    }

    @Test
    void unreadableStdinKillsTheCommandRatherThanEndingItsInput() throws Exception {
        handshake();
        InputStream broken = new InputStream() {
            @Override
            public int read() throws IOException {
                throw new IOException("disk on fire");
            }
        };

        CommandHandle command = client.start(ExecRequest.of("sh"), broken, null, null);
        agent.expect(FrameType.EXEC, 1);
        assertThat(text(agent.expect(FrameType.SIGNAL, 1))).isEqualTo("{\"signal\":9}");
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":137,\"signal\":9}");

        assertThatThrownBy(command::waitFor).isInstanceOf(IOException.class).hasMessageContaining("disk on fire");
    }

    @Test
    void signalSendsTheSignalNumberOnTheCommandsChannel() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("sleep", "1000"), null, null, null);
        agent.expect(FrameType.EXEC, 1);

        command.signal(2);

        assertThat(text(agent.expect(FrameType.SIGNAL, 1))).isEqualTo("{\"signal\":2}");
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":130,\"signal\":2}");
        assertThat(command.waitFor()).isEqualTo(new ExitStatus(130, 2, null));

        command.signal(9);
        assertThat(agent.poll(Duration.ofMillis(100))).as("no SIGNAL after EXIT").isNull();
    }

    @Test
    void interruptedExecKillsTheCommand() throws Exception {
        handshake();
        Future<ExitStatus> status = async(() -> client.exec(ExecRequest.of("sleep", "1000"), null, null, null));
        agent.expect(FrameType.EXEC, 1);

        status.cancel(true);

        assertThat(text(agent.expect(FrameType.SIGNAL, 1))).isEqualTo("{\"signal\":9}");
    }

    @Test
    void waitForWithTimeoutGivesUpWithoutKilling() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("sleep", "1000"), null, null, null);
        agent.expect(FrameType.EXEC, 1);

        assertThatThrownBy(() -> command.waitFor(Duration.ofMillis(100)))
                .isInstanceOf(java.util.concurrent.TimeoutException.class);
        assertThat(command.isDone()).isFalse();
        assertThat(agent.poll(Duration.ofMillis(100))).isNull();
    }

    @Test
    void concurrentCommandsGetTheirOwnChannelsAndOutput() throws Exception {
        handshake();
        int commands = 4;
        List<ByteArrayOutputStream> outs = new ArrayList<>();
        List<ByteArrayOutputStream> errs = new ArrayList<>();
        List<Future<ExitStatus>> statuses = new ArrayList<>();
        for (int i = 0; i < commands; i++) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            outs.add(out);
            errs.add(err);
            String name = "cmd" + i;
            statuses.add(async(() -> client.exec(ExecRequest.of("echo", name), null, out, err)));
        }

        // Channel numbers are handed out in whatever order the threads got there.
        Map<String, Integer> channelOf = new HashMap<>();
        for (int i = 0; i < commands; i++) {
            Frame exec = agent.expect(FrameType.EXEC);
            String name = text(exec).replaceAll(".*\"(cmd\\d)\".*", "$1");
            channelOf.put(name, exec.channel());
        }
        assertThat(channelOf.values()).containsExactlyInAnyOrder(1, 2, 3, 4);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < commands; i++) {
                int channel = channelOf.get("cmd" + i);
                agent.sendText(FrameType.STDOUT, channel, "cmd" + i + " line " + round + "\n");
                agent.sendText(FrameType.STDERR, channel, "cmd" + i + " warn " + round + "\n");
            }
        }
        for (int i = commands - 1; i >= 0; i--) {
            agent.sendJson(FrameType.EXIT, channelOf.get("cmd" + i), "{\"code\":" + (10 + i) + "}");
        }

        for (int i = 0; i < commands; i++) {
            assertThat(get(statuses.get(i)).code()).isEqualTo(10 + i);
            assertThat(text(outs.get(i))).isEqualTo(
                    "cmd" + i + " line 0\ncmd" + i + " line 1\ncmd" + i + " line 2\n");
            assertThat(text(errs.get(i))).isEqualTo(
                    "cmd" + i + " warn 0\ncmd" + i + " warn 1\ncmd" + i + " warn 2\n");
        }
    }

    @Test
    void brokenOutputStreamFailsOnlyItsOwnCommand() throws Exception {
        handshake();
        OutputStream broken = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("reader went away");
            }
        };
        ByteArrayOutputStream fine = new ByteArrayOutputStream();
        CommandHandle first = client.start(ExecRequest.of("a"), null, broken, null);
        CommandHandle second = client.start(ExecRequest.of("b"), null, fine, null);
        agent.expect(FrameType.EXEC, 1);
        agent.expect(FrameType.EXEC, 2);

        agent.sendText(FrameType.STDOUT, 1, "lost");
        agent.sendText(FrameType.STDOUT, 2, "kept");
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":0}");
        agent.sendJson(FrameType.EXIT, 2, "{\"code\":0}");

        assertThatThrownBy(first::waitFor).isInstanceOf(IOException.class).hasMessageContaining("reader went away");
        assertThat(second.waitFor().code()).isZero();
        assertThat(text(fine)).isEqualTo("kept");
    }

    @Test
    void errorOnACommandsChannelFailsThatCommand() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("x"), null, null, null);
        agent.expect(FrameType.EXEC, 1);

        agent.sendJson(FrameType.ERROR, 1, "{\"message\":\"channel 1 already in use\"}");

        assertThatThrownBy(command::waitFor)
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("channel 1 already in use");
        assertThat(client.isOpen()).isTrue();
    }

    @Test
    void framesForUnknownChannelsAreIgnored() throws Exception {
        handshake();

        agent.sendText(FrameType.STDOUT, 99, "stray");
        agent.sendJson(FrameType.EXIT, 99, "{\"code\":0}");
        CommandHandle command = client.start(ExecRequest.of("true"), null, null, null);
        agent.expect(FrameType.EXEC, 1);
        agent.sendJson(FrameType.EXIT, 1, "{\"code\":0}");

        assertThat(command.waitFor().code()).isZero();
        assertThat(events).anySatisfy(e -> assertThat(e).contains("unknown channel"));
    }

    @Test
    void agentEofWhileACommandRunsFailsItFast() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("sleep", "1000"), null, null, null);
        agent.expect(FrameType.EXEC, 1);
        long start = System.nanoTime();

        agent.closeLink();

        assertThatThrownBy(command::waitFor)
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("agent connection closed");
        assertThat(elapsedMillis(start)).isLessThan(FAST_MILLIS);
        assertThatThrownBy(() -> client.start(ExecRequest.of("true"), null, null, null))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("agent connection closed");
    }

    @Test
    void closeFailsWaitersAndClosesTheLink() throws Exception {
        handshake();
        CommandHandle command = client.start(ExecRequest.of("sleep", "1000"), null, null, null);
        agent.expect(FrameType.EXEC, 1);

        client.close();

        assertThatThrownBy(command::waitFor)
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("agent client closed");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!agent.hostClosed() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(agent.hostClosed()).isTrue();
    }

    // ---- engine and power-off ----

    @Test
    void startEngineSendsTheRequestAndParsesReady() throws Exception {
        handshake();
        EngineRequest request = new EngineRequest(List.of("dockerd", "--data-root=/var/lib/docker"),
                List.of("K=V"), "/var/run/docker.sock", "/_ping", 60000);

        Future<EngineReady> ready = async(() -> client.startEngine(request, LONG));
        Frame engine = agent.expect(FrameType.ENGINE, 0);
        assertThat(text(engine)).isEqualTo("{\"argv\":[\"dockerd\",\"--data-root=/var/lib/docker\"],"
                + "\"env\":[\"K=V\"],\"socket\":\"/var/run/docker.sock\",\"httpPath\":\"/_ping\","
                + "\"timeoutMillis\":60000}");
        agent.sendJson(FrameType.ENGINE_READY, 0, "{\"ok\":true,\"millis\":2345}");

        assertThat(get(ready)).isEqualTo(new EngineReady(true, 2345L, null));
    }

    @Test
    void engineFailureIsAReplyNotAnException() throws Exception {
        handshake();
        EngineRequest probeOnly = new EngineRequest(List.of(), null, "/run/podman.sock", null, 1000);

        Future<EngineReady> ready = async(() -> client.startEngine(probeOnly, LONG));
        assertThat(text(agent.expect(FrameType.ENGINE, 0)))
                .isEqualTo("{\"argv\":[],\"socket\":\"/run/podman.sock\",\"timeoutMillis\":1000}");
        agent.sendJson(FrameType.ENGINE_READY, 0, "{\"ok\":false,\"message\":\"dockerd exited with status 1\"}");

        assertThat(get(ready)).isEqualTo(new EngineReady(false, null, "dockerd exited with status 1"));
    }

    @Test
    void powerOffReplyIsReturnedAndTheLinkClosingAfterItIsNormal() throws Exception {
        handshake();

        Future<PowerOffReply> reply = async(() -> client.powerOff(LONG));
        assertThat(text(agent.expect(FrameType.POWEROFF, 0))).isEqualTo("{}");
        agent.sendJson(FrameType.POWEROFF, 0, "{\"ok\":false,\"message\":\"umount /state: busy\"}");
        agent.closeLink();

        assertThat(get(reply)).isEqualTo(new PowerOffReply(false, "umount /state: busy"));
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (client.isOpen() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertThat(client.isOpen()).isFalse();
        assertThat(events).anySatisfy(e -> assertThat(e).contains("closed after power-off"));
    }

    @Test
    void powerOffFailsFastWhenTheLinkClosesWithoutAReply() throws Exception {
        handshake();
        Future<PowerOffReply> reply = async(() -> client.powerOff(LONG));
        agent.expect(FrameType.POWEROFF, 0);

        agent.closeLink();

        assertThatThrownBy(() -> get(reply))
                .isInstanceOf(AgentProtocolException.class)
                .hasMessageContaining("agent connection closed");
    }

    @Test
    void framesAreTracedOnlyWhenAskedFor() throws Exception {
        handshake();
        assertThat(events).anySatisfy(e -> assertThat(e).startsWith("-> HELLO ch=0"));
        assertThat(events).anySatisfy(e -> assertThat(e).startsWith("<- HELLO ch=0"));

        List<String> quiet = new CopyOnWriteArrayList<>();
        TestPipe down = new TestPipe(1024);
        TestPipe up = new TestPipe(1024);
        try (AgentClient untraced = new AgentClient(up.in(), down.out(), quiet::add, false);
                FakeAgent other = new FakeAgent(down.in(), up.out())) {
            Future<Hello> hello = async(() -> untraced.handshake(LONG));
            other.answerHello();
            get(hello);
        }
        assertThat(quiet).noneSatisfy(e -> assertThat(e).startsWith("->"));
        assertThat(quiet).noneSatisfy(e -> assertThat(e).startsWith("<-"));
    }

    // ---- unix socket transport ----

    @Test
    void connectRetriesUntilQemuHasCreatedTheSocket(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("agent.sock");
        Future<SocketChannel> accepted = async(() -> {
            Thread.sleep(200);
            ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(socket));
            SocketChannel channel = server.accept();
            server.close();
            return channel;
        });

        try (AgentClient viaSocket = AgentClient.connect(socket, Duration.ofSeconds(10))) {
            SocketChannel guestSide = get(accepted);
            try (FakeAgent guest = new FakeAgent(new AgentClient.ChannelInput(guestSide),
                    new AgentClient.ChannelOutput(guestSide))) {
                Future<Hello> hello = async(() -> viaSocket.handshake(LONG));
                guest.answerHello();
                assertThat(get(hello).arch()).isEqualTo("aarch64");

                ByteArrayOutputStream out = new ByteArrayOutputStream();
                Future<ExitStatus> status = async(() -> viaSocket.exec(ExecRequest.of("uname"), null, out, null));
                guest.expect(FrameType.EXEC, 1);
                guest.sendText(FrameType.STDOUT, 1, "Linux\n");
                guest.sendJson(FrameType.EXIT, 1, "{\"code\":0}");
                assertThat(get(status).code()).isZero();
                assertThat(text(out)).isEqualTo("Linux\n");

                // QEMU exiting closes its end of the socket.
                CommandHandle running = viaSocket.start(ExecRequest.of("sleep", "9"), null, null, null);
                guest.expect(FrameType.EXEC, 2);
                guestSide.close();
                assertThatThrownBy(running::waitFor)
                        .isInstanceOf(AgentProtocolException.class)
                        .hasMessageContaining("agent connection closed");
            }
        }
    }

    @Test
    void connectGivesUpAfterTheTimeout(@TempDir Path dir) {
        Path socket = dir.resolve("never.sock");
        long start = System.nanoTime();

        assertThatThrownBy(() -> AgentClient.connect(socket, Duration.ofMillis(150)))
                .isInstanceOf(IOException.class)
                .hasMessageContaining(socket.toString());
        assertThat(elapsedMillis(start)).isBetween(140L, FAST_MILLIS);
    }

    @Test
    void connectRejectsPathsTooLongForUnixSockets(@TempDir Path dir) {
        Path socket = dir.resolve("x".repeat(120));

        assertThatThrownBy(() -> AgentClient.connect(socket, Duration.ofSeconds(10)))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("longer than 107 bytes");
    }

    private static long elapsedMillis(long startNanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos);
    }

}
