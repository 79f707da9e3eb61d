package org.vbake.vm;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Why a guest went away, in one line: how QEMU ended, what QEMU printed and the first line on
 * the guest console that looks like the cause (kernel panic, oops, a crashed program, the
 * agent's own last words). A user reading "connection closed" learns nothing; "the guest kernel
 * said: Kernel panic ..." tells them where to look.
 */
public final class GuestPostMortem {

    /** Console lines that say why a guest died, most telling first. */
    private static final List<Pattern> CAUSES = List.of(
            Pattern.compile("Kernel panic - not syncing.*"),
            Pattern.compile("(BUG|Oops|general protection fault|invalid opcode|Out of memory)\\b.*"),
            Pattern.compile("\\S+\\[\\d+\\]: segfault at .*|traps: .*"),
            Pattern.compile("^(panic|fatal error): .*|^SIG[A-Z]+: .*|^unexpected fault address .*"),
            Pattern.compile("^vbake-agent: .*(fatal|failed|error|cannot).*"));

    private static final Pattern KERNEL_TIME = Pattern.compile("^\\[\\s*\\d+\\.\\d+\\]\\s*");
    private static final int MAX = 200;

    private GuestPostMortem() {
    }

    /**
     * One line for an error message from the console's and QEMU's log lines, or null when
     * nothing is known. {@code qemuExit} is QEMU's exit status (128+N for a signal), or null while
     * it runs.
     */
    public static String explain(Integer qemuExit, List<String> console, List<String> qemu) {
        List<String> parts = new ArrayList<>();
        if (qemuExit != null) {
            parts.add(qemuExit > 128 && qemuExit < 128 + 65
                    ? "QEMU was killed by signal " + (qemuExit - 128)
                    : "QEMU exited with status " + qemuExit);
        }
        String qemuSaid = lastNonBlank(qemu);
        if (qemuSaid != null) {
            parts.add("QEMU said: " + clip(qemuSaid));
        }
        String cause = cause(console);
        if (cause != null) {
            parts.add("the guest console says: " + clip(cause));
        }
        return parts.isEmpty() ? null : String.join("; ", parts);
    }

    /** The first console line matching the most telling pattern, timestamps removed. */
    static String cause(List<String> console) {
        for (Pattern p : CAUSES) {
            for (String raw : console) {
                String line = KERNEL_TIME.matcher(raw.strip()).replaceFirst("");
                if (p.matcher(line).find()) {
                    return line;
                }
            }
        }
        return null;
    }

    private static String lastNonBlank(List<String> lines) {
        for (int i = lines.size() - 1; i >= 0; i--) {
            if (!lines.get(i).isBlank()) {
                return lines.get(i).strip();
            }
        }
        return null;
    }

    private static String clip(String s) {
        return s.length() <= MAX ? s : s.substring(0, MAX) + "...";
    }

    /** A log's lines, none if it is missing; binary junk from a dying guest does not fail it. */
    public static List<String> readLines(Path file) {
        if (file == null) {
            return List.of();
        }
        try {
            return new String(Files.readAllBytes(file), StandardCharsets.UTF_8).lines().toList();
        } catch (IOException e) {
            return List.of();
        }
    }
}
