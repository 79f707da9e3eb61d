package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTTYExecIsATerminalOfTheGivenSize(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "test -t 0 && test -t 1 && test -t 2 && stty size"},
		TTY: true, Rows: 33, Cols: 101})
	r := c.collect(1, 5*time.Second)
	// The terminal turns "\n" into "\r\n"; nothing comes as STDERR.
	if r.exit != (exitStatus{Code: 0}) || r.stdout != "33 101\r\n" || r.stderr != "" {
		t.Errorf("got %+v", r)
	}
	// stderr is the terminal too; without rows and cols the size is the kernel's 0 0.
	c.exec(2, execRequest{Argv: []string{"sh", "-c", "stty size >&2; tty"}, TTY: true})
	r = c.collect(2, 5*time.Second)
	if r.exit.Code != 0 || !strings.HasPrefix(r.stdout, "0 0\r\n/dev/pts/") || r.stderr != "" {
		t.Errorf("got %+v", r)
	}
}

func TestTTYStdinAndWindow(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "read x; echo got:$x"}, TTY: true})
	c.send(typeStdin, 1, []byte("hello\n"))
	r := c.collect(1, 5*time.Second)
	// The terminal echoes the input, so the output holds it twice.
	if r.exit.Code != 0 || !strings.Contains(r.stdout, "got:hello\r\n") || r.windows != 6 {
		t.Errorf("got %+v", r)
	}
}

// End of input does not close the master: that would hang up the command and lose its output.
func TestTTYStdinEndDoesNotHangUp(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "sleep 0.3; echo still here"}, TTY: true})
	c.send(typeStdin, 1, nil)
	r := c.collect(1, 5*time.Second)
	if r.exit != (exitStatus{Code: 0}) || r.stdout != "still here\r\n" {
		t.Errorf("got %+v", r)
	}
	// Ctrl-D is how the host makes a tty command read end of file.
	c.exec(2, execRequest{Argv: []string{"cat"}, TTY: true})
	c.send(typeStdin, 2, []byte("abc\n\x04"))
	r = c.collect(2, 5*time.Second)
	if r.exit != (exitStatus{Code: 0}) || r.stdout != "abc\r\nabc\r\n" {
		t.Errorf("cat: got %+v", r)
	}
}

func TestTTYResize(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{
		Argv: []string{"sh", "-c", `trap 'stty size; exit 0' WINCH; echo ready; while :; do sleep 0.05; done`},
		TTY:  true, Rows: 24, Cols: 80,
	})
	var out strings.Builder
	for !strings.Contains(out.String(), "ready") {
		out.Write(c.expect(typeStdout, 1).payload)
	}
	c.sendJSON(typeResize, 1, map[string]int{"rows": 40, "cols": 120})
	r := c.collect(1, 5*time.Second)
	if r.exit != (exitStatus{Code: 0}) || r.stdout != "40 120\r\n" {
		t.Errorf("got %+v", r)
	}

	// RESIZE for a finished channel, one that never existed or a command without a terminal
	// is ignored; a malformed one is answered with ERROR. The session goes on.
	c.sendJSON(typeResize, 1, map[string]int{"rows": 1, "cols": 1})
	c.sendJSON(typeResize, 99, map[string]int{"rows": 1, "cols": 1})
	c.exec(2, execRequest{Argv: []string{"cat"}, Stdin: true})
	c.sendJSON(typeResize, 2, map[string]int{"rows": 1, "cols": 1})
	c.send(typeStdin, 2, nil)
	if r := c.collect(2, 5*time.Second); r.exit.Code != 0 {
		t.Errorf("pipe command: got %+v", r)
	}
	c.send(typeResize, 3, []byte(`{"rows":-1}`))
	var e struct{ Message string }
	decode(t, c.expect(typeError, 3), &e)
	if !strings.Contains(e.Message, "malformed RESIZE") {
		t.Errorf("ERROR message %q", e.Message)
	}
}

func TestTTYSignal(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"sleep", "30"}, TTY: true})
	time.Sleep(50 * time.Millisecond)
	c.sendJSON(typeSignal, 1, map[string]int{"signal": 2})
	r := c.collect(1, 3*time.Second)
	if r.exit != (exitStatus{Code: 130, Signal: 2}) {
		t.Errorf("got %+v", r)
	}
	// Ctrl-C typed on the terminal interrupts the foreground process group too.
	c.exec(2, execRequest{Argv: []string{"sleep", "30"}, TTY: true})
	time.Sleep(50 * time.Millisecond)
	c.send(typeStdin, 2, []byte{3})
	if r := c.collect(2, 3*time.Second); r.exit != (exitStatus{Code: 130, Signal: 2}) {
		t.Errorf("Ctrl-C: got %+v", r)
	}
}

// EXIT comes only after everything the command wrote to the terminal.
func TestTTYLargeOutput(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"seq", "1", "100000"}, TTY: true})
	r := c.collect(1, 10*time.Second)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\r\n"), "\r\n")
	if r.exit.Code != 0 || len(lines) != 100000 || lines[99999] != "100000" {
		t.Errorf("exit %+v, %d lines, ends %q", r.exit, len(lines), r.stdout[len(r.stdout)-16:])
	}
}

// The master is closed when the command ends.
func TestTTYDoesNotLeakDescriptors(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	run := func(ch uint32) {
		c.exec(ch, execRequest{Argv: []string{"true"}, TTY: true})
		if r := c.collect(ch, 5*time.Second); r.exit.Code != 0 {
			t.Fatalf("got %+v", r)
		}
	}
	run(1) // the first one may set up the poller
	before := openFiles(t)
	for ch := uint32(2); ch < 6; ch++ {
		run(ch)
	}
	if after := openFiles(t); after != before {
		t.Errorf("%d open files before, %d after", before, after)
	}
}

func openFiles(t *testing.T) int {
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

func TestEngineStopAndStartAgain(t *testing.T) {
	a := testAgent(t)
	a.engineStop = 2 * time.Second
	c := newSession(t, a, false)
	c.hello()
	// Nothing running: stopping is fine.
	c.sendJSON(typeEngine, 0, map[string]bool{"stop": true})
	var ready engineReply
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK {
		t.Fatalf("stop without engine: %+v", ready)
	}

	dir, _ := os.MkdirTemp("", "vbe")
	defer os.RemoveAll(dir)
	start := func(sock string) int {
		t.Helper()
		c.sendJSON(typeEngine, 0, engineRequest{
			Argv:   []string{os.Args[0]},
			Env:    []string{roleEnv + "=engine", "FAKE_ENGINE_SOCKET=" + sock},
			Socket: sock, HTTPPath: "/_ping", TimeoutMillis: 5000,
		})
		decode(t, c.expect(typeEngineReady, 0), &ready)
		if !ready.OK {
			t.Fatalf("ENGINE_READY %+v", ready)
		}
		a.engineMu.Lock()
		defer a.engineMu.Unlock()
		return a.engine.pid
	}
	// The fake engine dies of SIGTERM and leaves its socket behind: a new one gets a new path.
	pid1 := start(filepath.Join(dir, "1.sock"))
	c.sendJSON(typeEngine, 0, map[string]bool{"stop": true})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK || ready.Millis > 1500 {
		t.Fatalf("stop: %+v", ready)
	}
	if err := syscall.Kill(pid1, 0); err != syscall.ESRCH {
		t.Errorf("engine pid %d still there after stop: %v", pid1, err)
	}
	pid2 := start(filepath.Join(dir, "2.sock"))
	if pid2 == pid1 {
		t.Errorf("no new engine: pid %d", pid2)
	}
	if err := syscall.Kill(pid2, 0); err != nil {
		t.Errorf("new engine pid %d: %v", pid2, err)
	}
}

// An engine that ignores SIGTERM is killed after engineStop.
func TestEngineStopKillsStubbornEngine(t *testing.T) {
	a := testAgent(t)
	a.engineStop = 200 * time.Millisecond
	c := newSession(t, a, false)
	c.hello()
	c.sendJSON(typeEngine, 0, engineRequest{Argv: []string{"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"}})
	var ready engineReply
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
	time.Sleep(200 * time.Millisecond) // until the shell has set its trap
	c.sendJSON(typeEngine, 0, map[string]bool{"stop": true})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK || ready.Millis < 200 || ready.Millis > 2000 {
		t.Fatalf("stop: %+v", ready)
	}
	if !a.engine.exited() {
		t.Errorf("engine still running")
	}
}

// A background child that survives the hang-up keeps the slave open: the master never reads
// EIO, and EXIT comes exitGrace after the command exited, as for pipes.
func TestTTYBackgroundChildHoldingTerminal(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	start := time.Now()
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "trap '' HUP; sleep 3 & echo hi"}, TTY: true})
	r := c.collect(1, 3*time.Second)
	d := time.Since(start)
	if r.stdout != "hi\r\n" || r.exit.Code != 0 {
		t.Errorf("got %+v", r)
	}
	if d < exitGrace || d > exitGrace+time.Second {
		t.Errorf("EXIT after %s, want about %s", d, exitGrace)
	}
}
