package org.vbake.vm;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a saved guest is bound to, and every way a mismatch is found (no QEMU needed). */
class SnapshotTest {

    @TempDir
    Path tmp;

    private Path disk;
    private Path ram;
    private Path devices;
    private Path record;
    private final QemuInfo qemu = new QemuInfo(Path.of("/usr/bin/qemu-system-aarch64"), "QEMU emulator version 7.2.22",
            "virt-7.2");
    private final List<String> argv = List.of("qemu-system-aarch64", "-machine", "virt-7.2,memory-backend=ram0");

    private Snapshot wanted() {
        return Snapshot.expected("cold", qemu, "TCG", 2048, 2, argv, "imagekey", "docker/overlay2");
    }

    @BeforeEach
    void saved() throws Exception {
        disk = Files.write(tmp.resolve("state.ext4"), new byte[4096]);
        ram = Files.write(tmp.resolve("ram"), new byte[8192]);
        devices = Files.write(tmp.resolve("devices"), "device state".repeat(100).getBytes());
        record = tmp.resolve("snapshot.json");
        wanted().sealed(disk, ram, devices).write(record);
    }

    private String mismatch(Snapshot want) {
        return Snapshot.read(record).mismatch(want, disk, ram, devices);
    }

    @Test
    void anUntouchedSaveMatchesTheSameGuest() {
        assertThat(mismatch(wanted())).isNull();
        assertThat(Files.exists(tmp.resolve("snapshot.json.new"))).isFalse();
    }

    @Test
    void anyWriteToTheStateDiskOrTheRamFileIsFound() throws Exception {
        Files.setLastModifiedTime(disk, FileTime.fromMillis(System.currentTimeMillis() + 5000));
        assertThat(mismatch(wanted())).isEqualTo("the state disk changed since it was saved");
        saved();
        try (RandomAccessFile f = new RandomAccessFile(ram.toFile(), "rw")) {
            f.seek(10);
            f.write(1);
        }
        assertThat(mismatch(wanted())).isEqualTo("its memory file changed since it was saved");
        saved();
        // A new file of the same size and times in the same place is another inode.
        Path copy = Files.copy(disk, tmp.resolve("copy"), java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
        Files.move(copy, disk, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertThat(mismatch(wanted())).isEqualTo("the state disk changed since it was saved");
    }

    @Test
    void aTruncatedOrCorruptDeviceStateIsFound() throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(devices.toFile(), "rw")) {
            f.setLength(f.length() / 2);
        }
        assertThat(mismatch(wanted())).isEqualTo("its device state is truncated or corrupt");
        saved();
        byte[] b = Files.readAllBytes(devices);
        b[3] ^= 1;
        Files.write(devices, b);
        assertThat(mismatch(wanted())).isEqualTo("its device state is truncated or corrupt");
        Files.delete(devices);
        assertThat(mismatch(wanted())).startsWith("its files are incomplete");
    }

    @Test
    void anotherGuestDoesNotMatch() {
        assertThat(mismatch(Snapshot.expected("resident", qemu, "TCG", 2048, 2, argv, "imagekey", "docker/overlay2")))
                .isEqualTo("it is a cold guest, not a resident one");
        assertThat(mismatch(Snapshot.expected("cold", new QemuInfo(qemu.binary(), "QEMU emulator version 8.0", "virt-7.2"),
                "TCG", 2048, 2, argv, "imagekey", "docker/overlay2"))).startsWith("QEMU changed");
        assertThat(mismatch(Snapshot.expected("cold", qemu, "KVM", 2048, 2, argv, "imagekey", "docker/overlay2")))
                .isEqualTo("it ran under TCG, this guest under KVM");
        assertThat(mismatch(Snapshot.expected("cold", qemu, "TCG", 4096, 2, argv, "imagekey", "docker/overlay2")))
                .isEqualTo("memory or CPUs differ");
        assertThat(mismatch(Snapshot.expected("cold", qemu, "TCG", 2048, 2, argv, "newkey", "docker/overlay2")))
                .isEqualTo("the guest image was rebuilt");
        assertThat(mismatch(Snapshot.expected("cold", qemu, "TCG", 2048, 2, argv, "imagekey", "docker/vfs")))
                .isEqualTo("its engine runs docker/overlay2, this command wants docker/vfs");
        assertThat(mismatch(Snapshot.expected("cold", qemu, "TCG", 2048, 2, List.of("other"), "imagekey",
                "docker/overlay2"))).isEqualTo("the QEMU command line (devices, paths) differs");
    }

    @Test
    void anUnreadableRecordIsNone() throws Exception {
        Files.writeString(record, "{not json");
        assertThat(Snapshot.read(record)).isNull();
        assertThat(Snapshot.read(tmp.resolve("none.json"))).isNull();
    }
}
