package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the agent (for command-line tests) and as a fake container engine.
const roleEnv = "VBAKE_AGENT_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "agent":
		os.Exit(run(os.Args[1:]))
	case "engine":
		os.Exit(fakeEngine())
	}
	resetChildSignals()
	os.Exit(m.Run())
}

// fakeEngine serves GET /_ping on $FAKE_ENGINE_SOCKET with 200 after $FAKE_ENGINE_DELAY_MS.
func fakeEngine() int {
	if ms := os.Getenv("FAKE_ENGINE_DELAY_MS"); ms != "" {
		var d int
		fmt.Sscan(ms, &d)
		time.Sleep(time.Duration(d) * time.Millisecond)
	}
	l, err := net.Listen("unix", os.Getenv("FAKE_ENGINE_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake engine:", err)
		return 3
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return 4
		}
		go func(c net.Conn) {
			defer c.Close()
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			for {
				h, err := r.ReadString('\n')
				if err != nil || h == "\r\n" {
					break
				}
			}
			if strings.HasPrefix(line, "GET /_ping ") {
				io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
			} else {
				io.WriteString(c, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			}
		}(c)
	}
}

func testLogger() *log.Logger {
	if os.Getenv("VBAKE_AGENT_TEST_LOG") != "" {
		return log.New(os.Stderr, "vbake-agent: ", 0)
	}
	return log.New(io.Discard, "", 0)
}

// client is the host side of a session in tests.
type client struct {
	t      *testing.T
	conn   net.Conn
	frames chan frame
	served chan error // what serve returned
}

// newSession starts serve on one end of a net.Pipe and returns the host end.
func newSession(t *testing.T, a *agent, portMode bool) *client {
	return newGatedSession(t, a, portMode, nil)
}

// newGatedSession is newSession with a host that reads nothing until gate is closed (nil: at once).
func newGatedSession(t *testing.T, a *agent, portMode bool, gate chan struct{}) *client {
	t.Helper()
	host, guest := net.Pipe()
	c := &client{t: t, conn: host, frames: make(chan frame, 4096), served: make(chan error, 1)}
	go func() {
		err := a.serve(guest, portMode)
		guest.Close()
		c.served <- err
	}()
	go func() {
		defer close(c.frames)
		if gate != nil {
			<-gate
		}
		for {
			f, err := readFrame(host)
			if err != nil {
				return
			}
			c.frames <- f
		}
	}()
	t.Cleanup(func() { host.Close() })
	return c
}

func testAgent(t *testing.T) *agent {
	a := newAgent(testLogger(), true)
	dir := t.TempDir()
	a.cmdlinePath = dir + "/cmdline"
	os.WriteFile(a.cmdlinePath, []byte("console=ttyS0 vbake.state=/nonexistent/state quiet\n"), 0o644)
	t.Cleanup(func() {
		a.engineStop = time.Second
		_ = a.stopEngine("test cleanup")
	})
	return a
}

func (c *client) send(t byte, ch uint32, payload []byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(encodeFrame(t, ch, payload)); err != nil {
		c.t.Fatalf("send %s: %v", typeName(t), err)
	}
}

func (c *client) sendJSON(t byte, ch uint32, v interface{}) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	c.send(t, ch, b)
}

// next returns the next frame from the agent.
func (c *client) next(timeout time.Duration) frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("link closed while waiting for a frame")
		}
		return f
	case <-time.After(timeout):
		c.t.Fatalf("no frame within %s", timeout)
	}
	return frame{}
}

// expect returns the next frame, which must have the given type and channel.
func (c *client) expect(t byte, ch uint32) frame {
	c.t.Helper()
	f := c.next(5 * time.Second)
	if f.typ != t || f.ch != ch {
		c.t.Fatalf("got %s on channel %d (%s), want %s on channel %d",
			typeName(f.typ), f.ch, f.payload, typeName(t), ch)
	}
	return f
}

func decode(t *testing.T, f frame, v interface{}) {
	t.Helper()
	if err := json.Unmarshal(f.payload, v); err != nil {
		t.Fatalf("%s payload %q: %v", typeName(f.typ), f.payload, err)
	}
}

func (c *client) hello() helloReply {
	c.t.Helper()
	c.sendJSON(typeHello, 0, map[string]interface{}{"protocol": 1, "client": "vbake/test"})
	var h helloReply
	decode(c.t, c.expect(typeHello, 0), &h)
	return h
}

type result struct {
	stdout, stderr string
	exit           exitStatus
	windows        int // sum of WINDOW bytes
	chunks         int // number of output frames
	maxChunk       int
}

// collect reads frames of channel ch until its EXIT; frames of other channels are not expected.
func (c *client) collect(ch uint32, timeout time.Duration) result {
	c.t.Helper()
	return c.collectEach(ch, timeout, nil)
}

// collectEach is collect calling output (unless nil) with the size of each output frame.
func (c *client) collectEach(ch uint32, timeout time.Duration, output func(n int)) result {
	c.t.Helper()
	var r result
	var out, errb strings.Builder
	deadline := time.Now().Add(timeout)
	for {
		f := c.next(time.Until(deadline))
		if f.ch != ch {
			c.t.Fatalf("unexpected %s on channel %d: %s", typeName(f.typ), f.ch, f.payload)
		}
		switch f.typ {
		case typeStdout, typeStderr:
			if f.typ == typeStdout {
				out.Write(f.payload)
			} else {
				errb.Write(f.payload)
			}
			r.chunks++
			if len(f.payload) > r.maxChunk {
				r.maxChunk = len(f.payload)
			}
			if output != nil {
				output(len(f.payload))
			}
		case typeWindow:
			var w struct{ Bytes int }
			decode(c.t, f, &w)
			r.windows += w.Bytes
		case typeExit:
			decode(c.t, f, &r.exit)
			r.stdout, r.stderr = out.String(), errb.String()
			return r
		default:
			c.t.Fatalf("unexpected %s on channel %d: %s", typeName(f.typ), f.ch, f.payload)
		}
	}
}

func (c *client) exec(ch uint32, req execRequest) {
	c.t.Helper()
	c.sendJSON(typeExec, ch, req)
}

// waitServed returns what serve returned.
func (c *client) waitServed(timeout time.Duration) error {
	c.t.Helper()
	select {
	case err := <-c.served:
		return err
	case <-time.After(timeout):
		c.t.Fatalf("serve did not return within %s", timeout)
	}
	return errors.New("unreachable")
}
