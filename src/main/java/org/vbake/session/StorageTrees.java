package org.vbake.session;

import com.github.luben.zstd.ZstdInputStream;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.storage.InputDisk;
import org.vbake.storage.StoreKind;

/**
 * An exported storage tree going back into a guest ({@code --input-storage}, {@code vbake verify}):
 * staged on the input disk on the host, unpacked onto the state disk before the engine starts, by
 * the agent's own extractor so whiteouts, xattrs and hardlinks come back exactly.
 */
public final class StorageTrees {

    static final String NAME = "storage.tar";

    private StorageTrees() {
    }

    /** Puts {@code tar} (.tar, .tar.gz or .tar.zst) on the disk; zstd is undone here, gzip by the guest. */
    public static void stage(Path tar, InputDisk disk) throws IOException, VbakeException {
        byte[] magic = new byte[4];
        try (InputStream in = Files.newInputStream(tar)) {
            int n = in.readNBytes(magic, 0, 4);
            if (n < 4) {
                throw new BadInputException(tar + ": too short to be a storage tree");
            }
        }
        boolean zstd = (magic[0] & 0xff) == 0x28 && (magic[1] & 0xff) == 0xb5 && (magic[2] & 0xff) == 0x2f
                && (magic[3] & 0xff) == 0xfd;
        if (!zstd) {
            disk.add(tar, NAME);
            return;
        }
        disk.write(NAME, out -> {
            try (InputStream in = new ZstdInputStream(new BufferedInputStream(Files.newInputStream(tar), 1 << 16))) {
                in.transferTo(out);
            } catch (IOException e) {
                throw new BadInputException(tar + ": corrupt zstd data: " + e.getMessage());
            }
        });
    }

    /** Looks at the tree's paths to tell the engine and driver that wrote it; null when it cannot tell. */
    public static StoreKind sniff(Path tar) throws IOException, BadInputException {
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(tar), 1 << 16);
                InputStream in = decompressed(raw, tar);
                org.apache.commons.compress.archivers.tar.TarArchiveInputStream t =
                        new org.apache.commons.compress.archivers.tar.TarArchiveInputStream(in)) {
            for (int i = 0; i < 100000; i++) {
                org.apache.commons.compress.archivers.tar.TarArchiveEntry e = t.getNextEntry();
                if (e == null) {
                    return null;
                }
                String n = e.getName().startsWith("./") ? e.getName().substring(2) : e.getName();
                StoreKind kind = StoreKind.evidence(n);
                if (kind != null) {
                    return kind;
                }
            }
            return null;
        } catch (IOException | IllegalArgumentException e) {
            throw new BadInputException(tar + ": not a readable storage tree: " + e.getMessage());
        }
    }

    private static InputStream decompressed(InputStream raw, Path tar) throws IOException {
        raw.mark(4);
        byte[] m = raw.readNBytes(4);
        raw.reset();
        if (m.length >= 2 && (m[0] & 0xff) == 0x1f && (m[1] & 0xff) == 0x8b) {
            return new java.util.zip.GZIPInputStream(raw, 1 << 16);
        }
        if (m.length == 4 && (m[0] & 0xff) == 0x28 && (m[1] & 0xff) == 0xb5 && (m[2] & 0xff) == 0x2f
                && (m[3] & 0xff) == 0xfd) {
            return new ZstdInputStream(raw);
        }
        return raw;
    }

    /** Replaces the storage root's content with the staged tree. Run before the engine starts. */
    public static void unpack(GuestSession session, InputDisk disk, EventListener events)
            throws VbakeException, InterruptedException {
        unpack(session, List.of(GuestSession.AGENT, "import-tree", "--root", session.runtime().storagePath(),
                "--file", disk.guestPath(NAME)), events);
    }

    /**
     * Replaces the storage root's content with the tree of an ext4 partition image given to the
     * guest as its input disk (a bake's {@code storage.ext4}), copied with the agent's tree tools.
     */
    public static void unpackPartition(GuestSession session, EventListener events)
            throws VbakeException, InterruptedException {
        String root = session.runtime().storagePath();
        unpack(session, List.of("/bin/sh", "-c", "set -o pipefail; " + GuestSession.AGENT + " export-tree --root "
                + InputDisk.GUEST_MOUNT + " --exclude lost+found | " + GuestSession.AGENT + " import-tree --root \"$1\"",
                "sh", root), events);
    }

    private static void unpack(GuestSession session, List<String> argv, EventListener events)
            throws VbakeException, InterruptedException {
        long t0 = System.nanoTime();
        String root = session.runtime().storagePath();
        events.on(new Event.Progress("unpacking the storage tree into " + root));
        session.check(List.of("/bin/sh", "-c", "cd \"$1\" && for f in * .[!.]* ..?*; do "
                + "[ -e \"$f\" ] || [ -L \"$f\" ] || continue; case \"$f\" in lost+found|" + ContainerRuntime.TRANSFER_DIR + ") continue;; esac; "
                + "rm -rf \"$f\"; done",
                "sh", root), "empty " + root);
        try {
            session.check(argv, "unpack the storage tree");
        } catch (VbakeException e) {
            throw new BadInputException(e.getMessage());
        }
        events.on(new Event.Phase("storage tree unpacked", Duration.ofNanos(System.nanoTime() - t0)));
    }
}
