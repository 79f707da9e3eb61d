package org.vbake.api;

import java.util.Arrays;
import java.util.Locale;
import java.util.Optional;

/** A target architecture, with the names each tool in the chain uses for it. */
public enum Arch {
    AARCH64("aarch64", "arm64", "qemu-system-aarch64"),
    X86_64("x86_64", "amd64", "qemu-system-x86_64");

    private final String id;
    private final String debianArch;
    private final String qemuBinary;

    Arch(String id, String debianArch, String qemuBinary) {
        this.id = id;
        this.debianArch = debianArch;
        this.qemuBinary = qemuBinary;
    }

    /** The name users type and directories are named after: {@code aarch64}, {@code x86_64}. */
    public String id() {
        return id;
    }

    /** Debian's name (dpkg architecture): {@code arm64}, {@code amd64}. */
    public String debianArch() {
        return debianArch;
    }

    /** OCI/Go name as in image configs and platform strings: {@code arm64}, {@code amd64}. */
    public String ociArch() {
        return debianArch;
    }

    public String qemuBinary() {
        return qemuBinary;
    }

    /**
     * Accepts the spellings people use: aarch64/arm64, x86_64/x86-64/amd64 (any case).
     */
    public static Optional<Arch> parse(String name) {
        if (name == null) {
            return Optional.empty();
        }
        String n = name.trim().toLowerCase(Locale.ROOT);
        switch (n) {
            case "aarch64":
            case "arm64":
                return Optional.of(AARCH64);
            case "x86_64":
            case "x86-64":
            case "amd64":
                return Optional.of(X86_64);
            default:
                return Optional.empty();
        }
    }

    /** The architecture of the JVM's host, if it is one vbake can target. */
    public static Optional<Arch> host() {
        return parse(System.getProperty("os.arch"));
    }

    public static String choices() {
        return String.join(", ", Arrays.stream(values()).map(Arch::id).toArray(String[]::new));
    }

    @Override
    public String toString() {
        return id;
    }
}
