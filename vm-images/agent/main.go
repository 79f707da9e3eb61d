// Command vbake-agent runs inside a vbake guest and executes what the host asks for over a
// virtio-serial port, following docs/agent-protocol.md (protocol version 1).
//
// Usage: vbake-agent [--port PATH] [--listen-unix PATH] [--no-poweroff]
//
// The same binary carries guest-side tools the host runs through EXEC:
//
//	vbake-agent export-tree --root DIR [--exclude REL]... [--mtime-clamp EPOCH_SECONDS] [--stats]
//	vbake-agent import-tree --root DIR [--file PATH] [--stats]
//	vbake-agent engine-get --socket PATH API_PATH
//	vbake-agent disk SERIAL
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	portName     = "vbake.agent"
	portSysClass = "/sys/class/virtio-ports"
	portWait     = 10 * time.Second
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "export-tree":
			return exportTreeCommand(args[1:], os.Stdout, os.Stderr)
		case "import-tree":
			return importTreeCommand(args[1:], os.Stdin, os.Stderr)
		case "merge-tree":
			return mergeTreeCommand(args[1:], os.Stdin, os.Stderr)
		case "suspend-prepare":
			return suspendPrepareCommand(args[1:], os.Stderr)
		case "resume-finish":
			return resumeFinishCommand(args[1:], os.Stderr)
		case "disk":
			return diskCommand(args[1:], os.Stdout, os.Stderr)
		case "engine-get":
			return engineGetCommand(args[1:], os.Stdout, os.Stderr)
		}
	}
	flags := flag.NewFlagSet("vbake-agent", flag.ContinueOnError)
	port := flags.String("port", "", "open this device instead of the virtio port named "+portName)
	listen := flags.String("listen-unix", "", "listen on this unix socket and serve connections one after another (tests)")
	noPoweroff := flags.Bool("no-poweroff", false, "on POWEROFF do everything but unmount and reboot(2), then exit 0 (tests)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	logger := log.New(os.Stderr, "vbake-agent: ", 0)
	if flags.NArg() > 0 || (*port != "" && *listen != "") {
		logger.Printf("usage: vbake-agent [--port PATH | --listen-unix PATH] [--no-poweroff]")
		return 2
	}
	resetChildSignals()
	a := newAgent(logger, *noPoweroff)
	logger.Printf("started: version %s, protocol %d, %s, pid %d",
		agentVersion, protocolVersion, runtime.GOARCH, os.Getpid())

	if *listen != "" {
		if !*noPoweroff {
			logger.Printf("warning: --listen-unix without --no-poweroff: POWEROFF powers this machine off")
		}
		return a.listenUnix(*listen)
	}
	path := *port
	if path == "" {
		var err error
		if path, err = findPort(portName, portWait); err != nil {
			logger.Printf("%v", err)
			return 1
		}
	}
	f, err := openPort(path)
	if err != nil {
		logger.Printf("%v", err)
		return 1
	}
	logger.Printf("port %s opened", path)
	return a.finish(a.serve(f, true))
}

// listenUnix serves host connections on a unix socket, one after another.
func (a *agent) listenUnix(path string) int {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		os.Remove(path) // stale socket of an earlier run
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		a.log.Printf("%v", err)
		return 1
	}
	defer l.Close()
	a.log.Printf("listening on %s", path)
	for {
		conn, err := l.Accept()
		if err != nil {
			a.log.Printf("accept: %v", err)
			return 1
		}
		a.log.Printf("host connected")
		err = a.serve(conn, false)
		conn.Close()
		if err == errPoweroff {
			return a.finish(err)
		}
		a.log.Printf("host disconnected (%v)", err)
	}
}

// findPort looks for the virtio-serial port with the given name, for up to wait (there is no
// udev: the name is only in sysfs). It creates the device node if devtmpfs did not.
func findPort(name string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		names, _ := filepath.Glob(filepath.Join(portSysClass, "*", "name"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != name {
				continue
			}
			dir := filepath.Dir(n)
			dev := filepath.Join("/dev", filepath.Base(dir))
			if err := ensureCharDevice(dev, filepath.Join(dir, "dev")); err != nil {
				return "", err
			}
			return dev, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio port named %s under %s after %s", name, portSysClass, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensureCharDevice creates dev from the "major:minor" in devFile when it does not exist.
func ensureCharDevice(dev, devFile string) error {
	if _, err := os.Stat(dev); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	b, err := os.ReadFile(devFile)
	if err != nil {
		return fmt.Errorf("%s does not exist and %v", dev, err)
	}
	mm := strings.SplitN(strings.TrimSpace(string(b)), ":", 2)
	if len(mm) != 2 {
		return fmt.Errorf("%s: unexpected content %q", devFile, b)
	}
	major, err1 := strconv.ParseUint(mm[0], 10, 32)
	minor, err2 := strconv.ParseUint(mm[1], 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%s: unexpected content %q", devFile, b)
	}
	if err := syscall.Mknod(dev, syscall.S_IFCHR|0o600, int(mkdev(major, minor))); err != nil {
		return fmt.Errorf("mknod %s: %v", dev, err)
	}
	return nil
}

// mkdev encodes a Linux dev_t.
func mkdev(major, minor uint64) uint64 {
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12 | (major&^0xfff)<<32
}

// openPort opens the port once, read-write and blocking (reopening a virtio port loses data).
func openPort(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// resetChildSignals makes signals that the agent inherited as ignored (a shell may start it with
// SIGINT ignored, say) default again in the commands, so that SIGNAL 2 interrupts them. Go resets
// handled signals to SIG_DFL in the child; the agent itself still discards them.
func resetChildSignals() {
	sink := make(chan os.Signal, 8)
	n := 0
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT,
		syscall.SIGPIPE, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU} {
		if signal.Ignored(sig) {
			signal.Notify(sink, sig)
			n++
		}
	}
	if n > 0 {
		go func() {
			for range sink {
			}
		}()
	}
}
