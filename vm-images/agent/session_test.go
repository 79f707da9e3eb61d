package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHandshake(t *testing.T) {
	c := newSession(t, testAgent(t), false)

	// Nothing but HELLO is accepted before the handshake.
	c.exec(1, execRequest{Argv: []string{"true"}})
	var e struct{ Message string }
	decode(t, c.expect(typeError, 1), &e)
	if !strings.Contains(e.Message, "expected HELLO") {
		t.Errorf("ERROR message %q", e.Message)
	}

	h := c.hello()
	if h.Protocol != 1 || h.Agent != "vbake-agent/"+agentVersion {
		t.Errorf("HELLO reply %+v", h)
	}
	if h.Arch != protocolArch(runtime.GOARCH) || h.Kernel == "" || h.Kernel == "unknown" || h.UptimeMillis <= 0 {
		t.Errorf("HELLO reply %+v", h)
	}
}

func TestWrongProtocolVersion(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.sendJSON(typeHello, 0, map[string]interface{}{"protocol": 2, "client": "vbake/future"})
	var e struct{ Message string }
	decode(t, c.expect(typeError, 0), &e)
	if e.Message != "unsupported protocol 2, agent speaks 1" {
		t.Errorf("ERROR message %q", e.Message)
	}
	// The agent keeps waiting for a HELLO it understands.
	c.hello()
}

func TestExecSeparatesOutputAndReportsExitCode(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(7, execRequest{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	r := c.collect(7, 5*time.Second)
	if r.stdout != "out\n" || r.stderr != "err\n" || r.exit != (exitStatus{Code: 3}) {
		t.Errorf("got %+v", r)
	}
}

func TestExecEnvCwdAndPath(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	dir := t.TempDir()
	c.exec(1, execRequest{
		Argv: []string{"sh", "-c", `echo "$VBAKE_X|$PATH|$(pwd)"`},
		Env:  []string{"VBAKE_X=1", "VBAKE_X=2"},
		Cwd:  dir,
	})
	r := c.collect(1, 5*time.Second)
	want := "2|" + defaultPath + "|" + dir + "\n"
	if r.stdout != want || r.exit.Code != 0 {
		t.Errorf("got %+v, want stdout %q", r, want)
	}
}

func TestExecStdinEchoAndWindow(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(2, execRequest{Argv: []string{"cat"}, Stdin: true})
	c.send(typeStdin, 2, []byte("hello "))
	c.send(typeStdin, 2, []byte("world"))
	// WINDOW and STDOUT frames come in some order; wait until both chunks were acknowledged.
	var out strings.Builder
	windows := 0
	for windows < 11 || out.Len() < 11 {
		f := c.next(5 * time.Second)
		switch {
		case f.typ == typeWindow && f.ch == 2:
			var w struct{ Bytes int }
			decode(t, f, &w)
			windows += w.Bytes
		case f.typ == typeStdout && f.ch == 2:
			out.Write(f.payload)
		default:
			t.Fatalf("unexpected %s on %d: %s", typeName(f.typ), f.ch, f.payload)
		}
	}
	if out.String() != "hello world" || windows != 11 {
		t.Fatalf("stdout %q, windows %d", out.String(), windows)
	}
	c.send(typeStdin, 2, nil) // end of input: cat exits
	r := c.collect(2, 5*time.Second)
	if r.exit != (exitStatus{Code: 0}) || r.stdout != "" {
		t.Errorf("got %+v", r)
	}
	// STDIN after EXIT is dropped silently; a SIGNAL too.
	c.send(typeStdin, 2, []byte("late"))
	c.sendJSON(typeSignal, 2, map[string]int{"signal": 9})
	// STDIN for a channel that never existed is an error.
	c.send(typeStdin, 99, []byte("x"))
	c.expect(typeError, 99)
}

func TestExecLargeStdinAndOutput(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(3, execRequest{Argv: []string{"sh", "-c", "wc -c; head -c 3000000 /dev/zero"}, Stdin: true})
	data := bytes.Repeat([]byte("0123456789abcdef"), 200000/16)
	for i := 0; i < 5; i++ { // 1 MB in 200 kB frames, within the 1 MiB window
		c.send(typeStdin, 3, data)
	}
	c.send(typeStdin, 3, nil)
	r := c.collect(3, 10*time.Second)
	if r.exit.Code != 0 || r.windows != 1000000 {
		t.Fatalf("exit %+v windows %d", r.exit, r.windows)
	}
	if !strings.HasPrefix(r.stdout, "1000000\n") || len(r.stdout) != len("1000000\n")+3000000 {
		t.Errorf("stdout starts %q, length %d", r.stdout[:16], len(r.stdout))
	}
	if r.maxChunk > dataChunk {
		t.Errorf("output chunk of %d bytes", r.maxChunk)
	}
}

func TestSignalInterruptsCommand(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(4, execRequest{Argv: []string{"sleep", "30"}})
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c.sendJSON(typeSignal, 4, map[string]int{"signal": 2})
	r := c.collect(4, 3*time.Second)
	if r.exit != (exitStatus{Code: 130, Signal: 2}) {
		t.Errorf("got %+v", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("EXIT took %s", d)
	}
}

func TestExecFailures(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)

	cases := []struct {
		req  execRequest
		code int
	}{
		{execRequest{Argv: []string{"vbake-no-such-command"}}, 127},
		{execRequest{Argv: []string{"/nonexistent/bin/x"}}, 127},
		{execRequest{Argv: []string{notExec}}, 126},
		{execRequest{Argv: []string{dir}}, 126},
		{execRequest{Argv: []string{"true"}, Cwd: "/nonexistent"}, 127},
		{execRequest{Argv: nil}, 127},
	}
	for i, tc := range cases {
		ch := uint32(10 + i)
		c.exec(ch, tc.req)
		r := c.collect(ch, 5*time.Second)
		if r.exit.Code != tc.code || r.exit.Error == "" || r.exit.Signal != 0 || r.chunks != 0 {
			t.Errorf("%v: got %+v, want code %d with error", tc.req.Argv, r, tc.code)
		}
	}
	c.send(typeExec, 20, []byte("{not json"))
	if r := c.collect(20, 5*time.Second); r.exit.Code != 127 || !strings.Contains(r.exit.Error, "malformed EXEC") {
		t.Errorf("malformed EXEC: %+v", r)
	}
	c.exec(0, execRequest{Argv: []string{"true"}})
	c.expect(typeError, 0)
}

func TestBackgroundChildHoldingPipe(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	start := time.Now()
	c.exec(5, execRequest{Argv: []string{"sh", "-c", "sleep 3 & echo hi"}})
	r := c.collect(5, 3*time.Second)
	d := time.Since(start)
	if r.stdout != "hi\n" || r.exit.Code != 0 {
		t.Errorf("got %+v", r)
	}
	if d < exitGrace || d > exitGrace+time.Second {
		t.Errorf("EXIT after %s, want about %s", d, exitGrace)
	}
}

func TestConcurrentCommands(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	for ch := uint32(1); ch <= 4; ch++ {
		c.exec(ch, execRequest{Argv: []string{"sh", "-c", "sleep 0.1; echo $0", strconv.Itoa(int(ch))}})
	}
	outs := map[uint32]string{}
	exits := 0
	for exits < 4 {
		f := c.next(5 * time.Second)
		switch f.typ {
		case typeStdout:
			outs[f.ch] += string(f.payload)
		case typeExit:
			if _, seen := outs[f.ch]; !seen {
				t.Errorf("EXIT before output on channel %d", f.ch)
			}
			exits++
		default:
			t.Fatalf("unexpected %s", typeName(f.typ))
		}
	}
	for ch := uint32(1); ch <= 4; ch++ {
		if outs[ch] != strconv.Itoa(int(ch))+"\n" {
			t.Errorf("channel %d: %q", ch, outs[ch])
		}
	}
}

func TestEngineReady(t *testing.T) {
	a := testAgent(t)
	c := newSession(t, a, false)
	c.hello()
	dir, _ := os.MkdirTemp("", "vbe")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "docker.sock")
	c.sendJSON(typeEngine, 0, engineRequest{
		Argv:          []string{os.Args[0]},
		Env:           []string{roleEnv + "=engine", "FAKE_ENGINE_SOCKET=" + sock, "FAKE_ENGINE_DELAY_MS=100"},
		Socket:        sock,
		HTTPPath:      "/_ping",
		TimeoutMillis: 5000,
	})
	// Other frames keep flowing while the engine starts.
	c.exec(1, execRequest{Argv: []string{"true"}})
	var ready engineReply
	gotExit, gotReady := false, false
	for !gotExit || !gotReady {
		f := c.next(6 * time.Second)
		switch {
		case f.typ == typeExit && f.ch == 1:
			if gotReady {
				t.Errorf("EXIT of a quick command only after ENGINE_READY")
			}
			gotExit = true
		case f.typ == typeEngineReady && f.ch == 0:
			decode(t, f, &ready)
			gotReady = true
		default:
			t.Fatalf("unexpected %s on %d: %s", typeName(f.typ), f.ch, f.payload)
		}
	}
	if !ready.OK || ready.Millis < 100 || ready.Millis > 5000 {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
	// A second ENGINE starts nothing and answers at once.
	c.sendJSON(typeEngine, 0, engineRequest{Argv: []string{"false"}, Socket: sock, HTTPPath: "/_ping"})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK || ready.Millis > 1000 {
		t.Fatalf("second ENGINE_READY %+v", ready)
	}
	// A path the engine does not serve with 200 is not ready.
	c.sendJSON(typeEngine, 0, engineRequest{Socket: sock, HTTPPath: "/nope", TimeoutMillis: 100})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if ready.OK || !strings.Contains(ready.Message, "404") {
		t.Fatalf("ENGINE_READY for /nope %+v", ready)
	}
	// POWEROFF stops it.
	pid := a.engine.pid
	c.sendJSON(typePoweroff, 0, struct{}{})
	var p poweroffReply
	decode(t, c.expect(typePoweroff, 0), &p)
	if !p.OK || !a.engine.exited() {
		t.Fatalf("POWEROFF %+v, engine exited %v", p, a.engine.exited())
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("engine pid %d still there: %v", pid, err)
	}
}

func TestEngineExitsAtOnce(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.sendJSON(typeEngine, 0, engineRequest{
		Argv: []string{"sh", "-c", "exit 3"}, Socket: "/nonexistent/docker.sock", HTTPPath: "/_ping",
		TimeoutMillis: 5000,
	})
	var ready engineReply
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if ready.OK || !strings.Contains(ready.Message, "exit status 3") || ready.Millis > 2000 {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
}

func TestEngineTimeoutAndNoArgv(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	// Empty argv: nothing to start; without a socket the answer is immediate.
	c.sendJSON(typeEngine, 0, engineRequest{})
	var ready engineReply
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if !ready.OK {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
	c.sendJSON(typeEngine, 0, engineRequest{Socket: "/nonexistent/x.sock", TimeoutMillis: 100})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if ready.OK || !strings.Contains(ready.Message, "not ready after 100 ms") {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
	c.sendJSON(typeEngine, 0, engineRequest{Argv: []string{"vbake-no-such-engine"}, Socket: "/x"})
	decode(t, c.expect(typeEngineReady, 0), &ready)
	if ready.OK || !strings.Contains(ready.Message, "cannot start") {
		t.Fatalf("ENGINE_READY %+v", ready)
	}
}

func TestPoweroffKillsCommands(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"sleep", "30"}})
	time.Sleep(50 * time.Millisecond)
	c.sendJSON(typePoweroff, 0, struct{}{})
	var st exitStatus
	decode(t, c.expect(typeExit, 1), &st)
	if st != (exitStatus{Code: 137, Signal: 9}) {
		t.Errorf("EXIT %+v", st)
	}
	var p poweroffReply
	decode(t, c.expect(typePoweroff, 0), &p)
	if !p.OK {
		t.Errorf("POWEROFF reply %+v", p)
	}
	if err := c.waitServed(5 * time.Second); err != errPoweroff {
		t.Errorf("serve returned %v", err)
	}
}

func TestBadFrameClosesLink(t *testing.T) {
	for name, raw := range map[string][]byte{
		"short length": {0, 0, 0, 3, 1, 0, 0, 0},
		"long length":  {0, 0x10, 0, 6, 1, 0, 0, 0, 0},
		"unknown type": {0, 0, 0, 5, 0x7F, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			c := newSession(t, testAgent(t), false)
			c.hello()
			c.conn.Write(raw)
			var e struct{ Message string }
			decode(t, c.expect(typeError, 0), &e)
			var bad *errBadFrame
			if err := c.waitServed(5 * time.Second); !errors.As(err, &bad) {
				t.Errorf("serve returned %v", err)
			}
			if _, ok := <-c.frames; ok {
				t.Errorf("link still open")
			}
		})
	}
}

// A host that goes away takes its commands with it, on pipes and on a terminal alike.
func TestDisconnectKillsCommands(t *testing.T) {
	for _, tty := range []bool{false, true} {
		c := newSession(t, testAgent(t), false)
		c.hello()
		c.exec(1, execRequest{Argv: []string{"sh", "-c", "echo $$; exec sleep 30"}, TTY: tty})
		f := c.expect(typeStdout, 1)
		pid, err := strconv.Atoi(strings.TrimSpace(string(f.payload)))
		if err != nil {
			t.Fatal(err)
		}
		c.conn.Close()
		if err := c.waitServed(5 * time.Second); err == nil || err == errPoweroff {
			t.Errorf("tty %v: serve returned %v", tty, err)
		}
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("tty %v: command pid %d still there: %v", tty, pid, err)
		}
	}
}

// flakyPort reads EOF a few times (host not connected), then a frame cut short by a
// disconnect, then the real stream.
type flakyPort struct {
	reads  [][]byte // nil entries mean EOF
	rest   io.Reader
	writes bytes.Buffer
	w      io.Writer
}

func (p *flakyPort) Read(b []byte) (int, error) {
	if len(p.reads) > 0 {
		r := p.reads[0]
		p.reads = p.reads[1:]
		if r == nil {
			return 0, io.EOF
		}
		return copy(b, r), nil
	}
	return p.rest.Read(b)
}

func (p *flakyPort) Write(b []byte) (int, error) { return p.w.Write(b) }

func TestPortModeRetriesAfterEOF(t *testing.T) {
	a := testAgent(t)
	hostR, guestW := io.Pipe()
	guestR, hostW := io.Pipe()
	hello := encodeJSON(typeHello, 0, map[string]interface{}{"protocol": 1})
	port := &flakyPort{
		reads: [][]byte{nil, nil, hello[:6], nil, nil},
		rest:  guestR,
		w:     guestW,
	}
	served := make(chan error, 1)
	go func() { served <- a.serve(port, true) }()
	go func() {
		hostW.Write(hello)
		hostW.Write([]byte{0, 0, 0, 1}) // bad length: the agent gives up on the port
	}()
	f, err := readFrame(hostR)
	if err != nil || f.typ != typeHello {
		t.Fatalf("got %s %v", typeName(f.typ), err)
	}
	f, err = readFrame(hostR)
	if err != nil || f.typ != typeError {
		t.Fatalf("got %s %v", typeName(f.typ), err)
	}
	select {
	case err := <-served:
		var bad *errBadFrame
		if !errors.As(err, &bad) {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return")
	}
}

func TestReadFrame(t *testing.T) {
	b := encodeFrame(typeStdout, 0x01020304, []byte("abc"))
	if !bytes.Equal(b[:9], []byte{0, 0, 0, 8, 4, 1, 2, 3, 4}) {
		t.Fatalf("header % x", b[:9])
	}
	f, err := readFrame(bytes.NewReader(b))
	if err != nil || f.typ != typeStdout || f.ch != 0x01020304 || string(f.payload) != "abc" {
		t.Fatalf("%+v %v", f, err)
	}
	big := make([]byte, 4)
	binary.BigEndian.PutUint32(big, maxPayload+5)
	max := append(append(big, 4, 0, 0, 0, 1), make([]byte, maxPayload)...)
	if f, err := readFrame(bytes.NewReader(max)); err != nil || len(f.payload) != maxPayload {
		t.Fatalf("max frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(b[:7])); err != io.ErrUnexpectedEOF {
		t.Errorf("cut frame: %v", err)
	}
	if _, err := readFrame(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty stream: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	if got := cmdlineParam("root=/dev/vda vbake.state=/var/lib/vbake quiet", "vbake.state"); got != "/var/lib/vbake" {
		t.Errorf("cmdlineParam %q", got)
	}
	if got := cmdlineParam("vbake.statex=1", "vbake.state"); got != "" {
		t.Errorf("cmdlineParam %q", got)
	}
	if got := unescapeMount(`/mnt/a\040b\\`); got != `/mnt/a b\\` {
		t.Errorf("unescapeMount %q", got)
	}
	if protocolArch("arm64") != "aarch64" || protocolArch("amd64") != "x86_64" {
		t.Error("protocolArch")
	}
	if ok, err := isMountPoint("/proc/self/mountinfo", "/"); !ok || err != nil {
		t.Errorf("isMountPoint(/) %v %v", ok, err)
	}
	if ok, _ := isMountPoint("/proc/self/mountinfo", "/nonexistent/state"); ok {
		t.Error("isMountPoint(/nonexistent/state)")
	}
	if mkdev(241, 1) != 241<<8|1 {
		t.Errorf("mkdev %d", mkdev(241, 1))
	}
}

// Output still buffered in the pipe when the grace period ends (the host was slow to read) is
// delivered, even though a background child keeps the pipe open.
func TestSlowHostGetsAllOutputDespiteBackgroundChild(t *testing.T) {
	gate := make(chan struct{})
	c := newGatedSession(t, testAgent(t), false, gate)
	c.sendJSON(typeHello, 0, map[string]interface{}{"protocol": 1})
	// The agent holds at most maxQueued + 2 chunks of output, the pipe 64 KiB more: head can
	// exit with data left in the pipe, which the grace period does not get to read.
	const n = maxQueued + 2*dataChunk + 8000
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "sleep 2 & exec head -c " + strconv.Itoa(n) + " /dev/zero"}})
	time.Sleep(time.Second)
	close(gate)
	c.expect(typeHello, 0)
	r := c.collect(1, 3*time.Second)
	if r.exit.Code != 0 || len(r.stdout) != n {
		t.Errorf("exit %+v, %d bytes", r.exit, len(r.stdout))
	}
}
