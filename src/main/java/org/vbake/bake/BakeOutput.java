package org.vbake.bake;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.vbake.api.BadInputException;
import org.vbake.instance.Scratch;
import org.vbake.instance.Trees;

/**
 * A bake's output directory and the marker that proves a bake wrote it. A bake replaces an
 * existing directory only when its marker lists exactly what is in it (names and sizes), so a
 * directory that merely holds a {@code listing.json}, or an earlier output the user has added
 * files to, is never deleted. The new output is written beside the old one and swapped in, so
 * readers see the old or the new tree, never half of either.
 */
public final class BakeOutput {

    /** The marker: which files the bake wrote, with their sizes and digests. */
    public static final String MARKER = ".vbake-bake.json";
    static final String KIND = "vbake bake output";

    private static final ObjectMapper JSON = new ObjectMapper();

    private BakeOutput() {
    }

    /**
     * Checks before any work that {@code out} can be written: new, empty, or an earlier bake's
     * untouched output. Anything else is refused, and left as it is.
     */
    public static void check(Path out) throws BadInputException, IOException {
        Path parent = out.toAbsolutePath().getParent();
        if (parent == null || !Files.isDirectory(parent)) {
            throw new BadInputException("-o " + out + ": directory " + parent + " does not exist");
        }
        if (!Files.isWritable(parent)) {
            throw new BadInputException("-o " + out + ": directory " + parent + " is not writable");
        }
        if (Files.isSymbolicLink(out)) {
            throw new BadInputException("-o " + out + ": is a symbolic link", "give the directory it points to");
        }
        if (!Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        if (!Files.isDirectory(out, LinkOption.NOFOLLOW_LINKS)) {
            throw new BadInputException("-o " + out + ": exists and is not a directory");
        }
        Map<String, Long> present = contents(out);
        if (present.isEmpty()) {
            return;
        }
        Path marker = out.resolve(MARKER);
        if (!Files.isRegularFile(marker, LinkOption.NOFOLLOW_LINKS)) {
            throw new BadInputException("-o " + out + ": exists, is not empty and is not an earlier bake's output "
                    + "(no " + MARKER + ")", "choose a new or empty directory; nothing in it was changed");
        }
        Map<String, Long> written = readMarker(marker, out);
        List<String> foreign = new ArrayList<>();
        for (Map.Entry<String, Long> e : present.entrySet()) {
            if (e.getKey().equals(MARKER)) {
                continue;
            }
            Long size = written.get(e.getKey());
            if (size == null || !size.equals(e.getValue())) {
                foreign.add(e.getKey() + (size == null ? "" : " (changed)"));
            }
        }
        if (!foreign.isEmpty()) {
            throw new BadInputException("-o " + out + ": holds files an earlier bake did not write: "
                    + String.join(", ", foreign.subList(0, Math.min(5, foreign.size())))
                    + (foreign.size() > 5 ? " and " + (foreign.size() - 5) + " more" : ""),
                    "move them away or choose another directory; nothing in it was changed");
        }
    }

    /** Files (size) and directories (-1) below {@code dir}, by relative path with '/'. */
    static Map<String, Long> contents(Path dir) throws IOException {
        Map<String, Long> all = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.toList()) {
                if (p.equals(dir)) {
                    continue;
                }
                BasicFileAttributes a = Files.readAttributes(p, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
                String rel = dir.relativize(p).toString().replace('\\', '/');
                all.put(rel, a.isDirectory() ? -1L : a.isRegularFile() ? a.size() : -2L);
            }
        }
        return all;
    }

    private static Map<String, Long> readMarker(Path marker, Path out) throws BadInputException {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(marker));
        } catch (IOException e) {
            throw new BadInputException("-o " + out + ": " + MARKER + " is not a bake's marker (" + e.getMessage() + ")",
                    "choose a new or empty directory; nothing in it was changed");
        }
        if (root == null || !KIND.equals(root.path("kind").asText()) || !root.path("files").isObject()) {
            throw new BadInputException("-o " + out + ": " + MARKER + " is not a bake's marker",
                    "choose a new or empty directory; nothing in it was changed");
        }
        Map<String, Long> files = new TreeMap<>();
        root.path("files").fields().forEachRemaining(e -> {
            files.put(e.getKey(), e.getValue().path("size").asLong(-3));
            // the directories a listed file sits in were written by the bake too
            String name = e.getKey();
            for (int i = name.indexOf('/'); i > 0; i = name.indexOf('/', i + 1)) {
                files.put(name.substring(0, i), -1L);
            }
        });
        return files;
    }

    /**
     * A new directory beside {@code out} for the bake to fill (the umask's permissions, as any
     * directory a build makes), after removing what killed bakes of the same output left.
     */
    public static Path newWorkDir(Path out) throws IOException {
        Path abs = out.toAbsolutePath();
        Scratch.sweep(abs.getParent(), "." + abs.getFileName() + ".partial-", "");
        Scratch.sweep(abs.getParent(), "." + abs.getFileName() + ".old-", "");
        return Scratch.newDirectory(abs.getParent(), "." + abs.getFileName() + ".partial-");
    }

    /**
     * Writes the marker for what {@code work} holds now: every file with its size and digest, and
     * the content key of the inputs ({@link BakeCache}).
     */
    public static void writeMarker(Path work, Map<String, String> digests, String key) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        root.put("kind", KIND);
        root.put("version", 1);
        if (key != null) {
            root.put("key", key);
        }
        ObjectNode files = root.putObject("files");
        for (Map.Entry<String, Long> e : contents(work).entrySet()) {
            if (e.getValue() < 0) {
                continue;
            }
            ObjectNode f = files.putObject(e.getKey());
            f.put("size", e.getValue());
            String d = digests.get(e.getKey());
            if (d != null) {
                f.put("sha256", d);
            }
        }
        Files.write(work.resolve(MARKER), JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root));
    }

    /**
     * Puts the finished {@code work} in place of {@code out} (checked by {@link #check} at the
     * start, and checked again here in case it changed during the bake).
     */
    public static void replace(Path work, Path out) throws IOException, BadInputException {
        check(out);
        Path old = null;
        if (Files.exists(out, LinkOption.NOFOLLOW_LINKS)) {
            Path abs = out.toAbsolutePath();
            old = abs.resolveSibling("." + abs.getFileName() + ".old-" + Scratch.tag());
            Files.move(out, old);
        }
        Files.move(work, out);
        if (old != null) {
            Trees.deleteTree(old);
        }
    }
}
