package org.vbake.vm;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * What a saved guest is bound to (Firecracker's rule: same binary, same devices, restore once).
 * It is restored only when every field matches the guest about to start, the state disk and
 * RAM file are exactly as the save left them (inode, size, modification and change times: any
 * write in between, a boot, {@code --input-storage}, an fsck, a {@code clean}, changes them),
 * the host has not rebooted since (the RAM file's last pages may only have been in its page
 * cache), and the device state hashes to what was written. The record is removed before a
 * restore starts, so a snapshot is used at most once; a restore's RAM file is the running
 * guest's memory from then on.
 *
 * @param kind     which guests share it: {@code cold} (one per command) or {@code resident} (with a NIC)
 * @param argvSha256 the QEMU command line of the saved guest (devices, memory, CPUs, paths)
 * @param imageKey the guest image's recipe key (kernel, initramfs, tools)
 * @param engine   the runtime and storage driver the saved engine runs with
 * @param bootId   the host's boot id when it was saved
 */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Snapshot(int format, String kind, String qemuBinary, String qemuVersion, String machine, String accel,
        int memoryMb, int cpus, String argvSha256, String imageKey, String engine, String bootId,
        FileStamp stateDisk, FileStamp ram, long devicesSize, String devicesSha256, long savedMillis) {

    static final int FORMAT = 1;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A file exactly as it was: any write or replacement changes one of these. */
    public record FileStamp(long inode, long size, long mtimeNanos, long ctimeNanos) {
        public static FileStamp of(Path file) throws IOException {
            Object ino = Files.getAttribute(file, "unix:ino", LinkOption.NOFOLLOW_LINKS);
            FileTime ctime = (FileTime) Files.getAttribute(file, "unix:ctime", LinkOption.NOFOLLOW_LINKS);
            return new FileStamp(((Number) ino).longValue(), Files.size(file),
                    Files.getLastModifiedTime(file, LinkOption.NOFOLLOW_LINKS).to(TimeUnit.NANOSECONDS),
                    ctime.to(TimeUnit.NANOSECONDS));
        }
    }

    /** What the guest about to start is; the file fields are filled in by {@link #sealed}. */
    public static Snapshot expected(String kind, QemuInfo qemu, String accel, int memoryMb, int cpus,
            List<String> argv, String imageKey, String engine) {
        return new Snapshot(FORMAT, kind, qemu.binary().toString(), qemu.version(), qemu.machine(), accel, memoryMb,
                cpus, sha256(String.join("\u0000", argv).getBytes(StandardCharsets.UTF_8)), imageKey, engine, hostBootId(),
                null, null, 0, null, 0);
    }

    /** This binding with the saved files' stamps and digest, after a save. */
    public Snapshot sealed(Path stateDisk, Path ram, Path devices) throws IOException {
        return new Snapshot(format, kind, qemuBinary, qemuVersion, machine, accel, memoryMb, cpus, argvSha256,
                imageKey, engine, bootId, FileStamp.of(stateDisk), FileStamp.of(ram), Files.size(devices),
                sha256(devices), System.currentTimeMillis());
    }

    /**
     * Why the saved guest cannot be restored as the guest {@code wanted}, or null when it can:
     * the first difference, in words for the one warning the user gets.
     */
    public String mismatch(Snapshot wanted, Path stateDisk, Path ram, Path devices) {
        List<String> why = new ArrayList<>();
        check(why, format == FORMAT, "it was saved by another version of vbake");
        check(why, kind.equals(wanted.kind), "it is a " + kind + " guest, not a " + wanted.kind + " one");
        check(why, qemuBinary.equals(wanted.qemuBinary) && qemuVersion.equals(wanted.qemuVersion),
                "QEMU changed (" + qemuVersion + " then, " + wanted.qemuVersion + " now)");
        check(why, machine.equals(wanted.machine), "the machine type changed");
        check(why, accel.equals(wanted.accel), "it ran under " + accel + ", this guest under " + wanted.accel);
        check(why, memoryMb == wanted.memoryMb && cpus == wanted.cpus, "memory or CPUs differ");
        check(why, imageKey.equals(wanted.imageKey), "the guest image was rebuilt");
        check(why, engine.equals(wanted.engine), "its engine runs " + engine + ", this command wants " + wanted.engine);
        check(why, argvSha256.equals(wanted.argvSha256), "the QEMU command line (devices, paths) differs");
        check(why, bootId.equals(wanted.bootId), "the host rebooted since it was saved");
        if (!why.isEmpty()) {
            return why.get(0);
        }
        try {
            if (!FileStamp.of(stateDisk).equals(this.stateDisk)) {
                return "the state disk changed since it was saved";
            }
            if (!FileStamp.of(ram).equals(this.ram)) {
                return "its memory file changed since it was saved";
            }
            if (Files.size(devices) != devicesSize || !sha256(devices).equals(devicesSha256)) {
                return "its device state is truncated or corrupt";
            }
        } catch (IOException e) {
            return "its files are incomplete (" + e.getMessage() + ")";
        }
        return null;
    }

    private static void check(List<String> why, boolean ok, String reason) {
        if (!ok) {
            why.add(reason);
        }
    }

    /** The record, or null when there is none or it cannot be read. */
    public static Snapshot read(Path record) {
        try {
            return Files.exists(record) ? JSON.readValue(record.toFile(), Snapshot.class) : null;
        } catch (IOException e) {
            return null;
        }
    }

    /** Written beside, synced and renamed: a record exists only complete. */
    public void write(Path record) throws IOException {
        Path tmp = record.resolveSibling(record.getFileName() + ".new");
        Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(this));
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
        Files.move(tmp, record, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    /** The host's boot id: a guest saved before a host reboot is not trusted. */
    static String hostBootId() {
        try {
            return Files.readString(Path.of("/proc/sys/kernel/random/boot_id")).strip();
        } catch (IOException e) {
            return "unknown";
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
