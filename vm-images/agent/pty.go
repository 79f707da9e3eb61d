package main

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// winsize is struct winsize of <asm-generic/termios.h>.
type winsize struct {
	rows, cols, xpixel, ypixel uint16
}

// openPTY allocates a pseudo-terminal. The master is opened through package os, so it is
// registered with the poller: reads can time out (exitGrace) and a close interrupts a read or
// write in progress. The slave is a plain blocking descriptor, since it becomes the command's
// stdin, stdout and stderr and a shell must not see O_NONBLOCK there. Neither becomes the
// agent's controlling terminal (O_NOCTTY).
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0) // os adds O_CLOEXEC
	if err != nil {
		return nil, nil, err
	}
	name, err := unlockPTY(master)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	fd, err := syscall.Open(name, syscall.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return master, os.NewFile(uintptr(fd), name), nil
}

// unlockPTY unlocks the slave of a new master (TIOCSPTLCK) and returns its path (TIOCGPTN).
func unlockPTY(master *os.File) (string, error) {
	var unlock int32
	if err := ioctl(master, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		return "", fmt.Errorf("TIOCSPTLCK: %v", err)
	}
	var n uint32
	if err := ioctl(master, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		return "", fmt.Errorf("TIOCGPTN: %v", err)
	}
	return "/dev/pts/" + strconv.FormatUint(uint64(n), 10), nil
}

// setWinsize sets a terminal's size (TIOCSWINSZ); on a change the kernel sends SIGWINCH to the
// terminal's foreground process group.
func setWinsize(f *os.File, rows, cols uint16) error {
	ws := winsize{rows: rows, cols: cols}
	if err := ioctl(f, syscall.TIOCSWINSZ, unsafe.Pointer(&ws)); err != nil {
		return fmt.Errorf("TIOCSWINSZ: %v", err)
	}
	return nil
}

// ioctl runs one ioctl on f. Going through SyscallConn keeps the descriptor from being closed
// and reused meanwhile, so it is safe on a file that another goroutine may close (the error is
// then os.ErrClosed).
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}
