package org.vbake.api;

import java.util.Locale;
import java.util.Optional;

/** Which container engine a guest runs. */
public enum RuntimeKind {
    DOCKER("docker"),
    PODMAN("podman");

    private final String id;

    RuntimeKind(String id) {
        this.id = id;
    }

    public String id() {
        return id;
    }

    public static Optional<RuntimeKind> parse(String name) {
        if (name == null) {
            return Optional.empty();
        }
        String n = name.trim().toLowerCase(Locale.ROOT);
        for (RuntimeKind r : values()) {
            if (r.id.equals(n)) {
                return Optional.of(r);
            }
        }
        return Optional.empty();
    }

    @Override
    public String toString() {
        return id;
    }
}
