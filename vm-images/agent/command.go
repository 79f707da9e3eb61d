package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
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
	TTY   bool     `json:"tty"`  // run on a pseudo-terminal; implies stdin
	Rows  uint16   `json:"rows"` // its initial size; 0 leaves the kernel's default
	Cols  uint16   `json:"cols"`
	// OutputWindow, when positive, limits the output sent beyond what the host acknowledged
	// with WINDOW (see credit); 0 or less: no limit.
	OutputWindow int `json:"outputWindow"`
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
	exited   bool // the process has exited: queued and later STDIN is dropped
	writing  bool // stdinLoop holds a payload taken from inQ: its WINDOW is still to come
	acksDone bool // EXIT is next: no WINDOW any more
	stdinW   *os.File
	pty      *os.File // a tty command's terminal master (also stdinW and its output), else nil

	credit *credit // what the host still accepts of STDOUT and STDERR together
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

	var sio *stdio
	if req.TTY {
		sio, err = ttyStdio(req.Rows, req.Cols)
	} else {
		sio, err = pipeStdio(req.Stdin)
	}
	if err != nil {
		return nil, startFailure(err)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        req.Argv,
		Env:         env,
		Dir:         cwd,
		Stdout:      sio.stdout,
		Stderr:      sio.stderr,
		SysProcAttr: sio.attr,
	}
	if sio.stdin != nil { // a nil *os.File in the interface would not mean /dev/null
		cmd.Stdin = sio.stdin
	} // else exec.Cmd gives the command /dev/null
	if err := cmd.Start(); err != nil {
		closeFiles(sio.childEnds)
		closeFiles(sio.agentEnds)
		return nil, startFailure(err)
	}
	// The agent must not keep the child's ends: a pipe would never reach end of file and a
	// terminal master never read EIO.
	closeFiles(sio.childEnds)

	c := &command{s: s, ch: ch, done: make(chan struct{}), cmd: cmd, pid: cmd.Process.Pid,
		stdinW: sio.stdinW, pty: sio.pty, credit: newCredit(req.OutputWindow)}
	c.inCond = sync.NewCond(&c.inMu)
	var pumps sync.WaitGroup
	for _, o := range sio.outputs {
		pumps.Add(1)
		go c.pump(o.f, o.typ, &pumps)
	}
	if c.stdinW != nil {
		go c.stdinLoop()
	}
	go c.wait(&pumps, sio.outputs)
	return c, exitStatus{}
}

// stdio is how a command's standard streams are connected, before it starts.
type stdio struct {
	stdin, stdout, stderr *os.File // the child's side; nil stdin is /dev/null
	attr                  *syscall.SysProcAttr
	childEnds             []*os.File // closed in the agent once the child has them
	agentEnds             []*os.File // the agent's side, closed if the command does not start
	outputs               []output   // read by the pumps
	stdinW                *os.File   // fed by stdinLoop, nil without stdin
	pty                   *os.File   // terminal master, nil for pipes
}

// output is one stream the agent reads from a command and the frame type it becomes.
type output struct {
	f   *os.File
	typ byte
}

// pipeStdio connects stdout and stderr to separate pipes and stdin to a pipe or /dev/null. The
// command gets its own process group, which SIGNAL addresses.
func pipeStdio(withStdin bool) (*stdio, error) {
	sio := &stdio{attr: &syscall.SysProcAttr{Setpgid: true}}
	fail := func(err error) (*stdio, error) {
		closeFiles(sio.childEnds)
		closeFiles(sio.agentEnds)
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	sio.childEnds, sio.agentEnds = append(sio.childEnds, outW), append(sio.agentEnds, outR)
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	sio.childEnds, sio.agentEnds = append(sio.childEnds, errW), append(sio.agentEnds, errR)
	sio.stdout, sio.stderr = outW, errW
	sio.outputs = []output{{outR, typeStdout}, {errR, typeStderr}}
	if withStdin {
		inR, inW, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		sio.childEnds, sio.agentEnds = append(sio.childEnds, inR), append(sio.agentEnds, inW)
		sio.stdin, sio.stdinW = inR, inW
	}
	return sio, nil
}

// ttyStdio connects stdin, stdout and stderr to the slave of a new pseudo-terminal of the given
// size. The command starts a session (so it leads its own process group, which SIGNAL
// addresses) with the terminal as its controlling terminal, so Ctrl-C typed as STDIN, job
// control and SIGWINCH work. A terminal has one output stream: everything becomes STDOUT.
func ttyStdio(rows, cols uint16) (*stdio, error) {
	master, slave, err := openPTY()
	if err != nil {
		// Not %w: a missing /dev/ptmx is no "command not found" (exit code 127).
		return nil, fmt.Errorf("cannot allocate a terminal: %v", err)
	}
	if rows != 0 || cols != 0 {
		if err := setWinsize(master, rows, cols); err != nil {
			master.Close()
			slave.Close()
			return nil, fmt.Errorf("cannot set the terminal size: %v", err)
		}
	}
	return &stdio{
		stdin: slave, stdout: slave, stderr: slave,
		// Ctty is a descriptor number in the child: its stdin.
		attr:      &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0},
		childEnds: []*os.File{slave},
		agentEnds: []*os.File{master},
		outputs:   []output{{master, typeStdout}},
		stdinW:    master,
		pty:       master,
	}, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pump copies one output pipe into STDOUT or STDERR frames until end of file, or until the
// read deadline that wait sets exitGrace after the command exited. A terminal master reads EIO
// instead of end of file once no process holds the slave any more; like any other read error
// it ends the output. Every read is limited by the channel's credit; without credit the pump
// stops reading, so the command blocks once the pipe is full.
func (c *command) pump(f *os.File, t byte, wg *sync.WaitGroup) {
	defer wg.Done()
	rc, err := f.SyscallConn()
	if err != nil {
		c.s.a.log.Printf("channel %d: %v", c.ch, err)
		return
	}
	buf := make([]byte, dataChunk)
	for {
		n, err := c.readOutput(rc, buf)
		if n > 0 {
			c.s.out.output(encodeFrame(t, c.ch, buf[:n]))
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Something (a background child) still holds the pipe open. Deliver what is
			// already buffered in it, then stop. The deadline may have passed while this
			// goroutine waited for the link or for credit, so the pipe can hold up to its
			// capacity; it is drained within the credit too.
			left := pipeBuffered(f)
			_ = f.SetReadDeadline(time.Time{})
			for left > 0 {
				k := left
				if k > len(buf) {
					k = len(buf)
				}
				n, err := c.readOutput(rc, buf[:k])
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

// readOutput reads once from a command's output into buf, no more than the credit allows. It
// waits for credit (however long), then for data (until the file's read deadline). Credit is
// taken only around the non-blocking read itself and the unused part given back at once: a pump
// waiting on an empty pipe must not hold the credit the other pump needs. End of file is io.EOF.
func (c *command) readOutput(rc syscall.RawConn, buf []byte) (int, error) {
	var n int
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		k := c.credit.take(len(buf))
		for {
			n, rerr = syscall.Read(int(fd), buf[:k])
			if rerr != syscall.EINTR {
				break
			}
		}
		if n < 0 {
			n = 0
		}
		c.credit.giveBack(k - n)
		return rerr != syscall.EAGAIN // else wait until the descriptor is readable
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return n, os.NewSyscallError("read", rerr)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// credit is how many more bytes of output (STDOUT and STDERR together, or a terminal's output)
// the host accepts on a channel: outputWindow at first, raised by the host's WINDOW frames.
// Without outputWindow, or once the limit is lifted, it is unlimited.
type credit struct {
	mu      sync.Mutex
	cond    *sync.Cond
	limited bool
	n       int
}

func newCredit(window int) *credit {
	cr := &credit{limited: window > 0, n: window}
	cr.cond = sync.NewCond(&cr.mu)
	return cr
}

// take waits until there is credit and takes up to want bytes of it.
func (cr *credit) take(want int) int {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	for cr.limited && cr.n == 0 {
		cr.cond.Wait()
	}
	if !cr.limited {
		return want
	}
	if want > cr.n {
		want = cr.n
	}
	cr.n -= want
	return want
}

// giveBack returns k bytes taken but not sent.
func (cr *credit) giveBack(k int) {
	if k > 0 {
		cr.grant(k)
	}
}

// grant adds m bytes of credit; -1 lifts the limit for good.
func (cr *credit) grant(m int) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if !cr.limited {
		return
	}
	if m < 0 || m > math.MaxInt-cr.n { // a sum that overflows is no limit either
		cr.limited = false
	} else {
		cr.n += m
	}
	cr.cond.Broadcast()
}

// pipeBuffered returns the number of bytes waiting in a pipe or terminal master (FIONREAD).
func pipeBuffered(f *os.File) int {
	var n int32
	if err := ioctl(f, syscall.TIOCINQ, unsafe.Pointer(&n)); err != nil {
		return 0
	}
	return int(n)
}

// wait reaps the process, lets the pumps finish and queues EXIT as the channel's last frame.
// A terminal master is closed only here, after its output was read to the end.
func (c *command) wait(pumps *sync.WaitGroup, outputs []output) {
	waitErr := c.cmd.Wait()
	c.markExited()
	deadline := time.Now().Add(exitGrace)
	for _, o := range outputs {
		_ = o.f.SetReadDeadline(deadline)
	}
	pumps.Wait()
	for _, o := range outputs {
		o.f.Close()
	}
	// Input the command may have read before it exited is acknowledged before EXIT, which is
	// the channel's last frame. The write in flight ends quickly: the pipe or master is closed.
	c.inMu.Lock()
	for c.writing {
		c.inCond.Wait()
	}
	c.acksDone = true
	c.inMu.Unlock()
	c.s.finish(c, statusOf(c.cmd.ProcessState, waitErr))
}

// markExited stops stdin handling: queued input is dropped and the pipe is closed (a terminal
// master still carries output; wait closes it).
func (c *command) markExited() {
	c.inMu.Lock()
	c.exited = true
	c.inQ, c.inQueued = nil, 0
	c.inCond.Broadcast()
	w := c.stdinW
	c.inMu.Unlock()
	if w != nil && c.pty == nil {
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
			// Closing a terminal master would hang up the command (SIGHUP) and lose its
			// output: for a tty, end of input only means no more writes. A host that wants
			// the command to read end of file sends the terminal's EOF character (Ctrl-D).
			if c.pty == nil {
				c.stdinW.Close()
			}
			return
		}
		p := c.inQ[0]
		c.inQ[0] = nil
		c.inQ = c.inQ[1:]
		broken := c.inBroken
		c.writing = true
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
			}
			if !c.acksDone {
				c.s.out.sendJSON(typeWindow, c.ch, map[string]int{"bytes": k})
			}
			c.inMu.Unlock()
			p = p[k:]
		}
		c.inMu.Lock()
		c.writing = false
		c.inCond.Broadcast()
		c.inMu.Unlock()
	}
}

// signal delivers sig to the command's process group.
func (c *command) signal(sig syscall.Signal) {
	if err := syscall.Kill(-c.pid, sig); err != nil && err != syscall.ESRCH {
		c.s.a.log.Printf("signal %d to process group %d: %v", sig, c.pid, err)
	}
}
