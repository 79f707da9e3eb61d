package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

const (
	engineProbeEvery     = 20 * time.Millisecond
	engineDefaultTimeout = 60 * time.Second
)

type engineRequest struct {
	Argv          []string `json:"argv"`
	Env           []string `json:"env"`
	Socket        string   `json:"socket"`
	HTTPPath      string   `json:"httpPath"`
	TimeoutMillis int64    `json:"timeoutMillis"`
	Stop          bool     `json:"stop"` // stop the engine instead; the other fields are ignored
}

type engineReply struct {
	OK      bool   `json:"ok"`
	Millis  int64  `json:"millis"`
	Message string `json:"message,omitempty"`
}

// engineProc is the one engine process the agent runs.
type engineProc struct {
	pid    int
	done   chan struct{} // closed when it has exited
	status string        // set before done is closed, e.g. "exit status 1"
}

func (e *engineProc) exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// startEngine handles one ENGINE request: it starts the engine unless one is running, then
// probes it until it is ready, exits or the timeout passes. With "stop" it stops the engine
// instead; a later ENGINE starts a new one. It runs in its own goroutine.
func (a *agent) startEngine(payload []byte, received time.Time) engineReply {
	fail := func(format string, args ...interface{}) engineReply {
		msg := fmt.Sprintf(format, args...)
		a.log.Printf("engine failed: %s", msg)
		return engineReply{Millis: time.Since(received).Milliseconds(), Message: msg}
	}
	var req engineRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return fail("malformed ENGINE: %v", err)
	}
	if req.Stop {
		if err := a.stopEngine("engine stop"); err != nil {
			return fail("%v", err)
		}
		return engineReply{OK: true, Millis: time.Since(received).Milliseconds()}
	}
	timeout := engineDefaultTimeout
	if req.TimeoutMillis > 0 {
		timeout = time.Duration(req.TimeoutMillis) * time.Millisecond
	}
	deadline := received.Add(timeout)

	var done chan struct{}
	var e *engineProc
	if len(req.Argv) > 0 {
		var err error
		if e, err = a.launchEngine(&req); err != nil {
			return fail("cannot start %s: %v", req.Argv[0], err)
		}
		done = e.done
	}
	if req.Socket == "" {
		ms := time.Since(received).Milliseconds()
		a.log.Printf("engine ready (nothing to probe)")
		return engineReply{OK: true, Millis: ms}
	}

	tick := time.NewTicker(engineProbeEvery)
	defer tick.Stop()
	for {
		err := probeEngine(req.Socket, req.HTTPPath, deadline)
		if err == nil {
			ms := time.Since(received).Milliseconds()
			a.log.Printf("engine ready after %d ms", ms)
			return engineReply{OK: true, Millis: ms}
		}
		if time.Now().After(deadline) {
			return fail("engine not ready after %d ms: %v", timeout.Milliseconds(), err)
		}
		select {
		case <-done: // nil (blocks forever) when nothing was started
			return fail("engine exited before it was ready (%s)", e.status)
		case <-tick.C:
		}
	}
}

// launchEngine starts the engine process, or returns the one already running.
func (a *agent) launchEngine(req *engineRequest) (*engineProc, error) {
	a.engineMu.Lock()
	defer a.engineMu.Unlock()
	if a.engine != nil && !a.engine.exited() {
		a.log.Printf("engine already running (pid %d), probing it", a.engine.pid)
		return a.engine, nil
	}
	env := commandEnv(req.Env)
	path, err := lookPath(req.Argv[0], envPath(env), "/")
	if err != nil {
		return nil, err
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        req.Argv,
		Env:         env,
		Dir:         "/",
		Stdout:      a.console,
		Stderr:      a.console,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &engineProc{pid: cmd.Process.Pid, done: make(chan struct{})}
	a.engine = e
	a.log.Printf("engine started: %s (pid %d)", req.Argv[0], e.pid)
	go func() {
		err := cmd.Wait()
		if cmd.ProcessState != nil {
			e.status = cmd.ProcessState.String()
		} else {
			e.status = fmt.Sprintf("wait: %v", err)
		}
		a.log.Printf("engine exited: %s", e.status)
		// Leftovers in its process group are of no use without it.
		_ = syscall.Kill(-e.pid, syscall.SIGKILL)
		close(e.done)
	}()
	return e, nil
}

// probeEngine connects to the engine's unix socket and, with httpPath, requires an HTTP 200.
func probeEngine(socket, httpPath string, deadline time.Time) error {
	d := time.Until(deadline)
	if d > 2*time.Second {
		d = 2 * time.Second
	}
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	conn, err := net.DialTimeout("unix", socket, d)
	if err != nil {
		return err
	}
	defer conn.Close()
	if httpPath == "" {
		return nil
	}
	_ = conn.SetDeadline(time.Now().Add(d))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: docker\r\n\r\n", httpPath); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("GET %s: %v", httpPath, err)
	}
	line = strings.TrimSpace(line)
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/") {
		return fmt.Errorf("GET %s: bad status line %q", httpPath, line)
	}
	if f[1] != "200" {
		return fmt.Errorf("GET %s: %s", httpPath, line)
	}
	return nil
}

// stopEngine sends SIGTERM to the engine and waits up to a.engineStop, then SIGKILLs its group.
// It returns once the engine has exited (nil, also when none was running), or with an error
// when it did not even after SIGKILL. why starts its log lines ("power-off", "engine stop").
func (a *agent) stopEngine(why string) error {
	a.engineMu.Lock()
	e := a.engine
	a.engineMu.Unlock()
	if e == nil || e.exited() {
		return nil
	}
	a.log.Printf("%s: stopping the engine (SIGTERM to pid %d)", why, e.pid)
	_ = syscall.Kill(e.pid, syscall.SIGTERM)
	t := time.NewTimer(a.engineStop)
	defer t.Stop()
	select {
	case <-e.done:
		return nil
	case <-t.C:
	}
	a.log.Printf("%s: engine still running after %s, SIGKILL", why, a.engineStop)
	_ = syscall.Kill(-e.pid, syscall.SIGKILL)
	_ = syscall.Kill(e.pid, syscall.SIGKILL)
	select {
	case <-e.done:
		return nil
	case <-time.After(5 * time.Second):
		a.log.Printf("%s: engine did not exit after SIGKILL", why)
		return fmt.Errorf("engine (pid %d) did not exit after SIGKILL", e.pid)
	}
}
