package main

// The disk subcommand finds a disk by the serial the host gave it on the QEMU command line
// (-drive ...,serial=S / -device virtio-blk-pci,serial=S), since device names like vdb depend
// on probe order.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// sysfsRoot is where sysfs is mounted; tests point it at a fake tree.
var sysfsRoot = "/sys"

// diskCommand is `vbake-agent disk SERIAL`: prints /dev/NAME of the one block device with that
// serial and returns 0; 1 when there is none (or more than one), 2 on bad usage.
func diskCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "usage: vbake-agent disk SERIAL")
		return 2
	}
	names, err := disksWithSerial(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "disk: %v\n", err)
		return 1
	}
	switch len(names) {
	case 0:
		fmt.Fprintf(stderr, "disk: no block device with serial %q under %s\n", args[0],
			filepath.Join(sysfsRoot, "block"))
		return 1
	case 1:
		fmt.Fprintf(stdout, "/dev/%s\n", names[0])
		return 0
	}
	fmt.Fprintf(stderr, "disk: serial %q is ambiguous: %s\n", args[0], strings.Join(names, ", "))
	return 1
}

// disksWithSerial lists, in name order, the block devices whose sysfs serial is serial.
func disksWithSerial(serial string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(sysfsRoot, "block"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysfsRoot, "block", e.Name(), "serial"))
		if err == nil && strings.TrimSpace(string(b)) == serial {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
