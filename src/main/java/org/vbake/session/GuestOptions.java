package org.vbake.session;

import java.nio.file.Path;
import java.time.Duration;
import org.vbake.api.Arch;
import org.vbake.api.RuntimeKind;

/**
 * What a user chooses about a guest.
 *
 * @param stateRoot null for the default ({@code ~/.vdkr/<arch>})
 * @param stateSizeMb size of a new state disk (sparse file)
 */
public record GuestOptions(
        Arch arch,
        RuntimeKind runtime,
        String suite,
        Path stateRoot,
        Path cacheDir,
        int memoryMb,
        int cpus,
        long stateSizeMb,
        Duration bootTimeout) {

    public static final String DEFAULT_SUITE = "trixie";

    public static GuestOptions defaults(Arch arch, RuntimeKind runtime) {
        return new GuestOptions(arch, runtime, DEFAULT_SUITE, null, null, 0, 0, 32 * 1024, Duration.ofMinutes(3));
    }

    public GuestOptions withSuite(String s) {
        return new GuestOptions(arch, runtime, s, stateRoot, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout);
    }

    public GuestOptions withStateRoot(Path p) {
        return new GuestOptions(arch, runtime, suite, p, cacheDir, memoryMb, cpus, stateSizeMb, bootTimeout);
    }

    public GuestOptions withCacheDir(Path p) {
        return new GuestOptions(arch, runtime, suite, stateRoot, p, memoryMb, cpus, stateSizeMb, bootTimeout);
    }

    public GuestOptions withResources(int mem, int n) {
        return new GuestOptions(arch, runtime, suite, stateRoot, cacheDir, mem, n, stateSizeMb, bootTimeout);
    }
}
