package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestListenUnixCommandLine runs the agent as a process (the test binary in agent role) with
// --listen-unix --no-poweroff: a first connection that just disconnects, then a second one that
// runs a command and powers off, after which the agent exits 0.
func TestListenUnixCommandLine(t *testing.T) {
	dir, err := os.MkdirTemp("", "vba")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	cmd := exec.Command(os.Args[0], "--listen-unix", sock, "--no-poweroff")
	cmd.Env = append(os.Environ(), roleEnv+"=agent")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer cmd.Process.Kill()

	dial := func() net.Conn {
		for i := 0; i < 200; i++ {
			if conn, err := net.Dial("unix", sock); err == nil {
				return conn
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("cannot connect to %s; agent said:\n%s", sock, stderr.String())
		return nil
	}

	conn := dial()
	conn.Write(encodeJSON(typeHello, 0, map[string]interface{}{"protocol": 1, "client": "vbake/test"}))
	if f, err := readFrame(conn); err != nil || f.typ != typeHello {
		t.Fatalf("first connection: %s %v", typeName(f.typ), err)
	}
	conn.Close()

	conn = dial()
	defer conn.Close()
	c := &client{t: t, conn: conn, frames: make(chan frame, 100)}
	go func() {
		defer close(c.frames)
		for {
			f, err := readFrame(conn)
			if err != nil {
				return
			}
			c.frames <- f
		}
	}()
	c.hello()
	c.exec(1, execRequest{Argv: []string{"echo", "hi"}})
	if r := c.collect(1, 5*time.Second); r.stdout != "hi\n" || r.exit.Code != 0 {
		t.Errorf("echo: %+v", r)
	}
	c.sendJSON(typePoweroff, 0, struct{}{})
	var p poweroffReply
	decode(t, c.expect(typePoweroff, 0), &p)
	if !p.OK {
		t.Errorf("POWEROFF reply %+v", p)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("agent exited with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not exit after POWEROFF")
	}
	log := stderr.String()
	for _, want := range []string{"vbake-agent: started", "handshake done", "host disconnected", "power-off: done"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestBadCommandLine(t *testing.T) {
	if code := run([]string{"--port", "/x", "--listen-unix", "/y"}); code != 2 {
		t.Errorf("exit code %d", code)
	}
	if code := run([]string{"--bogus"}); code != 2 {
		t.Errorf("exit code %d", code)
	}
}
