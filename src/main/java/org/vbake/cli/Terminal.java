package org.vbake.cli;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * The user's terminal during {@code -it}: raw mode (so Ctrl-C and every other key reach the
 * container as bytes), its size, and SIGWINCH. Java cannot set terminal modes itself, so
 * {@code stty} does it on {@code /dev/tty}; the old settings come back on {@link #close()}.
 */
final class Terminal implements AutoCloseable {

    private final String saved;
    private final Thread restoreOnExit;
    private SignalHandler previousWinch;

    private Terminal(String saved) {
        this.saved = saved;
        // SIGTERM or SIGHUP end the JVM without close(): the user's shell must not be left raw.
        this.restoreOnExit = new Thread(this::restore, "vbake-restore-terminal");
        Runtime.getRuntime().addShutdownHook(restoreOnExit);
    }

    /** Whether this process's stdin and stdout are a terminal. */
    static boolean interactive() {
        return System.console() != null;
    }

    /** Puts the terminal into raw mode; {@code onResize} gets (rows, cols) on every window change. */
    static Terminal raw(BiConsumer<Integer, Integer> onResize) throws IOException, InterruptedException {
        String saved = stty("-g").strip();
        stty("raw", "-echo");
        Terminal t = new Terminal(saved);
        try {
            t.previousWinch = Signal.handle(new Signal("WINCH"), sig -> {
                int[] size = size();
                if (size[0] > 0) {
                    onResize.accept(size[0], size[1]);
                }
            });
        } catch (IllegalArgumentException e) {
            // no SIGWINCH on this platform: the size stays as it was at the start
        }
        return t;
    }

    /** {rows, cols}, or {0, 0} when unknown. */
    static int[] size() {
        try {
            String[] f = stty("size").strip().split("\\s+");
            return new int[] {Integer.parseInt(f[0]), Integer.parseInt(f[1])};
        } catch (IOException | RuntimeException e) {
            return new int[] {0, 0};
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new int[] {0, 0};
        }
    }

    @Override
    public void close() {
        try {
            Runtime.getRuntime().removeShutdownHook(restoreOnExit);
        } catch (IllegalStateException e) {
            return;   // shutting down: the hook restores the terminal
        }
        if (previousWinch != null) {
            Signal.handle(new Signal("WINCH"), previousWinch);
        }
        restore();
    }

    private void restore() {
        try {
            stty(saved);
        } catch (IOException | RuntimeException e) {
            // the terminal is left raw; 'reset' fixes it
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String stty(String... args) throws IOException, InterruptedException {
        List<String> argv = new java.util.ArrayList<>(List.of("stty"));
        argv.addAll(List.of(args));
        Process p = new ProcessBuilder(argv).redirectInput(new File("/dev/tty"))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(5, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("stty " + String.join(" ", args) + " failed");
        }
        return out;
    }
}
