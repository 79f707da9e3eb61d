package org.vbake.image;

/**
 * Docker's short image names expanded the way docker does, so that {@code alpine} matches
 * {@code docker.io/library/alpine:latest}.
 */
final class ImageNames {

    private ImageNames() {
    }

    /**
     * {@code alpine} → {@code docker.io/library/alpine:latest}, {@code user/app:1} →
     * {@code docker.io/user/app:1}; names with a registry host ({@code localhost/x},
     * {@code reg:5000/x}) keep it. A digest is kept; {@code :latest} is only added without one.
     */
    static String normalize(String ref) {
        String name = ref.trim();
        String digest = "";
        int at = name.indexOf('@');
        if (at >= 0) {
            digest = name.substring(at);
            name = name.substring(0, at);
        }
        int slash = name.lastIndexOf('/');
        int colon = name.lastIndexOf(':');
        String tag = "";
        if (colon > slash) {
            tag = name.substring(colon);
            name = name.substring(0, colon);
        } else if (digest.isEmpty()) {
            tag = ":latest";
        }
        int first = name.indexOf('/');
        String host = first < 0 ? "" : name.substring(0, first);
        boolean hasHost = first >= 0 && (host.contains(".") || host.contains(":") || host.equals("localhost"));
        if (!hasHost) {
            name = "docker.io/" + name;
        } else if (host.equals("index.docker.io")) {
            name = "docker.io" + name.substring(first);
        }
        String path = name.substring(name.indexOf('/') + 1);
        if (name.startsWith("docker.io/") && !path.contains("/")) {
            name = "docker.io/library/" + path;
        }
        return name + tag + digest;
    }

    static boolean sameImage(String a, String b) {
        return a.equals(b) || normalize(a).equals(normalize(b));
    }
}
