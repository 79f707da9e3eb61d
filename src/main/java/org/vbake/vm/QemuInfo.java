package org.vbake.vm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.process.ProcessRunner;

/**
 * What a QEMU binary is: its resolved path, its version line, and the versioned machine type an
 * alias stands for ({@code virt} → {@code virt-7.2}). A saved guest can only be restored by the
 * same binary with the same machine type, so both are part of what a snapshot is bound to.
 * Asked once per binary (two short runs) and remembered in the cache by the binary's size and
 * modification time.
 *
 * @param binary  the resolved executable
 * @param version QEMU's first {@code --version} line
 * @param machine the versioned machine type for the alias asked for
 */
public record QemuInfo(Path binary, String version, String machine) {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern ALIAS = Pattern.compile("^(\\S+)\\s+.*\\(alias of (\\S+)\\)\\s*$");

    /**
     * @param binaryName {@code qemu-system-aarch64}, found on PATH
     * @param machine    the profile's machine (an alias or already versioned)
     * @param cacheFile  where answers are remembered (created if missing)
     */
    public static QemuInfo of(String binaryName, String machine, Path cacheFile, ProcessRunner runner)
            throws IOException, InterruptedException {
        Path binary = which(binaryName);
        BasicFileAttributes a = Files.readAttributes(binary, BasicFileAttributes.class);
        String stamp = a.size() + ":" + a.lastModifiedTime().toMillis();
        String key = binary + "|" + machine;
        ObjectNode cache = readCache(cacheFile);
        JsonNode hit = cache.path(key);
        if (stamp.equals(hit.path("stamp").asText(null))) {
            return new QemuInfo(binary, hit.path("version").asText(), hit.path("machine").asText());
        }
        String version = firstLine(runner, List.of(binary.toString(), "--version"));
        String resolved = machine;
        for (String line : lines(runner, List.of(binary.toString(), "-machine", "help"))) {
            Matcher m = ALIAS.matcher(line);
            if (m.matches() && m.group(1).equals(machine)) {
                resolved = m.group(2);
            }
        }
        ObjectNode entry = cache.putObject(key);
        entry.put("stamp", stamp);
        entry.put("version", version);
        entry.put("machine", resolved);
        writeCache(cacheFile, cache);
        return new QemuInfo(binary, version, resolved);
    }

    static Path which(String name) throws IOException {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            Path p = dir.isEmpty() ? null : Path.of(dir, name);
            if (p != null && Files.isExecutable(p)) {
                return p.toRealPath();
            }
        }
        throw new IOException(name + " is not on PATH");
    }

    private static List<String> lines(ProcessRunner runner, List<String> argv) throws IOException {
        List<String> out = new ArrayList<>();
        ProcessRunner.Result r = runner.run(argv, Map.of(), Duration.ofSeconds(30), out::add);
        if (!r.ok()) {
            throw new IOException(String.join(" ", argv) + ": exit " + r.exitCode());
        }
        return out;
    }

    private static String firstLine(ProcessRunner runner, List<String> argv) throws IOException {
        List<String> out = lines(runner, argv);
        return out.isEmpty() ? "" : out.get(0).strip();
    }

    private static ObjectNode readCache(Path file) {
        try {
            JsonNode n = JSON.readTree(Files.readAllBytes(file));
            return n instanceof ObjectNode o ? o : JSON.createObjectNode();
        } catch (IOException e) {
            return JSON.createObjectNode();
        }
    }

    private static void writeCache(Path file, ObjectNode cache) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(file.getFileName() + "." + ProcessHandle.current().pid());
            Files.write(tmp, JSON.writeValueAsBytes(cache));
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException ignored) {
            // asked again next time
        }
    }
}
