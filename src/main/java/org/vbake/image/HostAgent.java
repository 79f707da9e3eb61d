package org.vbake.image;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;
import org.vbake.process.ProcessRunner;

/**
 * The guest agent's tree tools (export-tree, merge-tree) built for the host, from the same source
 * the guest images carry: what moves a {@code -v} directory in and out of a guest keeps hardlinks,
 * FIFOs and names that are not valid UTF-8, which Java's file API cannot make. Built once per
 * agent source with the host's Go (a build dependency of the guest images anyway) and cached.
 */
public final class HostAgent {

    private static final Duration BUILD_TIMEOUT = Duration.ofMinutes(5);

    private final Path cacheDir;
    private final ProcessRunner runner;
    private final EventListener events;

    public HostAgent(Path cacheDir, ProcessRunner runner, EventListener events) {
        this.cacheDir = cacheDir;
        this.runner = runner;
        this.events = events;
    }

    /** The host binary, built first if this agent source has not been built yet. */
    public Path ensure() throws GuestException, InterruptedException {
        Map<String, byte[]> agent = new java.util.TreeMap<>();
        GuestImages.recipe().forEach((name, bytes) -> {
            if (name.startsWith("agent/") && (name.endsWith(".go") || name.endsWith("go.mod"))
                    && !name.endsWith("_test.go")) {
                agent.put(name.substring("agent/".length()), bytes);
            }
        });
        Path dir = cacheDir.resolve("host-agent").resolve(key(agent));
        Path binary = dir.resolve("vbake-agent");
        if (Files.isExecutable(binary)) {
            return binary;
        }
        Path src = null;
        long t0 = System.nanoTime();
        try {
            Files.createDirectories(dir);
            Scratch.sweep(dir, "build-", "");
            src = Scratch.newPrivateDirectory(dir, "build-");
            for (Map.Entry<String, byte[]> e : agent.entrySet()) {
                Files.write(src.resolve(e.getKey()), e.getValue());
            }
            Path out = src.resolve("vbake-agent");
            List<String> lines = new ArrayList<>();
            // Go 1.19 (bookworm) has no 'go build -C': the shell changes directory.
            ProcessRunner.Result r = runner.run(List.of("/bin/sh", "-c", "cd \"$1\" && exec go build -trimpath "
                    + "-ldflags='-s -w -buildid=' -o vbake-agent .", "sh", src.toString()), Map.of("CGO_ENABLED", "0"),
                    BUILD_TIMEOUT, lines::add);
            if (!r.ok()) {
                String last = lines.isEmpty() ? "exit " + r.exitCode() : lines.get(lines.size() - 1);
                throw new GuestException("cannot build vbake's host helper with go: " + last
                        + (r.exitCode() == 127 ? " (install Go: apt-get install golang-go, or run tests/setup-host.sh)"
                                : ""), null, null);
            }
            try {
                Files.move(out, binary, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(out, binary, StandardCopyOption.REPLACE_EXISTING);
            }
            events.on(new Event.Phase("host helper built", Duration.ofNanos(System.nanoTime() - t0)));
            return binary;
        } catch (IOException e) {
            throw new GuestException("cannot build vbake's host helper: " + e.getMessage(), null, e);
        } finally {
            if (src != null) {
                try {
                    Trees.deleteTree(src);
                } catch (IOException ignored) {
                    // swept by the next build
                }
            }
        }
    }

    private static String key(Map<String, byte[]> files) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(System.getProperty("os.arch").getBytes(StandardCharsets.UTF_8));
            for (Map.Entry<String, byte[]> e : files.entrySet()) {
                md.update((byte) 0);
                md.update(e.getKey().getBytes(StandardCharsets.UTF_8));
                md.update((byte) 0);
                md.update(e.getValue());
            }
            return HexFormat.of().formatHex(md.digest(), 0, 8);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
