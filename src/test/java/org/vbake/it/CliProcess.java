package org.vbake.it;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs vdkr, vpdmn or vbake from the built jar as a process of its own, as users and scripts run
 * it: its own JVM (so signals, a killed client and parent-death all behave as for real), stdout
 * and stderr to files under {@code work}, {@code XDG_CONFIG_HOME} there too. A failing command's
 * stderr carries the tail of the guest log it names.
 */
final class CliProcess {

    private static final Path JAR = Path.of("target/vbake.jar").toAbsolutePath();
    static final String EPOCH = "1700000000";

    record Result(int code, String out, String err, long millis) {
    }

    private final Path work;

    CliProcess(Path work) {
        this.work = work;
    }

    /** The JVM command line of the launcher for {@code prog} (vdkr, vpdmn, vbake). */
    static List<String> launcher(String prog) {
        // As bin/vbake: the quick compiler alone for vdkr and vpdmn, both compilers for vbake's bakes.
        List<String> argv = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "-XX:+UseSerialGC"));
        if (!prog.equals("vbake")) {
            argv.add("-XX:TieredStopAtLevel=1");
        }
        argv.addAll(List.of("-Dvbake.prog=" + prog, "-jar", JAR.toString()));
        return argv;
    }

    /** {@code prog -a ARCH --state-dir DIR args...}. */
    Result cli(String prog, String arch, Path stateDir, Map<String, String> env, byte[] stdin, String... args)
            throws IOException, InterruptedException {
        List<String> argv = new ArrayList<>(launcher(prog));
        argv.addAll(List.of("-a", arch, "--state-dir", stateDir.toString()));
        argv.addAll(List.of(args));
        return run(argv, env, stdin);
    }

    Result run(List<String> argv, Map<String, String> env, byte[] stdin) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(argv);
        pb.environment().put("SOURCE_DATE_EPOCH", EPOCH);
        pb.environment().put("XDG_CONFIG_HOME", work.resolve("config").toString());
        pb.environment().putAll(env);
        Path out = Files.createTempFile(work, "out", ".txt");
        Path err = Files.createTempFile(work, "err", ".txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile());
        if (stdin == null) {
            pb.redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        }
        long t0 = System.nanoTime();
        Process p = pb.start();
        if (stdin != null) {
            try (var in = p.getOutputStream()) {
                in.write(stdin);
            }
        }
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("timed out: " + argv);
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        String stderr = Files.readString(err);
        Result r = new Result(p.exitValue(), Files.readString(out),
                p.exitValue() == 0 ? stderr : InProcessCli.withLogTail(stderr), ms);
        Files.delete(out);
        Files.delete(err);
        return r;
    }

    /** Fails with the command's stderr unless it exited 0. */
    static Result ok(Result r) {
        if (r.code() != 0) {
            throw new AssertionError("exit " + r.code() + "\nstdout: " + r.out() + "\nstderr: " + r.err());
        }
        return r;
    }
}
