package org.vbake.session;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.storage.StorageFile;

/**
 * {@code --storage data.ext4}: the storage tree as an ext4 partition image, for recipes that ship
 * the data-root as its own partition. The guest makes the filesystem on a sparse output disk
 * (so owners, xattrs, whiteouts and hardlinks are written by the Linux ext4 driver itself), copies
 * the tree with the agent's exporter and extractor (same exclusions as the tar), shrinks it to its
 * minimum with resize2fs, and the host cuts the file to that size and renames it into place.
 */
public final class PartitionExporter {

    private static final Pattern BLOCK_COUNT = Pattern.compile("(?m)^Block count:\\s+(\\d+)");
    private static final Pattern BLOCK_SIZE = Pattern.compile("(?m)^Block size:\\s+(\\d+)");

    private final EventListener events;

    public PartitionExporter(EventListener events) {
        this.events = events;
    }

    public static boolean wanted(Path target) {
        return target.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".ext4");
    }

    /**
     * Before boot: a sparse output disk beside the target, big enough for the state disk's data
     * (its allocated size is an upper bound) twice over.
     */
    public static Path prepare(Path target, Path stateDisk, org.vbake.process.ProcessRunner runner)
            throws BadInputException, IOException, InterruptedException {
        StorageFile.checkDirectory(target, "--storage");
        long used = Files.exists(stateDisk) ? allocated(stateDisk, runner) : 0;
        long size = Math.max(1L << 30, 2 * used + (512L << 20));
        StorageFile.sweep(target);
        Path disk = StorageFile.newPartial(target);
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(size);
        }
        return disk;
    }

    /** Bytes the sparse file really uses (Java has no st_blocks). */
    private static long allocated(Path file, org.vbake.process.ProcessRunner runner)
            throws IOException, InterruptedException {
        List<String> out = new ArrayList<>();
        org.vbake.process.ProcessRunner.Result r = runner.run(List.of("du", "-B1", "--", file.toString()),
                java.util.Map.of(), Duration.ofMinutes(1), out::add);
        try {
            return r.ok() && !out.isEmpty() ? Long.parseLong(out.get(0).trim().split("\\s+")[0]) : 0;
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    /** After the command: fills the output disk, shrinks it, and moves it to {@code target}. */
    public Path export(GuestSession session, Path disk, Path target, boolean withContainers, Long mtimeClamp)
            throws VbakeException, InterruptedException {
        ContainerRuntime rt = session.runtime();
        long t0 = System.nanoTime();
        events.on(new Event.Progress("making an ext4 image of " + rt.storagePath() + " for " + target));
        StringBuilder export = new StringBuilder();
        for (String arg : session.exportTreeArgv(List.of(), withContainers, mtimeClamp)) {
            export.append(export.length() == 0 ? "" : " ").append('\'').append(arg.replace("'", "'\\''")).append('\'');
        }
        // Full paths: busybox sh prefers its own applets (busybox has a small mke2fs of its own).
        String script = "set -e -o pipefail\n"
                // A disk added while the guest runs takes a moment to appear.
                + "i=0; until d=$(" + GuestSession.AGENT + " disk vbake-output 2>/dev/null); do i=$((i+1)); "
                + "[ $i -lt 100 ] || { echo 'the output disk did not appear' >&2; exit 1; }; sleep 0.1; done\n"
                + "/usr/sbin/mke2fs -q -F -t ext4 -L vbake-data -E lazy_itable_init=1,lazy_journal_init=1 \"$d\"\n"
                + "mkdir -p /run/vbake/out\n"
                + "mount -t ext4 \"$d\" /run/vbake/out\n"
                + "rmdir /run/vbake/out/lost+found 2>/dev/null || true\n"
                + export + " | " + GuestSession.AGENT + " import-tree --root /run/vbake/out\n"
                + "umount /run/vbake/out\n"
                + "/usr/sbin/e2fsck -fy \"$d\" >/dev/null 2>&1 || [ $? -le 1 ]\n"
                + "/usr/sbin/resize2fs -M \"$d\" >/dev/null 2>&1\n"
                + "/usr/sbin/e2fsck -fy \"$d\" >/dev/null 2>&1 || [ $? -le 1 ]\n"
                + "/usr/sbin/dumpe2fs -h \"$d\" 2>/dev/null\n";
        String info = session.check(List.of("/bin/sh", "-c", script), "make the ext4 image");
        Matcher count = BLOCK_COUNT.matcher(info);
        Matcher size = BLOCK_SIZE.matcher(info);
        if (!count.find() || !size.find()) {
            throw new VbakeException(1, "cannot read the ext4 image's size from dumpe2fs", null, null);
        }
        long bytes = Long.parseLong(count.group(1)) * Long.parseLong(size.group(1));
        try {
            try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
                f.setLength(bytes);
            }
            Files.setPosixFilePermissions(disk, PosixFilePermissions.fromString("rw-r--r--"));
            try {
                Files.move(disk, target.toAbsolutePath(), StandardCopyOption.ATOMIC_MOVE,
                        StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(disk, target.toAbsolutePath(), StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new VbakeException(1, "cannot write " + target + ": " + e.getMessage(), null, e);
        }
        events.on(new Event.Progress(String.format(Locale.ROOT, "wrote %s (ext4, %.1f MB)", target, bytes / 1e6)));
        events.on(new Event.Phase("ext4 export", Duration.ofNanos(System.nanoTime() - t0)));
        return target;
    }
}
