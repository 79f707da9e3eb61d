package org.vbake.image;

import java.nio.file.Path;

/** One built guest image set in the cache. */
public record GuestImage(Path dir, String key) {

    public Path kernel() {
        return dir.resolve("vmlinuz");
    }

    public Path initrd() {
        return dir.resolve("initrd.img");
    }

    public Path toolsDisk() {
        return dir.resolve("tools.squashfs");
    }

    public Path kernelConfig() {
        return dir.resolve("kernel.config");
    }

    /** Package versions with the sha256 of each .deb, and the sha256 of each file above. */
    public Path manifest() {
        return dir.resolve("manifest.json");
    }

    public Path buildLog() {
        return dir.resolve("build.log");
    }
}
