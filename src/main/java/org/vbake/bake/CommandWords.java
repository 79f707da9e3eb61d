package org.vbake.bake;

import java.util.ArrayList;
import java.util.List;

/**
 * Splits a command line into words the two ways vbake reads them: as systemd reads
 * {@code ExecStart=} (C escapes, {@code %%} and {@code $$}) and as compose reads a string
 * {@code command:} (POSIX shell quoting, no expansion).
 */
public final class CommandWords {

    private CommandWords() {
    }

    /** systemd's splitting: whitespace separates, double or single quotes group, C escapes, %% and $$. */
    public static List<String> systemd(String s) {
        return split(s, true);
    }

    /**
     * A shell's splitting without expansion: whitespace separates, quotes group, a backslash
     * escapes the next character outside single quotes.
     *
     * @throws IllegalArgumentException a quote that is not closed
     */
    public static List<String> shell(String s) {
        return split(s, false);
    }

    private static List<String> split(String s, boolean systemd) {
        List<String> words = new ArrayList<>();
        StringBuilder cur = null;
        char quote = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (quote == 0 && Character.isWhitespace(c)) {
                if (cur != null) {
                    words.add(cur.toString());
                    cur = null;
                }
                continue;
            }
            if (cur == null) {
                cur = new StringBuilder();
            }
            if (quote == 0 && (c == '"' || c == '\'')) {
                quote = c;
            } else if (quote != 0 && c == quote) {
                quote = 0;
            } else if (c == '\\' && (systemd || quote != '\'') && i + 1 < s.length()) {
                char n = s.charAt(++i);
                cur.append(systemd && n == 'n' ? '\n' : systemd && n == 't' ? '\t' : n);
            } else if (systemd && (c == '%' || c == '$') && i + 1 < s.length() && s.charAt(i + 1) == c) {
                cur.append(c);
                i++;
            } else {
                cur.append(c);
            }
        }
        if (quote != 0 && !systemd) {
            throw new IllegalArgumentException("unterminated " + quote + " quote");
        }
        if (cur != null) {
            words.add(cur.toString());
        }
        return words;
    }
}
