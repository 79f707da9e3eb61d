package org.vbake.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** vmemres and -I on paths that never boot a guest: bad usage, status and stop of nothing. */
class VmemresCliTest {

    @TempDir
    Path home;

    private Map<String, String> env;

    @BeforeEach
    void isolate() {
        env = Map.of("HOME", home.toString(), "XDG_CONFIG_HOME", home.resolve("config").toString());
    }

    private record Result(int code, String out, String err) {
    }

    private Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run("vdkr", args, null, out, err, env, false);
        return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void vmemresWithoutActionIsBadUsageWithTheActions() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres");
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("vmemres: no action given", "start [-p HOST:GUEST[/udp]]... | stop | restart [--clean]", "| status | list");
    }

    @Test
    void unknownActionAndStrayArgumentsAreBadUsage() {
        assertThat(run("-a", "aarch64", "vmemres", "launch").err()).contains("unknown action 'launch'");
        Result stray = run("-a", "aarch64", "vmemres", "stop", "--clean");
        assertThat(stray.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(stray.err()).contains("vmemres stop: unexpected --clean");
    }

    @Test
    void statusOfAnInstanceThatNeverRanSaysStoppedAndExitsOne() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");
        assertThat(r.code()).isEqualTo(ExitCodes.FAILURE);
        assertThat(r.out()).isEqualTo("vdkr aarch64 (" + home.resolve("s/trixie") + "): stopped\n");
    }

    @Test
    void statusCleansUpAfterADaemonThatDiedWithoutAWord() throws Exception {
        Path run = Files.createDirectories(home.resolve("s/trixie/run"));
        // pid 2^22+1 is above pid_max's default ceiling: no such process.
        Files.writeString(run.resolve("daemon.json"), "{\"state\":\"running\",\"pid\":4194305,\"startedMillis\":1,"
                + "\"arch\":\"aarch64\",\"runtime\":\"docker\",\"suite\":\"trixie\",\"memoryMb\":0,\"cpus\":0}");
        Files.writeString(run.resolve("daemon.sock"), "stale");

        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");

        assertThat(r.code()).isEqualTo(ExitCodes.FAILURE);
        assertThat(r.out()).contains("stopped (the last resident guest died)", "ended without shutting down");
        assertThat(run.resolve("daemon.sock")).doesNotExist();
        assertThat(run.resolve("daemon.json")).content().contains("\"state\":\"died\"");
    }

    /** A record that a live daemon wrote: this test JVM plays the daemon (a java process that is alive). */
    private Path liveRecord(String state) throws Exception {
        Path run = Files.createDirectories(home.resolve("s/trixie/run"));
        Files.writeString(run.resolve("daemon.json"), "{\"state\":\"" + state + "\",\"pid\":"
                + ProcessHandle.current().pid() + ",\"startedMillis\":1,\"arch\":\"aarch64\",\"runtime\":\"docker\","
                + "\"suite\":\"trixie\",\"memoryMb\":0,\"cpus\":0,\"message\":\"powering off (idle for 12 s)\"}");
        return run;
    }

    @Test
    void aDaemonPoweringOffIsStoppingWithItsOwnExitCode() throws Exception {
        liveRecord("stopping");

        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");

        assertThat(r.code()).isEqualTo(5);
        assertThat(r.out()).startsWith("vdkr aarch64 (" + home.resolve("s/trixie")
                + "): stopping (powering off (idle for 12 s))\n");
        assertThat(r.out()).doesNotContain("running");
    }

    @Test
    void aRunningRecordWhoseSocketDoesNotAnswerIsNotReportedAsRunning() throws Exception {
        // The moment the old status got wrong: the record said running, the socket was gone, and
        // it printed "running" with the exit code of "stopped".
        liveRecord("running");

        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");

        assertThat(r.code()).isEqualTo(3);
        assertThat(r.out()).startsWith("vdkr aarch64 (" + home.resolve("s/trixie") + "): not answering (the daemon (pid "
                + ProcessHandle.current().pid() + ") does not answer on ");
    }

    @Test
    void aBootingDaemonIsStarting() throws Exception {
        liveRecord("starting");
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");
        assertThat(r.code()).isEqualTo(4);
        assertThat(r.out()).contains("): starting (booting the guest)");
    }

    @Test
    void stopWhenNothingRunsSaysSo() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "stop");
        assertThat(r.code()).isZero();
        assertThat(r.out()).endsWith(": not running\n");
    }

    @Test
    void instanceNamesAStateDirBesideTheDefaultAndIsValidated() {
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("vd/aarch64").toString(), "-I", "dev", "vmemres",
                "status");
        assertThat(r.out()).contains(home.resolve("vd/aarch64-dev/trixie").toString());
        Result bad = run("-a", "aarch64", "-I", "../x", "vmemres", "status");
        assertThat(bad.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(bad.err()).contains("bad instance name '../x'");
    }

    @Test
    void badIdleTimeoutInTheConfigIsBadInput() throws Exception {
        Files.createDirectories(home.resolve("config/vdkr"));
        Files.writeString(home.resolve("config/vdkr/config"), "idle-timeout=soon\n");
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("s").toString(), "vmemres", "status");
        assertThat(r.code()).isEqualTo(ExitCodes.BAD_INPUT);
        assertThat(r.err()).contains("idle-timeout 'soon'", "is not a duration");
    }

    @Test
    void listShowsInstancesWithTheirState() throws Exception {
        Files.createDirectories(home.resolve("vd/aarch64/trixie"));
        Files.createDirectories(home.resolve("vd/x86_64-ci/trixie"));
        Result r = run("-a", "aarch64", "--state-dir", home.resolve("vd/aarch64").toString(), "vmemres", "list");
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("default +aarch64 +trixie +stopped")
                .containsPattern("ci +x86_64 +trixie +stopped");
    }
}
