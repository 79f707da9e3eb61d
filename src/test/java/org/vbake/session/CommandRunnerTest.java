package org.vbake.session;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.Pipe;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.agent.AgentClient;
import org.vbake.agent.Frame;
import org.vbake.agent.FrameCodec;
import org.vbake.agent.FrameType;
import org.vbake.agent.Protocol;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.EventListener;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import org.vbake.process.CommonsExecRunner;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StorageFile;

/**
 * The order in which one engine command does its work, on a resident guest played by a scripted
 * agent: no QEMU. Every EXEC, ENGINE and LOCK the runner sends is recorded and answered.
 */
class CommandRunnerTest {

    @TempDir
    Path tmp;

    private ScriptedAgent agent;
    private AgentClient client;
    private final List<String> warnings = Collections.synchronizedList(new ArrayList<>());

    /** Answers every request: EXEC with exit 0 (or the code given for its program), ENGINE and LOCK with ok. */
    static final class ScriptedAgent implements Runnable {
        final List<String> log = Collections.synchronizedList(new ArrayList<>());
        final Map<String, Integer> exitCodes = new ConcurrentHashMap<>();
        private final InputStream in;
        private final OutputStream out;

        ScriptedAgent(InputStream in, OutputStream out) {
            this.in = in;
            this.out = out;
        }

        @Override
        public void run() {
            try {
                while (true) {
                    Frame f = FrameCodec.read(in);
                    switch (f.type()) {
                        case HELLO -> send(FrameType.HELLO, 0, new Protocol.Hello(1, null, "scripted", "aarch64",
                                "6.12", 1L));
                        case EXEC -> {
                            Protocol.ExecRequest r = Protocol.fromJson(f, Protocol.ExecRequest.class);
                            log.add("exec " + String.join(" ", r.argv()));
                            if (!r.stdin()) {
                                exit(f.channel(), r);
                            } else {
                                stdinThenExit(f.channel(), r);
                            }
                        }
                        case ENGINE -> {
                            Protocol.EngineRequest r = Protocol.fromJson(f, Protocol.EngineRequest.class);
                            log.add(Boolean.TRUE.equals(r.stop()) ? "engine stop" : "engine start");
                            send(FrameType.ENGINE_READY, 0, new Protocol.EngineReady(true, 1L, null));
                        }
                        case LOCK -> {
                            Protocol.LockRequest r = Protocol.fromJson(f, Protocol.LockRequest.class);
                            log.add(r.hold() ? "lock" : "unlock");
                            send(FrameType.LOCK, 0, new Protocol.LockRequest(r.hold(), true, null));
                        }
                        default -> { }
                    }
                }
            } catch (IOException e) {
                // the host closed the link
            }
        }

        private void stdinThenExit(int channel, Protocol.ExecRequest r) throws IOException {
            long bytes = 0;
            while (true) {
                Frame f = FrameCodec.read(in);
                if (f.type() == FrameType.STDIN && f.channel() == channel) {
                    if (f.payload().length == 0) {
                        break;
                    }
                    bytes += f.payload().length;
                    send(FrameType.WINDOW, channel, new Protocol.Window(f.payload().length));
                }
            }
            log.add("  (" + (bytes > 0 ? "stdin" : "no stdin") + ")");
            exit(channel, r);
        }

        private void exit(int channel, Protocol.ExecRequest r) throws IOException {
            int code = exitCodes.getOrDefault(r.argv().get(0).replaceAll(".*/", ""), 0);
            send(FrameType.EXIT, channel, new Protocol.ExitStatus(code, null, null));
        }

        private synchronized void send(FrameType type, int channel, Object message) throws IOException {
            FrameCodec.write(out, new Frame(type, channel, Protocol.toJson(message)));
        }

        List<String> log() {
            synchronized (log) {
                return List.copyOf(log);
            }
        }
    }

    @BeforeEach
    void link() throws IOException, InterruptedException {
        Pipe toAgent = Pipe.open();
        Pipe toHost = Pipe.open();
        agent = new ScriptedAgent(Channels.newInputStream(toAgent.source()), Channels.newOutputStream(toHost.sink()));
        Thread t = new Thread(agent, "scripted-agent");
        t.setDaemon(true);
        t.start();
        client = new AgentClient(Channels.newInputStream(toHost.source()), Channels.newOutputStream(toAgent.sink()));
        client.handshake(java.time.Duration.ofSeconds(5));
    }

    @AfterEach
    void unlink() {
        client.close();
    }

    private GuestOptions options() {
        return GuestOptions.defaults(Arch.AARCH64, RuntimeKind.DOCKER).withStateRoot(tmp.resolve("state"));
    }

    private CommandRunner runner() {
        return new CommandRunner(new CommonsExecRunner(), EventListener.NONE, warnings::add);
    }

    private CommandRunner.Plan plan(InputDisk staging, CommandRunner.Export export) {
        return new CommandRunner.Plan(options(), new CommandRunner.ResidentLink(client,
                new Protocol.Hello(1, null, "scripted", "aarch64", "6.12", 1L)), staging, null,
                "/var/lib/docker/.vbake-transfer/t1", true, export);
    }

    /** A command that runs {@code docker images} and needs the engine stopped before it (docker's RepoDigests). */
    private static CommandRunner.Steps steps(boolean engineStopped) {
        return new CommandRunner.Steps() {
            @Override
            public void beforeEngine(GuestSession session) throws VbakeException, InterruptedException {
                session.check(List.of("write-repositories-json"), "write the reference store");
            }

            @Override
            public boolean needsEngineStopped() {
                return engineStopped;
            }

            @Override
            public int run(GuestSession session) throws VbakeException, InterruptedException {
                return session.runCli(List.of("images"), null, OutputStream.nullOutputStream(),
                        OutputStream.nullOutputStream()).code();
            }
        };
    }

    @Test
    void inputsGoInThenTheEngineRestartsAroundItsWorkThenTheCommandRunsAndTheStoreIsSynced() throws Exception {
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/var/lib/docker/.vbake-transfer/t1/input")) {
            staging.write("image.tar", out -> out.write("image".getBytes(StandardCharsets.UTF_8)));

            int code = runner().execute(plan(staging, null), steps(true), s -> { });

            assertThat(code).isZero();
            assertThat(agent.log()).containsExactly(
                    "lock",
                    "exec /usr/lib/vbake/vbake-agent import-tree --root /var/lib/docker/.vbake-transfer/t1/input",
                    "  (stdin)",
                    "engine stop",
                    "exec write-repositories-json",
                    "exec mkdir -p /var/lib/docker",
                    "engine start",
                    "exec docker images",
                    "exec sync -f /var/lib/docker",
                    "exec rm -rf /var/lib/docker/.vbake-transfer/t1/input",
                    "unlock");
        }
    }

    @Test
    void nothingStagedAndNoEngineWorkIsJustTheCommand() throws Exception {
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/x")) {
            assertThat(runner().execute(plan(staging, null), steps(false), s -> { })).isZero();
            assertThat(agent.log()).containsExactly("exec docker images", "exec sync -f /var/lib/docker");
        }
    }

    @Test
    void theTreeIsExportedAfterASuccessfulCommandWithTheOthersHeldBack() throws Exception {
        Path target = tmp.resolve("store.tar");
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/x");
                StorageFile tar = StorageFile.create(target, "--storage")) {
            CommandRunner.Export export = new CommandRunner.Export(tar, null, null, false, 1700000000L);

            assertThat(runner().execute(plan(staging, export), steps(false), s -> { })).isZero();

            assertThat(agent.log()).containsExactly("exec docker images", "exec sync -f /var/lib/docker", "lock",
                    "exec /usr/lib/vbake/vbake-agent export-tree --root /var/lib/docker --exclude lost+found "
                            + "--exclude runtimes --exclude tmp --exclude containerd --exclude network "
                            + "--exclude engine-id --exclude buildkit --exclude swarm --exclude overlay2/backingFsBlockDev "
                            + "--exclude vfs/backingFsBlockDev --exclude volumes/backingFsBlockDev "
                            + "--exclude .vbake-transfer --docker-containers overlay2 --mtime-clamp 1700000000",
                    "unlock");
            assertThat(target).exists();
        }
    }

    @Test
    void aFailedCommandExportsNothingAndSaysSo() throws Exception {
        agent.exitCodes.put("docker", 3);
        Path target = tmp.resolve("store.tar");
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/x");
                StorageFile tar = StorageFile.create(target, "--storage")) {
            CommandRunner.Export export = new CommandRunner.Export(tar, null, null, false, null);

            assertThat(runner().execute(plan(staging, export), steps(false), s -> { })).isEqualTo(3);

            assertThat(agent.log()).noneMatch(l -> l.contains("export-tree"));
            assertThat(warnings).containsExactly("not writing " + target + ": the command failed");
        }
        assertThat(target).doesNotExist();
        try (var list = Files.list(tmp)) {
            assertThat(list.map(p -> p.getFileName().toString())).noneMatch(n -> n.endsWith(".partial"));
        }
    }

    @Test
    void anExt4ExportCannotUseAResidentGuest() throws Exception {
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/x")) {
            CommandRunner.Export export = new CommandRunner.Export(null, tmp.resolve("data.ext4"),
                    tmp.resolve(".data.ext4.partial"), false, null);
            assertThatThrownBy(() -> runner().execute(plan(staging, export), steps(false), s -> { }))
                    .isInstanceOf(BadInputException.class).hasMessageContaining("needs a guest of its own");
        }
    }

    @Test
    void aStagedAreaMadeForStreamingIsWhatResumedAndResidentGuestsGet() throws IOException {
        try (InputDisk staging = InputDisk.create(tmp.resolve("tmp"), "/x")) {
            assertThat(plan(staging, null).streamed()).isTrue();
            CommandRunner.Plan cold = new CommandRunner.Plan(options().withResume(false), null, staging, null, "/t",
                    false, null);
            assertThat(cold.streamed()).isFalse();
            assertThat(new CommandRunner.Plan(options(), null, staging, null, "/t", false, null).streamed()).isTrue();
        }
    }
}
