package main

// The guest's side of saving and restoring a running guest (QEMU migration to a file). Before
// the host stops the VM and saves it, `suspend-prepare` syncs and freezes the state filesystem,
// so the state disk on the host is clean and complete even if the saved guest is never resumed
// (or QEMU is killed while it is saved). After a restore, `resume-finish` sets the wall clock
// from the host (the saved guest's clock stopped when it was saved) and thaws the filesystem.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

const (
	ioctlFIFREEZE = 0xC0045877 // _IOWR('X', 119, int)
	ioctlFITHAW   = 0xC0045878 // _IOWR('X', 120, int)
)

// suspendPrepareCommand is `vbake-agent suspend-prepare [--path DIR]`: sync, then freeze the
// filesystem mounted on DIR (default: vbake.state= of the kernel command line). Freezing a
// filesystem that is frozen already is fine. 0 on success, 1 on failure, 2 on bad usage.
func suspendPrepareCommand(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("suspend-prepare", flag.ContinueOnError)
	flags.SetOutput(stderr)
	path := flags.String("path", "", "mount point to freeze (default: vbake.state= from /proc/cmdline)")
	if err := flags.Parse(args); err != nil || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: vbake-agent suspend-prepare [--path DIR]")
		return 2
	}
	dir, err := statePath(*path)
	if err != nil {
		fmt.Fprintf(stderr, "suspend-prepare: %v\n", err)
		return 1
	}
	syscall.Sync()
	if err := freeze(dir, ioctlFIFREEZE); err != nil && !errors.Is(err, syscall.EBUSY) {
		fmt.Fprintf(stderr, "suspend-prepare: freeze %s: %v\n", dir, err)
		return 1
	}
	return 0
}

// resumeFinishCommand is `vbake-agent resume-finish --clock UNIX_NANOS [--path DIR]`: set the
// wall clock, then thaw DIR's filesystem (one that is not frozen is fine).
func resumeFinishCommand(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("resume-finish", flag.ContinueOnError)
	flags.SetOutput(stderr)
	path := flags.String("path", "", "mount point to thaw (default: vbake.state= from /proc/cmdline)")
	clock := flags.Int64("clock", 0, "the host's wall clock, nanoseconds since the epoch")
	if err := flags.Parse(args); err != nil || flags.NArg() > 0 || *clock <= 0 {
		fmt.Fprintln(stderr, "usage: vbake-agent resume-finish --clock UNIX_NANOS [--path DIR]")
		return 2
	}
	dir, err := statePath(*path)
	if err != nil {
		fmt.Fprintf(stderr, "resume-finish: %v\n", err)
		return 1
	}
	tv := syscall.NsecToTimeval(*clock)
	if err := syscall.Settimeofday(&tv); err != nil {
		fmt.Fprintf(stderr, "resume-finish: set the clock: %v\n", err)
		return 1
	}
	if err := freeze(dir, ioctlFITHAW); err != nil && !errors.Is(err, syscall.EINVAL) {
		fmt.Fprintf(stderr, "resume-finish: thaw %s: %v\n", dir, err)
		return 1
	}
	fmt.Fprintf(stderr, "resume-finish: clock set to %s\n", time.Unix(0, *clock).UTC().Format(time.RFC3339Nano))
	return 0
}

// statePath is the given path, or the state disk's mount point from the kernel command line.
func statePath(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", err
	}
	p := cmdlineParam(string(b), "vbake.state")
	if p == "" {
		return "", errors.New("no vbake.state= on the kernel command line")
	}
	return p, nil
}

// freeze runs FIFREEZE or FITHAW on the filesystem mounted on dir.
func freeze(dir string, request uintptr) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), request, 0); errno != 0 {
		return errno
	}
	return nil
}
