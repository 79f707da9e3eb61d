package org.vbake.session;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.process.ProcessRunner;

/**
 * A bake's {@code output: ext4}: the baked storage tree as an ext4 partition image whose bytes
 * depend only on the tree. The guest's {@code mke2fs -d} (e2fsprogs 1.47.2 reads a tar itself,
 * so owners, xattrs, whiteouts and hardlinks come from the tar headers, never from a mounted
 * filesystem) writes it with a UUID and directory hash seed derived from the tree's digest and
 * every filesystem time set to SOURCE_DATE_EPOCH. A first pass measures the smallest filesystem
 * the tree fits in; the second makes the image at that size plus {@link #MARGIN_PERCENT} (or at
 * the size the manifest asks for) on a freshly discarded disk, so no byte of the first pass stays.
 */
public final class Ext4Packer {

    /** Room left above the measured minimum when the manifest gives no {@code size:}. */
    public static final int MARGIN_PERCENT = 10;
    /** ... and at least this much. */
    public static final long MIN_MARGIN = 16L << 20;

    private static final Pattern NEEDS = Pattern.compile("size: the tree needs at least (\\d+) bytes");
    private static final Pattern MINIMUM = Pattern.compile("(?m)^vbake-minimum-blocks:\\s*(\\d+)");
    private static final Pattern BLOCK_COUNT = Pattern.compile("(?m)^Block count:\\s+(\\d+)");
    private static final Pattern BLOCK_SIZE = Pattern.compile("(?m)^Block size:\\s+(\\d+)");
    private static final long BLOCK = 4096;

    /**
     * What was made.
     *
     * @param imageBytes   the image's size
     * @param minimumBytes the smallest ext4 filesystem (4 KiB blocks) the tree fits in, by resize2fs's estimate
     * @param uuid         the filesystem UUID (also the directory hash seed)
     */
    public record Packed(long imageBytes, long minimumBytes, String uuid) {
    }

    private final ProcessRunner runner;
    private final EventListener events;

    public Ext4Packer(ProcessRunner runner, EventListener events) {
        this.runner = runner;
        this.events = events;
    }

    /** The UUID an image of a tree with this sha256 gets: name-based, so the same tree gives the same one. */
    public static String uuidFor(String treeSha256) {
        return UUID.nameUUIDFromBytes(("vbake ext4 " + treeSha256).getBytes(StandardCharsets.UTF_8)).toString();
    }

    /**
     * Writes {@code target} from the uncompressed tree tar {@code treeTar}.
     *
     * @param options     the guest to use (a trixie one: bookworm's mke2fs reads no tar)
     * @param treeSha256  the tar's digest, which names the filesystem
     * @param epoch       SOURCE_DATE_EPOCH: every time the filesystem records
     * @param sizeBytes   the image size the manifest asks for, or null for the minimum plus the margin
     */
    public Packed pack(Path treeTar, Path target, GuestOptions options, String treeSha256, long epoch, Long sizeBytes)
            throws VbakeException, InterruptedException, IOException {
        long t0 = System.nanoTime();
        long tarBytes = Files.size(treeTar);
        // The first pass needs room for the tree as ext4 lays it out: its bytes, a block per small
        // file, inode tables and the journal. Sparse: only what mke2fs writes takes host disk.
        long scratchBytes = Math.max(1L << 30, 3 * tarBytes + (256L << 20));
        if (sizeBytes != null) {
            scratchBytes = Math.max(scratchBytes, sizeBytes);
        }
        Path disk = target.resolveSibling("." + target.getFileName() + ".disk");
        Files.deleteIfExists(disk);
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(scratchBytes);
        }
        String uuid = uuidFor(treeSha256);
        String stage = org.vbake.runtime.ContainerRuntime.of(options.runtime(), options.storageDriver())
                .storagePath() + "/" + org.vbake.runtime.ContainerRuntime.TRANSFER_DIR + "/ext4-"
                + ProcessHandle.current().pid();
        try {
            GuestOptions o = options.resume() ? options : options.withOutputDisk(disk);
            events.on(new Event.Progress("making the ext4 image in the " + o.arch() + " " + o.suite() + " guest"));
            String info;
            try (GuestSession session = GuestSession.start(o, runner, events, GuestSession.Preparation.NONE)) {
                if (o.resume()) {
                    // Added now: the saved guest had no such disk (this guest is powered off at its end).
                    session.guest().attachDisk("output", disk);
                }
                long tc = System.nanoTime();
                // Unpacked by the agent (owners, modes, xattrs, devices, hardlinks as the tar says)
                // onto the state disk, for mke2fs -d to copy.
                session.copyIn(stage, out -> Files.copy(treeTar, out));
                GuestSession.phase(events, "tree unpacked in the guest", tc);
                try {
                    info = session.check(List.of("/bin/sh", "-c", script(stage, uuid, epoch, sizeBytes)),
                            "make the ext4 image");
                } catch (VbakeException e) {
                    Matcher needs = NEEDS.matcher(String.valueOf(e.getMessage()));
                    if (sizeBytes != null && needs.find()) {
                        throw new BadInputException(String.format(Locale.ROOT, "size: %d bytes is less than the %s "
                                + "bytes (%.1f MB) the tree needs as ext4", sizeBytes, needs.group(1),
                                Long.parseLong(needs.group(1)) / 1e6), "give a larger size:, or none for the "
                                + "size needed plus " + MARGIN_PERCENT + "%");
                    }
                    throw e;
                }
            }
            Matcher min = MINIMUM.matcher(info);
            Matcher count = BLOCK_COUNT.matcher(info);
            Matcher size = BLOCK_SIZE.matcher(info);
            if (!min.find() || !count.find() || !size.find()) {
                throw new VbakeException(1, "cannot read the ext4 image's size from dumpe2fs", null, null);
            }
            long blockSize = Long.parseLong(size.group(1));
            long bytes = Long.parseLong(count.group(1)) * blockSize;
            long minimum = Long.parseLong(min.group(1)) * blockSize;
            try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
                f.setLength(bytes);
            }
            Files.move(disk, target);
            events.on(new Event.Progress(String.format(Locale.ROOT, "wrote %s (ext4, %.1f MB; the tree needs %.1f MB)",
                    target.getFileName(), bytes / 1e6, minimum / 1e6)));
            events.on(new Event.Phase("ext4 image", Duration.ofNanos(System.nanoTime() - t0)));
            return new Packed(bytes, minimum, uuid);
        } finally {
            Files.deleteIfExists(disk);
        }
    }

    /**
     * The guest's part. Pass one makes the filesystem on the whole scratch disk and asks resize2fs
     * for the minimum; pass two remakes it at the final size (mke2fs discards the disk first, and
     * QEMU turns that into holes in the host file). mke2fs copies each file's change time from the
     * staged copy, which is the moment it was unpacked: debugfs then sets every inode's to
     * SOURCE_DATE_EPOCH, and the root's times too (the tar has no entry for it).
     */
    static String script(String stage, String uuid, long epoch, Long sizeBytes) {
        String q = "'" + stage + "'";   // a path vbake chose: no quote in it
        String finalBlocks = sizeBytes != null
                ? Long.toString(sizeBytes / BLOCK)
                : "$(( min + (min * " + MARGIN_PERCENT + " / 100 > " + (MIN_MARGIN / BLOCK) + " ? min * "
                        + MARGIN_PERCENT + " / 100 : " + (MIN_MARGIN / BLOCK) + ") ))";
        return "set -e -o pipefail\n"
                + "trap \"rm -rf " + q + "\" EXIT\n"
                + "export E2FSPROGS_FAKE_TIME=" + epoch + "\n"
                + "i=0; until d=$(" + GuestSession.AGENT + " disk vbake-output 2>/dev/null); do i=$((i+1)); "
                + "[ $i -lt 100 ] || { echo 'the output disk did not appear' >&2; exit 1; }; sleep 0.1; done\n"
                + "mkfs() { /usr/sbin/mke2fs -q -F -t ext4 -b 4096 -L vbake-data -U " + uuid + " -E hash_seed=" + uuid
                + ",root_owner=0:0 -d " + q + " \"$d\" \"$@\"; }\n"
                + "mkfs\n"
                + "min=$(/usr/sbin/resize2fs -P \"$d\" 2>/dev/null | sed -n 's/.*: *\\([0-9][0-9]*\\)$/\\1/p' | tail -1)\n"
                + "[ -n \"$min\" ] || { echo 'resize2fs gave no minimum size' >&2; exit 1; }\n"
                + "echo \"vbake-minimum-blocks: $min\"\n"
                + "blocks=" + finalBlocks + "\n"
                + (sizeBytes != null ? "[ \"$blocks\" -ge \"$min\" ] || { echo \"size: the tree needs at least "
                        + "$((min * 4096)) bytes\" >&2; exit 3; }\n" : "")
                + "mkfs \"$blocks\"\n"
                + "/usr/sbin/dumpe2fs \"$d\" 2>/dev/null | awk -v e=" + epoch + " '\n"
                + "  /^Inodes per group:/ { ipg = $4 }\n"
                + "  /^Group [0-9]+:/ { g = $2; sub(/:/, \"\", g) }\n"
                + "  /^  Free inodes:/ { s = $0; sub(/^  Free inodes: */, \"\", s); split(\"\", free)\n"
                + "    n = split(s, parts, /, */); for (k = 1; k <= n; k++) { if (parts[k] == \"\") continue\n"
                + "      m = split(parts[k], r, \"-\"); for (j = r[1]; j <= (m > 1 ? r[2] : r[1]); j++) free[j] = 1 }\n"
                + "    for (j = g * ipg + 1; j <= (g + 1) * ipg; j++) if (!(j in free) && (j == 2 || j > 10))\n"
                + "      print \"sif <\" j \"> ctime @\" e }\n"
                + "  END { print \"sif <2> mtime @\" e; print \"sif <2> atime @\" e }' > /tmp/vbake-ext4-times\n"
                + "/usr/sbin/debugfs -w -f /tmp/vbake-ext4-times \"$d\" >/dev/null 2>/tmp/vbake-ext4-times.err "
                + "|| { cat /tmp/vbake-ext4-times.err >&2; exit 1; }\n"
                + "rm -f /tmp/vbake-ext4-times /tmp/vbake-ext4-times.err\n"
                + "/usr/sbin/dumpe2fs -h \"$d\" 2>/dev/null\n";
    }

    /** The manifest's {@code size:}: bytes, or a number with K, M or G (powers of 1024). */
    public static long parseSize(String text) throws BadInputException {
        Matcher m = Pattern.compile("(\\d{1,15})([KMG]?)i?B?", Pattern.CASE_INSENSITIVE).matcher(text.strip());
        if (!m.matches()) {
            throw new BadInputException("size: '" + text + "' is not a size; write bytes or a number with K, M or G");
        }
        long n = Long.parseLong(m.group(1));
        int shift = switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 10;
            case "M" -> 20;
            case "G" -> 30;
            default -> 0;
        };
        if (n > (Long.MAX_VALUE >> 31)) {
            throw new BadInputException("size: '" + text + "' is too large");
        }
        return n << shift;
    }
}
