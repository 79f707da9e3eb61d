package org.vbake.process;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * The one door through which vbake starts host processes (QEMU, the guest image build, mke2fs),
 * so tests can substitute a fake that records argv and answers with chosen exit codes.
 */
public interface ProcessRunner {

    /**
     * Runs a command to completion. Each line it prints (stdout and stderr merged) goes to
     * {@code lines}; the result keeps the last lines for error messages.
     */
    Result run(List<String> argv, Map<String, String> extraEnv, Duration timeout, Consumer<String> lines)
            throws IOException;

    /**
     * Runs a command to completion with {@code stdin} as its input and its output written to
     * {@code stdout} (either may be null: nothing in, output discarded); each stderr line goes to
     * {@code stderrLines}. For helpers that filter a stream.
     */
    Result pipe(List<String> argv, java.io.InputStream stdin, java.io.OutputStream stdout, Duration timeout,
            Consumer<String> stderrLines) throws IOException;

    /**
     * Starts a long-running command whose output goes to {@code logFile} (appended). The process is
     * started from a thread that lives as long as the process, which matters for parent-death signals.
     */
    Running start(List<String> argv, Path logFile) throws IOException;

    /** Outcome of {@link #run}. */
    record Result(int exitCode, List<String> tail) {
        public boolean ok() {
            return exitCode == 0;
        }
    }

    /** A started process. */
    interface Running {
        boolean isAlive();

        /** Waits up to {@code timeout}; returns the exit code, or null if it is still running. */
        Integer waitFor(Duration timeout) throws InterruptedException;

        /** SIGKILL. */
        void kill();

        long pid();
    }
}
