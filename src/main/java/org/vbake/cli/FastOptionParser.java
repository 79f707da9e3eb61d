package org.vbake.cli;

import java.lang.reflect.Field;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Fills a picocli options object from the plain forms of its own {@code @Option} declarations
 * ({@code -a x}, {@code --arch x}, {@code --arch=x}, flags), stopping at the first positional
 * word. It exists for speed: building picocli's model loads some 170 classes that the JVM's
 * class-data archive cannot hold (they are Java 5 class files), which is half of the start-up of
 * a command answered by a resident guest. Anything else (help, version, clustered or unknown
 * options, bad values) returns false, and picocli parses the command line with its full rules
 * and messages.
 */
final class FastOptionParser {

    private FastOptionParser() {
    }

    static boolean parse(Object target, String[] argv) {
        Map<String, Field> byName = new HashMap<>();
        Field positional = null;
        for (Field f : target.getClass().getDeclaredFields()) {
            Option o = f.getAnnotation(Option.class);
            if (o != null) {
                if (o.usageHelp() || o.versionHelp()) {
                    continue;   // left to picocli
                }
                for (String n : o.names()) {
                    byName.put(n, f);
                }
            } else if (f.getAnnotation(Parameters.class) != null) {
                positional = f;
            }
        }
        if (positional == null || positional.getType() != List.class) {
            return false;
        }
        try {
            int i = 0;
            for (; i < argv.length; i++) {
                String a = argv[i];
                if (!a.startsWith("-") || a.equals("-")) {
                    break;
                }
                if (a.equals("--")) {
                    i++;
                    break;
                }
                int eq = a.startsWith("--") ? a.indexOf('=') : -1;
                String name = eq < 0 ? a : a.substring(0, eq);
                Field f = byName.get(name);
                if (f == null) {
                    return false;
                }
                Class<?> type = f.getType();
                if (type == boolean.class) {
                    if (eq >= 0) {
                        return false;
                    }
                    f.setBoolean(target, true);
                    continue;
                }
                String value;
                if (eq >= 0) {
                    value = a.substring(eq + 1);
                } else if (i + 1 < argv.length) {
                    value = argv[++i];
                } else {
                    return false;
                }
                if (!set(target, f, value)) {
                    return false;
                }
            }
            @SuppressWarnings("unchecked")
            List<String> rest = (List<String>) positional.get(target);
            rest.addAll(List.of(argv).subList(i, argv.length));
            return true;
        } catch (IllegalAccessException | RuntimeException e) {
            return false;
        }
    }

    @SuppressWarnings("unchecked")
    private static boolean set(Object target, Field f, String value) throws IllegalAccessException {
        Class<?> type = f.getType();
        if (type == String.class) {
            f.set(target, value);
        } else if (type == Path.class) {
            f.set(target, Path.of(value));
        } else if (type == int.class) {
            f.setInt(target, Integer.parseInt(value));
        } else if (type == List.class) {
            ((List<String>) f.get(target)).add(value);
        } else {
            return false;
        }
        return true;
    }
}
