package org.vbake.vm;

import java.util.ArrayList;
import java.util.List;

/**
 * Builds the QEMU argv for a profile and a spec. A pure function (no I/O), pinned by golden files
 * in the unit tests, so a change to how guests are started shows up as a diff.
 */
public final class QemuCommandLine {

    /** Name of the virtio-serial port the agent looks for in /sys/class/virtio-ports. */
    public static final String AGENT_PORT_NAME = "vbake.agent";

    private QemuCommandLine() {
    }

    public static List<String> build(QemuProfile profile, VmSpec spec) {
        List<String> argv = new ArrayList<>();
        argv.add(profile.binary());
        argv.addAll(List.of("-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"));
        String machine = spec.machine() != null ? spec.machine() : profile.machine();
        argv.addAll(List.of("-machine", machine + (spec.ramFile() != null ? ",memory-backend=" + RAM_ID : "")));
        if (spec.accel() == Accel.KVM) {
            argv.addAll(List.of("-accel", "kvm", "-cpu", profile.kvmCpu()));
        } else {
            // thread=multi: one host thread per vCPU (unless the profile says single); tb-size: a
            // larger translation cache avoids re-translating dockerd's hot code.
            String thread = profile.tcgThread() != null ? profile.tcgThread() : "multi";
            argv.addAll(List.of("-accel", "tcg,thread=" + thread + ",tb-size=256", "-cpu", profile.tcgCpu()));
        }
        argv.addAll(List.of("-smp", Integer.toString(spec.cpus() > 0 ? spec.cpus() : profile.cpus())));
        int memoryMb = spec.memoryMb() > 0 ? spec.memoryMb() : profile.memoryMb();
        argv.addAll(List.of("-m", Integer.toString(memoryMb)));
        if (spec.ramFile() != null) {
            // share=on: the guest's memory is the file itself, so saving it writes no RAM.
            argv.addAll(List.of("-object", "memory-backend-file,id=" + RAM_ID + ",size=" + memoryMb + "M,mem-path="
                    + escape(spec.ramFile().toString()) + ",share=on"));
        }

        List<String> append = new ArrayList<>();
        append.add("console=" + profile.console());
        append.addAll(profile.kernelArgs());
        append.addAll(spec.kernelArgs());
        if (spec.network()) {
            append.add("vbake.net=1");
        }
        argv.addAll(List.of("-kernel", spec.kernel().toString()));
        argv.addAll(List.of("-initrd", spec.initrd().toString()));
        argv.addAll(List.of("-append", String.join(" ", append)));

        argv.addAll(List.of("-chardev", "file,id=console,path=" + escape(spec.consoleLog().toString())));
        argv.addAll(List.of("-serial", "chardev:console"));

        addDisk(argv, profile, "tools", spec.toolsDisk().toString(), true);
        addDisk(argv, profile, "state", spec.stateDisk().toString(), false);
        if (spec.inputDisk() != null) {
            addDisk(argv, profile, "input", spec.inputDisk().toString(), true);
        }
        if (spec.outputDisk() != null) {
            addDisk(argv, profile, "output", spec.outputDisk().toString(), false);
        }

        argv.addAll(List.of("-device", profile.serialBusDevice() + ",id=vser"));
        argv.addAll(List.of("-chardev",
                "socket,id=agent,path=" + escape(spec.agentSocket().toString()) + ",server=on,wait=off"));
        argv.addAll(List.of("-device", "virtserialport,bus=vser.0,chardev=agent,name=" + AGENT_PORT_NAME));

        argv.addAll(List.of("-device", profile.rngDevice()));
        if (spec.hotplugPort()) {
            // The root bus of virt and q35 takes no hot-plugged device; a root port does.
            argv.addAll(List.of("-device", "pcie-root-port,id=" + HOTPLUG_PORT + ",chassis=1"));
        }
        if (spec.network()) {
            // restrict=on: the guest reaches nothing outside; forwarded host ports still reach it.
            argv.addAll(List.of("-netdev", "user,id=" + NETDEV + ",restrict=on"));
            argv.addAll(List.of("-device", "virtio-net-pci,netdev=" + NETDEV));
        }
        argv.addAll(List.of("-qmp", "unix:" + escape(spec.qmpSocket().toString()) + ",server=on,wait=off"));
        argv.addAll(List.of("-pidfile", spec.pidFile().toString()));
        if (spec.incoming()) {
            argv.addAll(List.of("-incoming", "defer"));
        }
        return argv;
    }

    private static void addDisk(List<String> argv, QemuProfile profile, String id, String file, boolean readOnly) {
        // The serial is how the guest init tells the disks apart; cache=writeback with the
        // guest's flushes honoured keeps the ext4 journal's guarantees if QEMU is killed.
        String drive = "if=none,id=" + id + ",file=" + escape(file) + ",format=raw"
                + (readOnly ? ",readonly=on" : ",cache=writeback,discard=unmap");
        argv.addAll(List.of("-drive", drive));
        argv.addAll(List.of("-device", profile.diskDevice() + ",drive=" + id + ",serial=vbake-" + id));
    }

    /** The id of the guest RAM's memory backend. */
    public static final String RAM_ID = "ram0";

    /** The PCIe root port a disk is hot-plugged into. */
    public static final String HOTPLUG_PORT = "rp1";

    /** The id of the user-mode network backend, which {@code hostfwd_add} names. */
    public static final String NETDEV = "net0";

    /** QEMU option values separate key=value pairs with commas; a literal comma is doubled. */
    static String escape(String value) {
        return value.replace(",", ",,");
    }
}
