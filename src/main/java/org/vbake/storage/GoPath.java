package org.vbake.storage;

import java.util.ArrayDeque;
import java.util.Deque;

/** Go's path/filepath functions the engines apply to layer entry names, on Unix. */
public final class GoPath {

    private GoPath() {
    }

    /** filepath.Clean: "." for nothing, a leading "/" kept, ".." resolved lexically. */
    public static String clean(String p) {
        if (p.isEmpty()) {
            return ".";
        }
        boolean rooted = p.charAt(0) == '/';
        Deque<String> out = new ArrayDeque<>();
        for (String part : p.split("/")) {
            if (part.isEmpty() || part.equals(".")) {
                continue;
            }
            if (part.equals("..")) {
                if (!out.isEmpty() && !out.peekLast().equals("..")) {
                    out.removeLast();
                } else if (!rooted) {
                    out.addLast("..");
                }
                continue;
            }
            out.addLast(part);
        }
        String joined = String.join("/", out);
        if (rooted) {
            return "/" + joined;
        }
        return joined.isEmpty() ? "." : joined;
    }

    /**
     * Where {@code filepath.Join(dest, name)} lands below {@code dest}, as a tree path ("" for
     * dest itself); null when it climbs out (the engines refuse that as a breakout).
     */
    public static String below(String name) {
        String c = clean("/" + name);
        return c.equals("/") ? "" : c.substring(1);
    }

    /** Whether a cleaned, relative name climbs out of the directory it is joined to. */
    public static boolean climbsOut(String cleaned) {
        return cleaned.equals("..") || cleaned.startsWith("../");
    }
}
