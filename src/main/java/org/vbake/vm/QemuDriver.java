package org.vbake.vm;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.process.ProcessRunner;

/** Starts QEMU for a spec and stops it with escalation. */
public final class QemuDriver {

    private static final Path SETPRIV = Path.of("/usr/bin/setpriv");

    private final ProcessRunner runner;
    private final EventListener events;

    public QemuDriver(ProcessRunner runner, EventListener events) {
        this.runner = runner;
        this.events = events;
    }

    /** The argv actually run: QEMU under setpriv so it dies with this JVM even on SIGKILL. */
    public static List<String> launchArgv(QemuProfile profile, VmSpec spec, boolean withParentDeathSignal) {
        List<String> argv = new ArrayList<>();
        if (withParentDeathSignal) {
            argv.addAll(List.of(SETPRIV.toString(), "--pdeathsig", "KILL", "--"));
        }
        argv.addAll(QemuCommandLine.build(profile, spec));
        return argv;
    }

    public Vm start(QemuProfile profile, VmSpec spec, Path qemuLog) throws IOException {
        for (Path stale : new Path[] {spec.agentSocket(), spec.qmpSocket(), spec.pidFile()}) {
            Files.deleteIfExists(stale);
        }
        Files.deleteIfExists(spec.consoleLog());
        Files.deleteIfExists(qemuLog);
        List<String> argv = launchArgv(profile, spec, Files.isExecutable(SETPRIV));
        events.on(new Event.Debug("qemu: " + String.join(" ", argv)));
        ProcessRunner.Running process = runner.start(argv, qemuLog);
        return new Vm(process, spec, qemuLog);
    }

    /** A running QEMU process. */
    public final class Vm {
        private final ProcessRunner.Running process;
        private final VmSpec spec;
        private final Path qemuLog;

        Vm(ProcessRunner.Running process, VmSpec spec, Path qemuLog) {
            this.process = process;
            this.spec = spec;
            this.qemuLog = qemuLog;
        }

        public boolean isAlive() {
            return process.isAlive();
        }

        public long pid() {
            return process.pid();
        }

        public VmSpec spec() {
            return spec;
        }

        public Path qemuLog() {
            return qemuLog;
        }

        /** QEMU's exit status (128+N after signal N), or null while it runs. */
        public Integer exitStatus() {
            try {
                return process.waitFor(Duration.ZERO);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            }
        }

        /** Waits for QEMU to exit on its own (the guest powered off). */
        public boolean awaitExit(Duration timeout) throws InterruptedException {
            return process.waitFor(timeout) != null;
        }

        /**
         * Makes sure QEMU is gone: waits {@code grace} for it to exit by itself, then asks it over
         * QMP to quit, then kills it. Removes the sockets and pid file afterwards.
         */
        public void stop(Duration grace) throws InterruptedException {
            if (process.waitFor(grace) == null) {
                events.on(new Event.Debug("qemu did not exit by itself; sending QMP quit"));
                try {
                    QmpClient.quit(spec.qmpSocket());
                } catch (IOException e) {
                    events.on(new Event.Debug("QMP quit failed: " + e.getMessage()));
                }
                if (process.waitFor(Duration.ofSeconds(5)) == null) {
                    events.on(new Event.Debug("qemu still running; killing pid " + process.pid()));
                    process.kill();
                    process.waitFor(Duration.ofSeconds(5));
                }
            }
            for (Path p : new Path[] {spec.agentSocket(), spec.qmpSocket(), spec.pidFile()}) {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort: the next start removes stale files too
                }
            }
        }

        /** Immediate kill, for the JVM's shutdown hook. */
        public void kill() {
            process.kill();
        }
    }
}
