package org.vbake.image.registry;

import java.util.Locale;
import java.util.Objects;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;
import org.vbake.image.Digest;

/**
 * An image reference as users write it for docker ({@code alpine}, {@code quay.io/x/y:1@sha256:..}),
 * normalised the way docker does, so names and RepoDigests come out as docker shows them.
 */
public final class ImageRef {

    public static final String DOCKER_HUB = "docker.io";
    private static final String DOCKER_HUB_API = "registry-1.docker.io";
    private static final String DEFAULT_TAG = "latest";
    private static final int MAX_NAME_LENGTH = 255;

    private static final Pattern COMPONENT = Pattern.compile("[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*");
    private static final Pattern TAG = Pattern.compile("\\w[\\w.-]{0,127}");
    private static final String LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
    private static final Pattern DOMAIN = Pattern.compile(
            "(?:" + LABEL + "(?:\\." + LABEL + ")*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]{1,5})?");
    private static final Pattern HEX64 = Pattern.compile("[a-f0-9]{64}");

    private final String registry;
    private final String repository;
    private final String tag;
    private final Digest digest;

    private ImageRef(String registry, String repository, String tag, Digest digest) {
        this.registry = registry;
        this.repository = repository;
        this.tag = tag;
        this.digest = digest;
    }

    /**
     * Parses {@code [registry/]path[:tag][@sha256:hex]}. The first component is a registry when it
     * contains '.' or ':' or is {@code localhost}; otherwise the image is on docker.io, where a
     * one-component path lives under {@code library/}. Without tag and digest the tag is {@code latest}.
     */
    public static ImageRef parse(String text) throws BadInputException {
        if (text == null || text.isEmpty()) {
            throw new BadInputException("invalid image reference '': it is empty");
        }
        String rest = text;
        Digest digest = null;
        int at = rest.indexOf('@');
        if (at >= 0) {
            String d = rest.substring(at + 1);
            if (!d.startsWith("sha256:")) {
                throw invalid(text, "only sha256 digests are supported, got '" + d + "'");
            }
            if (!HEX64.matcher(d.substring(7)).matches()) {
                throw invalid(text, "the digest must be sha256: and 64 lowercase hex digits");
            }
            digest = new Digest(d.substring(7));
            rest = rest.substring(0, at);
        }
        String tag = null;
        int colon = rest.lastIndexOf(':');
        if (colon > rest.lastIndexOf('/')) {
            tag = rest.substring(colon + 1);
            if (!TAG.matcher(tag).matches()) {
                throw invalid(text, "tag '" + tag + "' must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
            }
            rest = rest.substring(0, colon);
        }
        if (rest.isEmpty()) {
            throw invalid(text, "the repository name is empty");
        }

        String registry;
        String path;
        int slash = rest.indexOf('/');
        String first = slash < 0 ? null : rest.substring(0, slash);
        if (first != null && (first.contains(".") || first.contains(":") || first.equals("localhost"))) {
            registry = first;
            path = rest.substring(slash + 1);
            if (!DOMAIN.matcher(registry).matches()) {
                throw invalid(text, "'" + registry + "' is not a valid registry host[:port]");
            }
        } else {
            registry = DOCKER_HUB;
            path = rest;
            if (HEX64.matcher(path).matches()) {
                throw invalid(text, "a repository name cannot be a 64-digit hex string (that looks like an image ID)");
            }
        }
        if (registry.equals("index.docker.io")) {
            registry = DOCKER_HUB;
        }
        if (registry.equals(DOCKER_HUB) && !path.contains("/")) {
            path = "library/" + path;
        }
        for (String component : path.split("/", -1)) {
            if (!COMPONENT.matcher(component).matches()) {
                String why = !component.equals(component.toLowerCase(Locale.ROOT))
                        ? "repository names must be lowercase"
                        : "path component '" + component + "' must be lowercase letters and digits, "
                                + "separated by '.', '_', '__' or '-'";
                throw invalid(text, why);
            }
        }
        if (registry.length() + 1 + path.length() > MAX_NAME_LENGTH) {
            throw invalid(text, "the name is longer than " + MAX_NAME_LENGTH + " characters");
        }
        if (tag == null && digest == null) {
            tag = DEFAULT_TAG;
        }
        return new ImageRef(registry, path, tag, digest);
    }

    private static BadInputException invalid(String text, String why) {
        return new BadInputException("invalid image reference '" + text + "': " + why);
    }

    /** As written, normalised: {@code docker.io}, {@code quay.io}, {@code 127.0.0.1:5000}. */
    public String registry() {
        return registry;
    }

    /** The path inside the registry: {@code library/alpine}. */
    public String repository() {
        return repository;
    }

    /** Null when only a digest was given. */
    public String tag() {
        return tag;
    }

    /** Null when pulled by tag. When both are given, the digest is what is pulled. */
    public Digest digest() {
        return digest;
    }

    /** {@code docker.io/library/alpine}: the repository as docker records it. */
    public String name() {
        return registry + "/" + repository;
    }

    /** The host[:port] that serves the distribution API; docker.io's is {@code registry-1.docker.io}. */
    public String apiHost() {
        return registry.equals(DOCKER_HUB) ? DOCKER_HUB_API : registry;
    }

    /** What to ask the registry for: the digest when there is one, else the tag. */
    public String reference() {
        return digest != null ? digest.toString() : tag;
    }

    /** The same image pinned: {@code name[:tag]@digest}. */
    public ImageRef withDigest(Digest d) {
        return new ImageRef(registry, repository, tag, Objects.requireNonNull(d));
    }

    @Override
    public String toString() {
        return name() + (tag != null ? ":" + tag : "") + (digest != null ? "@" + digest : "");
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ImageRef r && registry.equals(r.registry) && repository.equals(r.repository)
                && Objects.equals(tag, r.tag) && Objects.equals(digest, r.digest);
    }

    @Override
    public int hashCode() {
        return Objects.hash(registry, repository, tag, digest);
    }
}
