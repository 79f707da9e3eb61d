package main

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const threeMiB = 3 << 20

// collectGranting is collect for a host with an output window, as a relay would be: it
// acknowledges output in steps of step bytes and fails if more than window bytes are ever
// unacknowledged. unacked is what the host already received without acknowledging it.
func (c *client) collectGranting(ch uint32, window, step, unacked int, timeout time.Duration) result {
	c.t.Helper()
	grant := func() {
		for ; unacked >= step; unacked -= step {
			c.sendJSON(typeWindow, ch, map[string]int{"bytes": step})
		}
	}
	grant()
	r := c.collectEach(ch, timeout, func(n int) {
		if unacked += n; unacked > window {
			c.t.Fatalf("%d bytes of output unacknowledged, window %d", unacked, window)
		}
		grant()
	})
	if r.windows != 0 {
		c.t.Fatalf("unexpected stdin WINDOW (%d bytes) on channel %d", r.windows, ch)
	}
	return r
}

// outputFor returns the bytes of output that come on ch within d; anything else fails.
func (c *client) outputFor(ch uint32, d time.Duration) []byte {
	c.t.Helper()
	var got []byte
	end := time.After(d)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("link closed")
			}
			if (f.typ != typeStdout && f.typ != typeStderr) || f.ch != ch {
				c.t.Fatalf("unexpected %s on channel %d: %s", typeName(f.typ), f.ch, f.payload)
			}
			got = append(got, f.payload...)
		case <-end:
			return got
		}
	}
}

func TestOutputWindowStopsAndResumesOutput(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"head", "-c", strconv.Itoa(threeMiB), "/dev/zero"}, OutputWindow: 65536})
	// Without WINDOW the command gets no further than the window and the pipe: no EXIT.
	got := len(c.outputFor(1, time.Second))
	if got == 0 || got > 65536 {
		t.Fatalf("%d bytes of output before any WINDOW, window 65536", got)
	}
	r := c.collectGranting(1, 65536, 65536, got, 20*time.Second)
	if r.exit != (exitStatus{Code: 0}) || got+len(r.stdout) != threeMiB || r.stderr != "" {
		t.Errorf("exit %+v, %d+%d bytes of stdout, stderr %q", r.exit, got, len(r.stdout), r.stderr)
	}
}

// Both streams share one credit. A window of one chunk is the hard case: a pump waiting on an
// empty pipe must not hold credit the other pump needs.
func TestOutputWindowSharedByStdoutAndStderr(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{
		Argv: []string{"sh", "-c", "head -c 300000 /dev/zero >&2; head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"},
		// A small step keeps both pumps taking credit at the same time.
		OutputWindow: dataChunk,
	})
	r := c.collectGranting(1, dataChunk, 4096, 0, 20*time.Second)
	if r.exit != (exitStatus{Code: 0}) || len(r.stdout) != 300000 || len(r.stderr) != 600000 {
		t.Errorf("exit %+v, %d bytes of stdout, %d of stderr", r.exit, len(r.stdout), len(r.stderr))
	}
	// A terminal's one stream is limited the same way.
	c.exec(2, execRequest{Argv: []string{"head", "-c", "1000000", "/dev/zero"}, TTY: true, OutputWindow: 32768})
	r = c.collectGranting(2, 32768, 32768, 0, 20*time.Second)
	if r.exit != (exitStatus{Code: 0}) || len(r.stdout) != 1000000 {
		t.Errorf("tty: exit %+v, %d bytes of stdout", r.exit, len(r.stdout))
	}
}

func TestOutputWindowLiftedByMinusOne(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{
		Argv:         []string{"sh", "-c", "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2"},
		OutputWindow: 65536,
	})
	got := len(c.outputFor(1, 300*time.Millisecond))
	if got > 65536 {
		t.Fatalf("%d bytes of output before any WINDOW, window 65536", got)
	}
	c.sendJSON(typeWindow, 1, map[string]int{"bytes": -1})
	r := c.collect(1, 10*time.Second)
	if r.exit != (exitStatus{Code: 0}) || got+len(r.stdout)+len(r.stderr) != 2<<20 {
		t.Errorf("exit %+v, %d+%d+%d bytes of output", r.exit, got, len(r.stdout), len(r.stderr))
	}
}

// Output left in the pipe of a command that exited while waiting for credit is still sent once
// credit comes, although the grace period for the background child holding the pipe is over.
func TestOutputWindowDrainsAfterExit(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	start := time.Now()
	c.exec(1, execRequest{Argv: []string{"sh", "-c", "sleep 3 & exec head -c 100000 /dev/zero"}, OutputWindow: 65536})
	got := len(c.outputFor(1, exitGrace+500*time.Millisecond))
	r := c.collectGranting(1, 65536, 65536, got, 5*time.Second)
	if r.exit != (exitStatus{Code: 0}) || got+len(r.stdout) != 100000 {
		t.Errorf("exit %+v, %d+%d bytes of stdout", r.exit, got, len(r.stdout))
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("EXIT after %s: the agent waited for the background child", d)
	}
}

// WINDOW that comes too late, for a channel that never existed or without outputWindow is
// ignored; only a malformed one is answered with ERROR.
func TestOutputWindowIgnoredOrRejected(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.sendJSON(typeWindow, 99, map[string]int{"bytes": 65536})
	c.sendJSON(typeWindow, 99, map[string]int{"bytes": -1})
	c.exec(1, execRequest{Argv: []string{"echo", "hi"}})
	if r := c.collect(1, 5*time.Second); r.stdout != "hi\n" {
		t.Fatalf("got %+v", r)
	}
	c.sendJSON(typeWindow, 1, map[string]int{"bytes": 10})
	c.exec(2, execRequest{Argv: []string{"sh", "-c", "read x; echo $x"}, Stdin: true})
	c.sendJSON(typeWindow, 2, map[string]int{"bytes": 10})
	c.send(typeStdin, 2, []byte("yo\n"))
	if r := c.collect(2, 5*time.Second); r.stdout != "yo\n" || r.exit.Code != 0 || r.windows != 3 {
		t.Fatalf("got %+v", r)
	}
	// Frames are handled in order: the first ERROR must be the one for the malformed WINDOW.
	for _, p := range []string{`{"bytes":"x"}`, `{"bytes":0}`, `{"bytes":-2}`, `{}`, `{"bytes":1.5}`} {
		c.send(typeWindow, 3, []byte(p))
		var e struct{ Message string }
		decode(t, c.expect(typeError, 3), &e)
		if !strings.Contains(e.Message, "WINDOW") {
			t.Errorf("%s: ERROR message %q", p, e.Message)
		}
	}
}

// A host that goes away while commands wait for credit takes them with it: the agent lifts the
// windows, so the session's close does not wait for pumps that would never get credit.
func TestOutputWindowDisconnect(t *testing.T) {
	for _, tty := range []bool{false, true} {
		c := newSession(t, testAgent(t), false)
		c.hello()
		c.exec(1, execRequest{Argv: []string{"sh", "-c", "echo $$; exec head -c " + strconv.Itoa(threeMiB) + " /dev/zero"},
			TTY: tty, OutputWindow: 65536})
		out := c.outputFor(1, 300*time.Millisecond)
		pid, err := strconv.Atoi(strings.TrimSpace(string(bytes.SplitN(out, []byte("\n"), 2)[0])))
		if err != nil || len(out) > 65536 {
			t.Fatalf("tty %v: %d bytes of output, starting %q", tty, len(out), out[:8])
		}
		c.conn.Close()
		// close waits up to 5 s for the commands to finish.
		start := time.Now()
		if err := c.waitServed(5 * time.Second); err == nil || err == errPoweroff {
			t.Errorf("tty %v: serve returned %v", tty, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("tty %v: serve returned after %s", tty, d)
		}
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("tty %v: command pid %d still there: %v", tty, pid, err)
		}
	}
}

// chanPort is a virtio port in tests: reads come from in, a nil entry reads end of file (no host
// connected); writes go to w.
type chanPort struct {
	in   chan []byte
	rest []byte
	w    io.Writer
}

func (p *chanPort) Read(b []byte) (int, error) {
	if len(p.rest) == 0 {
		if p.rest = <-p.in; p.rest == nil {
			return 0, io.EOF
		}
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

func (p *chanPort) Write(b []byte) (int, error) { return p.w.Write(b) }

// On the virtio port a host that disconnects leaves the commands running; those waiting for
// credit go on without a limit, as without outputWindow.
func TestOutputWindowLiftedWhenPortHostGoes(t *testing.T) {
	hostR, guestW := io.Pipe()
	port := &chanPort{in: make(chan []byte, 8), w: guestW}
	c := &client{t: t, frames: make(chan frame, 4096), served: make(chan error, 1)}
	go func() {
		c.served <- testAgent(t).serve(port, true)
		guestW.Close()
	}()
	go func() {
		defer close(c.frames)
		for {
			f, err := readFrame(hostR)
			if err != nil {
				return
			}
			c.frames <- f
		}
	}()
	port.in <- encodeJSON(typeHello, 0, map[string]int{"protocol": 1})
	c.expect(typeHello, 0)
	port.in <- encodeJSON(typeExec, 1, execRequest{Argv: []string{"head", "-c", strconv.Itoa(threeMiB), "/dev/zero"},
		OutputWindow: 65536})
	got := len(c.outputFor(1, 300*time.Millisecond))
	if got > 65536 {
		t.Fatalf("%d bytes of output before any WINDOW, window 65536", got)
	}
	port.in <- nil
	r := c.collect(1, 10*time.Second)
	if r.exit != (exitStatus{Code: 0}) || got+len(r.stdout) != threeMiB {
		t.Errorf("exit %+v, %d+%d bytes of stdout", r.exit, got, len(r.stdout))
	}
	port.in <- []byte{0, 0, 0, 1} // a bad length ends the session
	c.expect(typeError, 0)
	var bad *errBadFrame
	if err := c.waitServed(5 * time.Second); !errors.As(err, &bad) {
		t.Errorf("serve returned %v", err)
	}
}

// POWEROFF lifts the windows too: the killed command's EXIT comes before the reply.
func TestOutputWindowPoweroff(t *testing.T) {
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(1, execRequest{Argv: []string{"head", "-c", strconv.Itoa(threeMiB), "/dev/zero"}, OutputWindow: 65536})
	c.outputFor(1, 300*time.Millisecond)
	c.sendJSON(typePoweroff, 0, struct{}{})
	if r := c.collect(1, 3*time.Second); r.exit != (exitStatus{Code: 137, Signal: 9}) {
		t.Errorf("EXIT %+v", r.exit)
	}
	var p poweroffReply
	decode(t, c.expect(typePoweroff, 0), &p)
	if !p.OK {
		t.Errorf("POWEROFF reply %+v", p)
	}
}
