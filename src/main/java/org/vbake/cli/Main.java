package org.vbake.cli;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.vbake.api.RuntimeKind;

/**
 * Entry point for the three launchers. {@code bin/vdkr} and {@code bin/vpdmn} pass their own name
 * in {@code -Dvbake.prog}, so one jar serves {@code vdkr}, {@code vdkr-aarch64}, {@code vpdmn} and
 * {@code vbake}.
 */
public final class Main {

    private Main() {
    }

    public static void main(String[] args) {
        String prog = System.getProperty("vbake.prog", "vbake");
        InputStream stdin = stdinIsForwardable() ? new FileInputStream(FileDescriptor.in) : null;
        int code = run(prog, args, stdin, new FileOutputStream(FileDescriptor.out),
                new FileOutputStream(FileDescriptor.err), System.getenv(), true);
        System.exit(code);
    }

    /**
     * Runs one command line and returns its exit code; never calls System.exit, so tests can call
     * it in-process.
     *
     * @param stdin forwarded to the guest command, or null for /dev/null
     * @param handleSignals install Ctrl-C forwarding (only for the real process)
     */
    public static int run(String prog, String[] args, InputStream stdin, OutputStream out, OutputStream err,
            Map<String, String> env, boolean handleSignals) {
        PrintStream errPrint = new PrintStream(err, true, StandardCharsets.UTF_8);
        String base = Path.of(prog).getFileName().toString();
        if (base.equals(ClassDataTraining.PROG)) {
            return ClassDataTraining.run();
        }
        if (base.equals(org.vbake.resident.ResidentClient.DAEMON_PROG)) {
            // Started by 'vmemres start', its output already goes to the daemon log.
            return org.vbake.resident.ResidentDaemon.main(args, errPrint);
        }
        if (base.startsWith("vdkr")) {
            return new EngineCli(new ToolConfig(base, RuntimeKind.DOCKER, env,
                    ToolConfig.defaultConfigFile(RuntimeKind.DOCKER, env)), stdin, out, errPrint, handleSignals).run(args);
        }
        if (base.startsWith("vpdmn")) {
            return new EngineCli(new ToolConfig(base, RuntimeKind.PODMAN, env,
                    ToolConfig.defaultConfigFile(RuntimeKind.PODMAN, env)), stdin, out, errPrint, handleSignals).run(args);
        }
        return VbakeCli.run(args, new PrintStream(out, true, StandardCharsets.UTF_8), errPrint, env);
    }

    /**
     * Host stdin goes to the guest command when it is a pipe or a file (e.g. {@code vdkr load < x.tar}),
     * not when it is a terminal or /dev/null.
     */
    static boolean stdinIsForwardable() {
        try {
            String target = Files.readSymbolicLink(Path.of("/proc/self/fd/0")).toString();
            return !(target.startsWith("/dev/pts/") || target.startsWith("/dev/tty") || target.equals("/dev/null")
                    || target.equals("/dev/console"));
        } catch (Exception e) {
            return false;
        }
    }
}
