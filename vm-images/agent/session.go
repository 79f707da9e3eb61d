package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	protocolVersion = 1
	agentVersion    = "0.1.0"
)

// errPoweroff is returned by serve once the POWEROFF reply has been written.
var errPoweroff = errors.New("power-off requested")

// agent holds what outlives one host connection: options and the engine.
type agent struct {
	log        *log.Logger
	console    *os.File // where the engine's output goes (the agent's stderr)
	noPoweroff bool

	cmdlinePath   string // /proc/cmdline
	mountinfoPath string // /proc/self/mountinfo
	engineStop    time.Duration

	engineMu sync.Mutex
	engine   *engineProc
}

func newAgent(logger *log.Logger, noPoweroff bool) *agent {
	return &agent{
		log:           logger,
		console:       os.Stderr,
		noPoweroff:    noPoweroff,
		cmdlinePath:   "/proc/cmdline",
		mountinfoPath: "/proc/self/mountinfo",
		engineStop:    15 * time.Second,
	}
}

// session is one host connection: the handshake state and the commands it started.
type session struct {
	a   *agent
	out *outQueue

	mu       sync.Mutex
	cmds     map[uint32]*command
	finished map[uint32]bool // channels whose EXIT was sent

	helloDone bool
}

// serve runs the protocol on rw until the link breaks. portMode is the virtio port: a read error
// there means the host side is not connected, so the agent waits and reads again. Otherwise (a
// unix socket) a read error or EOF ends the session. In both cases a framing error sends ERROR
// and ends it, and a POWEROFF ends it with errPoweroff after the reply was written. Commands
// still running when serve returns are killed.
func (a *agent) serve(rw io.ReadWriter, portMode bool) error {
	s := &session{a: a, cmds: map[uint32]*command{}, finished: map[uint32]bool{}}
	s.out = newOutQueue(rw, func(err error) { a.log.Printf("write to host failed: %v", err) })
	defer s.close()

	r := bufio.NewReaderSize(rw, 64<<10)
	failing := false
	for {
		f, err := readFrame(r)
		if err != nil {
			var bad *errBadFrame
			if errors.As(err, &bad) {
				a.log.Printf("protocol error: %s; closing the link", bad.msg)
				s.out.sendError(0, bad.msg)
				s.out.flush(time.Second)
				return err
			}
			if !portMode {
				return err
			}
			// The virtio port reads EOF while no host is connected; a frame cut off by a
			// disconnect is dropped (readFrame starts over on the next call).
			if !failing {
				a.log.Printf("reading the port failed (%v), host not connected? retrying", err)
				failing = true
				// The commands go on; the host that would grant them credit does not.
				s.liftWindows()
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if failing {
			a.log.Printf("port readable again")
			failing = false
		}
		if err := s.handle(f); err != nil {
			return err
		}
	}
}

func (s *session) handle(f frame) error {
	if !s.helloDone && f.typ != typeHello {
		s.out.sendError(f.ch, fmt.Sprintf("expected HELLO, got %s", typeName(f.typ)))
		return nil
	}
	switch f.typ {
	case typeHello:
		s.hello(f)
	case typeExec:
		s.exec(f)
	case typeStdin:
		s.stdin(f)
	case typeSignal:
		s.signal(f)
	case typeResize:
		s.resize(f)
	case typeWindow:
		s.window(f)
	case typeEngine:
		received := time.Now()
		go func() { s.out.sendJSON(typeEngineReady, 0, s.a.startEngine(f.payload, received)) }()
	case typePoweroff:
		return s.poweroff()
	default:
		s.out.sendError(f.ch, fmt.Sprintf("unexpected %s frame from the host", typeName(f.typ)))
	}
	return nil
}

type helloReply struct {
	Protocol     int    `json:"protocol"`
	Agent        string `json:"agent"`
	Arch         string `json:"arch"`
	Kernel       string `json:"kernel"`
	UptimeMillis int64  `json:"uptimeMillis"`
}

func (s *session) hello(f frame) {
	var h struct {
		Protocol json.RawMessage `json:"protocol"`
		Client   string          `json:"client"`
	}
	if err := json.Unmarshal(f.payload, &h); err != nil {
		s.out.sendError(0, "malformed HELLO: "+err.Error())
		return
	}
	if p := strings.TrimSpace(string(h.Protocol)); p != "1" {
		if p == "" || p == "null" {
			p = "(none)"
		}
		s.out.sendError(0, fmt.Sprintf("unsupported protocol %s, agent speaks %d", p, protocolVersion))
		return
	}
	s.out.sendJSON(typeHello, 0, helloReply{
		Protocol:     protocolVersion,
		Agent:        "vbake-agent/" + agentVersion,
		Arch:         hostArch(),
		Kernel:       kernelRelease(),
		UptimeMillis: uptimeMillis(),
	})
	s.helloDone = true
	s.a.log.Printf("handshake done (client %q)", h.Client)
}

func (s *session) exec(f frame) {
	if f.ch == 0 {
		s.out.sendError(0, "EXEC on channel 0")
		return
	}
	// The lock is held until the command is registered, so its finish (which takes the lock)
	// cannot run before.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.cmds[f.ch]; busy {
		s.out.sendError(f.ch, fmt.Sprintf("EXEC on channel %d, which is still running", f.ch))
		return
	}
	var req execRequest
	var c *command
	var st exitStatus
	if err := json.Unmarshal(f.payload, &req); err != nil {
		st = exitStatus{Code: 127, Error: "malformed EXEC: " + err.Error()}
	} else if run := builtin(&req); run != nil {
		// EXIT follows from the goroutine; nothing of it can be signalled or fed.
		s.finished[f.ch] = true
		go s.runBuiltin(f.ch, run)
		return
	} else {
		c, st = s.startCommand(f.ch, &req)
	}
	if c == nil {
		s.finished[f.ch] = true
		s.out.sendJSON(typeExit, f.ch, st)
		return
	}
	delete(s.finished, f.ch)
	s.cmds[f.ch] = c
}

// finish is called by a command once its output is done: it queues EXIT, the channel's last frame.
func (s *session) finish(c *command, st exitStatus) {
	s.mu.Lock()
	delete(s.cmds, c.ch)
	s.finished[c.ch] = true
	s.out.sendJSON(typeExit, c.ch, st)
	s.mu.Unlock()
	close(c.done)
}

func (s *session) lookup(ch uint32) (c *command, finished bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmds[ch], s.finished[ch]
}

func (s *session) stdin(f frame) {
	c, finished := s.lookup(f.ch)
	if c == nil {
		if !finished {
			s.out.sendError(f.ch, fmt.Sprintf("STDIN for unknown channel %d", f.ch))
		}
		return
	}
	if msg := c.enqueueStdin(f.payload); msg != "" {
		s.out.sendError(f.ch, msg)
	}
}

func (s *session) signal(f frame) {
	var req struct {
		Signal int `json:"signal"`
	}
	if err := json.Unmarshal(f.payload, &req); err != nil {
		s.out.sendError(f.ch, "malformed SIGNAL: "+err.Error())
		return
	}
	if req.Signal < 1 || req.Signal > 64 {
		s.out.sendError(f.ch, fmt.Sprintf("invalid signal %d", req.Signal))
		return
	}
	if c, _ := s.lookup(f.ch); c != nil {
		c.signal(syscall.Signal(req.Signal))
	}
}

// resize sets the size of a tty command's terminal. A RESIZE that comes too late (the command
// finished) or goes to a command without a terminal is harmless: it is logged and ignored.
func (s *session) resize(f frame) {
	var req struct {
		Rows uint16 `json:"rows"`
		Cols uint16 `json:"cols"`
	}
	if err := json.Unmarshal(f.payload, &req); err != nil {
		s.out.sendError(f.ch, "malformed RESIZE: "+err.Error())
		return
	}
	c, _ := s.lookup(f.ch)
	switch {
	case c == nil:
		s.a.log.Printf("RESIZE for channel %d, which has no running command: ignored", f.ch)
	case c.pty == nil:
		s.a.log.Printf("RESIZE for channel %d, which has no terminal: ignored", f.ch)
	default:
		// The master may be closed by now (the command just finished); the ioctl then fails.
		if err := setWinsize(c.pty, req.Rows, req.Cols); err != nil {
			s.a.log.Printf("RESIZE for channel %d: %v; ignored", f.ch, err)
		}
	}
}

// window gives a command more output credit: WINDOW {"bytes":M} from the host means it consumed
// M more bytes of the channel's output, -1 that it takes everything from now on. WINDOW for a
// channel that finished (it crossed EXIT), never existed or has no outputWindow is ignored.
func (s *session) window(f frame) {
	var req struct {
		Bytes int `json:"bytes"`
	}
	if err := json.Unmarshal(f.payload, &req); err != nil {
		s.out.sendError(f.ch, "malformed WINDOW: "+err.Error())
		return
	}
	if req.Bytes <= 0 && req.Bytes != -1 {
		s.out.sendError(f.ch, fmt.Sprintf("invalid WINDOW bytes %d (positive or -1)", req.Bytes))
		return
	}
	if c, _ := s.lookup(f.ch); c != nil {
		c.credit.grant(req.Bytes)
	}
}

// liftWindows removes the output limit of every running command. A pump waiting for credit keeps
// its command from finishing, and a host that is gone (or powering off) grants none any more.
func (s *session) liftWindows() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		c.credit.grant(-1)
	}
}

// killAll sends SIGKILL to every running command's process group, lifting their output limits,
// and returns their done channels.
func (s *session) killAll() []chan struct{} {
	s.liftWindows()
	s.mu.Lock()
	cmds := make([]*command, 0, len(s.cmds))
	for _, c := range s.cmds {
		cmds = append(cmds, c)
	}
	s.mu.Unlock()
	var done []chan struct{}
	for _, c := range cmds {
		c.signal(syscall.SIGKILL)
		done = append(done, c.done)
	}
	return done
}

// waitAll waits for the given commands to finish, at most d. It reports whether they did.
func waitAll(done []chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for _, ch := range done {
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
	return true
}

// close ends the session: later frames are dropped and running commands are killed.
func (s *session) close() {
	s.out.close()
	done := s.killAll()
	if len(done) > 0 {
		s.a.log.Printf("link closed: killed %d running command(s)", len(done))
		if !waitAll(done, 5*time.Second) {
			s.a.log.Printf("some commands did not exit after SIGKILL")
		}
	}
}

// builtin returns the agent's own implementation of a guest-side tool that the host asks for
// often and that is quick: starting the agent binary again costs ~80 ms under TCG, more than
// the work itself. Only engine-get, without stdin or a terminal.
func builtin(req *execRequest) func(stdout, stderr io.Writer) int {
	if len(req.Argv) < 2 || req.Stdin || req.TTY || filepath.Base(req.Argv[0]) != "vbake-agent" {
		return nil
	}
	if req.Argv[1] == "engine-get" {
		args := req.Argv[2:]
		return func(stdout, stderr io.Writer) int { return engineGetCommand(args, stdout, stderr) }
	}
	return nil
}

// runBuiltin runs a builtin and sends its output and EXIT on ch, as a command's would be.
func (s *session) runBuiltin(ch uint32, run func(stdout, stderr io.Writer) int) {
	var out, errOut bytes.Buffer
	code := run(&out, &errOut)
	for _, o := range []struct {
		t byte
		b []byte
	}{{typeStdout, out.Bytes()}, {typeStderr, errOut.Bytes()}} {
		for b := o.b; len(b) > 0; {
			n := len(b)
			if n > dataChunk {
				n = dataChunk
			}
			s.out.output(encodeFrame(o.t, ch, b[:n]))
			b = b[n:]
		}
	}
	s.out.sendJSON(typeExit, ch, exitStatus{Code: code})
}
