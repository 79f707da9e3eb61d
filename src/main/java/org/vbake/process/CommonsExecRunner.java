package org.vbake.process;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.apache.commons.exec.CommandLine;
import org.apache.commons.exec.DefaultExecutor;
import org.apache.commons.exec.ExecuteException;
import org.apache.commons.exec.ExecuteWatchdog;
import org.apache.commons.exec.LogOutputStream;
import org.apache.commons.exec.PumpStreamHandler;
import org.apache.commons.exec.ShutdownHookProcessDestroyer;

/** {@link ProcessRunner} on Apache commons-exec. */
public final class CommonsExecRunner implements ProcessRunner {

    private static final int TAIL_LINES = 30;

    @Override
    public Result run(List<String> argv, Map<String, String> extraEnv, Duration timeout, Consumer<String> lines)
            throws IOException {
        Map<String, String> env = new HashMap<>(System.getenv());
        env.putAll(extraEnv);
        return execute(argv, env, null, null, timeout, lines);
    }

    @Override
    public Result pipe(List<String> argv, java.io.InputStream stdin, java.io.OutputStream stdout, Duration timeout,
            Consumer<String> stderrLines) throws IOException {
        return execute(argv, null, stdin != null ? stdin : java.io.InputStream.nullInputStream(),
                stdout != null ? stdout : java.io.OutputStream.nullOutputStream(), timeout, stderrLines);
    }

    /**
     * Runs to completion. With {@code stdout} null, stdout and stderr are merged into
     * {@code lines}; otherwise stdout goes there and only stderr to {@code lines}.
     */
    private static Result execute(List<String> argv, Map<String, String> env, java.io.InputStream stdin,
            java.io.OutputStream stdout, Duration timeout, Consumer<String> lines) throws IOException {
        Deque<String> tail = new ArrayDeque<>();
        LogOutputStream sink = new LogOutputStream() {
            @Override
            protected void processLine(String line, int level) {
                synchronized (tail) {
                    tail.addLast(line);
                    if (tail.size() > TAIL_LINES) {
                        tail.removeFirst();
                    }
                }
                lines.accept(line);
            }
        };
        ExecuteWatchdog watchdog = ExecuteWatchdog.builder().setTimeout(timeout).get();
        DefaultExecutor executor = DefaultExecutor.builder().get();
        executor.setStreamHandler(new PumpStreamHandler(stdout != null ? stdout : sink, sink, stdin));
        executor.setWatchdog(watchdog);
        executor.setExitValues(null);
        executor.setProcessDestroyer(new ShutdownHookProcessDestroyer());
        int code;
        try {
            code = env != null ? executor.execute(commandLine(argv), env) : executor.execute(commandLine(argv));
        } catch (ExecuteException e) {
            code = e.getExitValue();
        } finally {
            sink.close();
        }
        if (watchdog.killedProcess()) {
            throw new IOException(argv.get(0) + " did not finish within " + timeout.toSeconds() + " s");
        }
        synchronized (tail) {
            return new Result(code, List.copyOf(tail));
        }
    }

    @Override
    public Running start(List<String> argv, Path logFile) throws IOException {
        // A dedicated thread launches the process and then waits for it: a parent-death signal
        // (setpriv --pdeathsig) fires when the launching thread ends, so it must outlive the child.
        CompletableFuture<Process> started = new CompletableFuture<>();
        Thread launcher = new Thread(() -> {
            Process p;
            try {
                p = new ProcessBuilder(argv)
                        .redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                        .start();
            } catch (IOException | RuntimeException e) {
                started.completeExceptionally(e);
                return;
            }
            started.complete(p);
            try {
                p.waitFor();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "launcher-" + Path.of(argv.get(0)).getFileName());
        launcher.setDaemon(true);
        launcher.start();
        Process p;
        try {
            p = started.get(30, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting " + argv.get(0), e);
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IOException("cannot start " + argv.get(0) + ": " + e.getCause().getMessage(), e.getCause());
        } catch (TimeoutException e) {
            throw new IOException("cannot start " + argv.get(0) + ": no answer in 30 s", e);
        }
        return new Running() {
            @Override
            public boolean isAlive() {
                return p.isAlive();
            }

            @Override
            public Integer waitFor(Duration timeout) throws InterruptedException {
                if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                    return null;
                }
                return p.exitValue();
            }

            @Override
            public void kill() {
                p.destroyForcibly();
            }

            @Override
            public long pid() {
                return p.pid();
            }
        };
    }

    private static CommandLine commandLine(List<String> argv) {
        CommandLine cl = new CommandLine(argv.get(0));
        for (String arg : argv.subList(1, argv.size())) {
            cl.addArgument(arg, false);
        }
        return cl;
    }

}
