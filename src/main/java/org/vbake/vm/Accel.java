package org.vbake.vm;

/** QEMU accelerator. KVM only when host and target arch match and /dev/kvm really runs a guest. */
public enum Accel {
    TCG,
    KVM
}
