package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// defaultPath is the PATH commands and the engine get (docs/agent-protocol.md); a request's env
// may override it.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// exitGrace is how long the agent keeps reading a command's output pipes after the command
// exited, for a background child that still holds them open.
const exitGrace = 500 * time.Millisecond

type execRequest struct {
	Argv  []string `json:"argv"`
	Env   []string `json:"env"`
	Cwd   string   `json:"cwd"`
	Stdin bool     `json:"stdin"`
}

type exitStatus struct {
	Code   int    `json:"code"`
	Signal int    `json:"signal,omitempty"`
	Error  string `json:"error,omitempty"`
}

// command is one running EXEC channel.
type command struct {
	s    *session
	ch   uint32
	cmd  *exec.Cmd
	pid  int           // also the process group id (Setpgid)
	done chan struct{} // closed once EXIT is queued

	inMu     sync.Mutex
	inCond   *sync.Cond
	inQ      [][]byte
	inQueued int  // bytes in inQ
	inEOF    bool // an empty STDIN frame arrived
	inBroken bool // writing failed (the command closed its stdin): discard and acknowledge
	exited   bool // the process has exited: STDIN is dropped, no WINDOW any more
	stdinW   *os.File
}

// commandEnv is the agent's environment with PATH set to defaultPath, followed by extra (later
// entries win, see exec.Cmd.Env).
func commandEnv(extra []string) []string {
	base := os.Environ()
	env := make([]string, 0, len(base)+1+len(extra))
	for _, kv := range base {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+defaultPath)
	return append(env, extra...)
}

// envPath returns the last PATH in env.
func envPath(env []string) string {
	p := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			p = kv[5:]
		}
	}
	return p
}

// lookPath finds the program to execute like a shell does: names with a slash are taken as
// they are (relative to cwd), others are searched on path. A candidate that exists but is not
// executable yields a permission error (exit code 126) unless a later one is executable.
func lookPath(file, path, cwd string) (string, error) {
	if file == "" {
		return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
	}
	if strings.Contains(file, "/") {
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	var permErr error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // relative PATH entries would depend on the agent's own cwd
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if permErr == nil && errors.Is(err, fs.ErrPermission) {
			permErr = err
		}
	}
	if permErr != nil {
		return "", permErr
	}
	return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: fs.ErrPermission}
	}
	return nil
}

// startFailure is the EXIT of a command that could not be started: 127 when something was not
// found, 126 otherwise (not executable, permission denied, bad format, ...).
func startFailure(err error) exitStatus {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	return exitStatus{Code: code, Error: err.Error()}
}

// statusOf converts a wait status: 128+S with signal S for death by signal.
func statusOf(ps *os.ProcessState, waitErr error) exitStatus {
	if ps == nil {
		msg := "wait failed"
		if waitErr != nil {
			msg = "wait: " + waitErr.Error()
		}
		return exitStatus{Code: 255, Error: msg}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig := int(ws.Signal())
		return exitStatus{Code: 128 + sig, Signal: sig}
	}
	return exitStatus{Code: ps.ExitCode()}
}

// startCommand starts an EXEC. On failure it returns nil and the EXIT status to send.
func (s *session) startCommand(ch uint32, req *execRequest) (*command, exitStatus) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, exitStatus{Code: 127, Error: "EXEC has an empty argv"}
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if fi, err := os.Stat(cwd); err != nil {
		return nil, startFailure(&fs.PathError{Op: "chdir", Path: cwd, Err: unwrapPathErr(err)})
	} else if !fi.IsDir() {
		return nil, startFailure(&fs.PathError{Op: "chdir", Path: cwd, Err: syscall.ENOTDIR})
	}
	env := commandEnv(req.Env)
	path, err := lookPath(req.Argv[0], envPath(env), cwd)
	if err != nil {
		return nil, startFailure(err)
	}

	var closeAfterStart, closeOnError []*os.File
	fail := func(err error) (*command, exitStatus) {
		for _, f := range append(closeAfterStart, closeOnError...) {
			f.Close()
		}
		return nil, startFailure(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	closeAfterStart = append(closeAfterStart, outW)
	closeOnError = append(closeOnError, outR)
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	closeAfterStart = append(closeAfterStart, errW)
	closeOnError = append(closeOnError, errR)

	c := &command{s: s, ch: ch, done: make(chan struct{})}
	c.inCond = sync.NewCond(&c.inMu)
	cmd := &exec.Cmd{
		Path:        path,
		Args:        req.Argv,
		Env:         env,
		Dir:         cwd,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if req.Stdin {
		inR, inW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		closeAfterStart = append(closeAfterStart, inR)
		closeOnError = append(closeOnError, inW)
		cmd.Stdin = inR
		c.stdinW = inW
	} // else exec.Cmd gives the command /dev/null
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	for _, f := range closeAfterStart {
		f.Close()
	}
	c.cmd, c.pid = cmd, cmd.Process.Pid

	var pumps sync.WaitGroup
	pumps.Add(2)
	go c.pump(outR, typeStdout, &pumps)
	go c.pump(errR, typeStderr, &pumps)
	if c.stdinW != nil {
		go c.stdinLoop()
	}
	go c.wait(&pumps, outR, errR)
	return c, exitStatus{}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pump copies one output pipe into STDOUT or STDERR frames until end of file, or until the
// read deadline that wait sets exitGrace after the command exited.
func (c *command) pump(f *os.File, t byte, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, dataChunk)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			c.s.out.output(encodeFrame(t, c.ch, buf[:n]))
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Something (a background child) still holds the pipe open. Deliver what is
			// already buffered in it, then stop. The deadline may have passed while this
			// goroutine waited for the link, so the pipe can hold up to its capacity.
			left := pipeBuffered(f)
			_ = f.SetReadDeadline(time.Time{})
			for left > 0 {
				k := left
				if k > len(buf) {
					k = len(buf)
				}
				n, err := f.Read(buf[:k])
				if n > 0 {
					c.s.out.output(encodeFrame(t, c.ch, buf[:n]))
					left -= n
				}
				if err != nil {
					break
				}
			}
		}
		return
	}
}

// pipeBuffered returns the number of bytes waiting in a pipe (FIONREAD).
func pipeBuffered(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0
	}
	return int(n)
}

// wait reaps the process, lets the pumps finish and queues EXIT as the channel's last frame.
func (c *command) wait(pumps *sync.WaitGroup, outR, errR *os.File) {
	waitErr := c.cmd.Wait()
	c.markExited()
	deadline := time.Now().Add(exitGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	pumps.Wait()
	outR.Close()
	errR.Close()
	c.s.finish(c, statusOf(c.cmd.ProcessState, waitErr))
}

// markExited stops stdin handling: queued input is dropped and the pipe is closed.
func (c *command) markExited() {
	c.inMu.Lock()
	c.exited = true
	c.inQ, c.inQueued = nil, 0
	c.inCond.Broadcast()
	w := c.stdinW
	c.inMu.Unlock()
	if w != nil {
		w.Close()
	}
}

// enqueueStdin queues one STDIN payload for the command (empty: end of input). It never
// blocks. It returns a protocol error message, or "".
func (c *command) enqueueStdin(p []byte) string {
	c.inMu.Lock()
	defer c.inMu.Unlock()
	switch {
	case c.exited:
		return "" // dropped silently, see the protocol
	case c.stdinW == nil:
		return fmt.Sprintf("STDIN for channel %d, which was started without stdin", c.ch)
	case c.inEOF:
		return fmt.Sprintf("STDIN for channel %d after end of input", c.ch)
	case len(p) == 0:
		c.inEOF = true
	case c.inQueued+len(p) > stdinLimit:
		return fmt.Sprintf("STDIN window exceeded on channel %d: %d bytes queued, %d more sent",
			c.ch, c.inQueued, len(p))
	default:
		c.inQ = append(c.inQ, p)
		c.inQueued += len(p)
	}
	c.inCond.Broadcast()
	return ""
}

// stdinLoop writes queued STDIN to the command, so a command that reads slowly never blocks the
// frame reader. Each chunk written (or discarded because the command closed its stdin) is
// acknowledged with WINDOW.
func (c *command) stdinLoop() {
	for {
		c.inMu.Lock()
		for len(c.inQ) == 0 && !c.inEOF && !c.exited {
			c.inCond.Wait()
		}
		if c.exited {
			c.inMu.Unlock()
			return // markExited closes the pipe
		}
		if len(c.inQ) == 0 { // end of input
			c.inMu.Unlock()
			c.stdinW.Close()
			return
		}
		p := c.inQ[0]
		c.inQ[0] = nil
		c.inQ = c.inQ[1:]
		broken := c.inBroken
		c.inMu.Unlock()

		for len(p) > 0 {
			k := len(p)
			if k > dataChunk {
				k = dataChunk
			}
			if !broken {
				if _, err := c.stdinW.Write(p[:k]); err != nil {
					broken = true
				}
			}
			c.inMu.Lock()
			c.inBroken = c.inBroken || broken
			if !c.exited {
				c.inQueued -= k
				c.s.out.sendJSON(typeWindow, c.ch, map[string]int{"bytes": k})
			}
			c.inMu.Unlock()
			p = p[k:]
		}
	}
}

// signal delivers sig to the command's process group.
func (c *command) signal(sig syscall.Signal) {
	if err := syscall.Kill(-c.pid, sig); err != nil && err != syscall.ESRCH {
		c.s.a.log.Printf("signal %d to process group %d: %v", sig, c.pid, err)
	}
}
