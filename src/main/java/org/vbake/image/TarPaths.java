package org.vbake.image;

import java.util.ArrayDeque;
import java.util.Deque;

/** Names of entries in image and layer tars, as the same path however an archiver spelled it. */
public final class TarPaths {

    private TarPaths() {
    }

    /** {@code ./a//b/../c/}, {@code /a/c} and {@code a/c} all name {@code a/c}; never climbs above the root. */
    public static String normalize(String name) {
        return join("/", name).substring(1);
    }

    /**
     * {@code dir/name} cleaned as Go's {@code filepath.Join} does (the engines' own check): an
     * absolute path, with {@code ..} climbing out of {@code dir} when there are enough of them.
     */
    public static String join(String dir, String name) {
        Deque<String> parts = new ArrayDeque<>();
        for (String part : (dir + "/" + name).split("/")) {
            if (part.isEmpty() || part.equals(".")) {
                continue;
            }
            if (part.equals("..")) {
                parts.pollLast();
            } else {
                parts.addLast(part);
            }
        }
        return "/" + String.join("/", parts);
    }
}
