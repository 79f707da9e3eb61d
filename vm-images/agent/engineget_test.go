package main

import (
	"bufio"
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeAPI serves one canned HTTP/1.0 response per connection and records the request line.
func fakeAPI(t *testing.T, response string) (string, chan string) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	requests := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			requests <- strings.TrimSpace(line)
			c.Write([]byte(response))
			c.Close()
		}
	}()
	return sock, requests
}

func TestEngineGetCopiesTheBody(t *testing.T) {
	sock, requests := fakeAPI(t, "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[{\"Id\":\"sha256:ab\"}]\n")
	var out, errb bytes.Buffer
	if code := engineGetCommand([]string{"--socket", sock, "/images/json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if out.String() != "[{\"Id\":\"sha256:ab\"}]\n" {
		t.Fatalf("body %q", out.String())
	}
	if r := <-requests; r != "GET /images/json HTTP/1.0" {
		t.Fatalf("request %q", r)
	}
}

func TestEngineGetReportsANon200(t *testing.T) {
	sock, _ := fakeAPI(t, "HTTP/1.0 404 Not Found\r\n\r\n{\"message\":\"page not found\"}")
	var out, errb bytes.Buffer
	if code := engineGetCommand([]string{"--socket", sock, "/nope"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if out.Len() != 0 || !strings.Contains(errb.String(), "404 Not Found") || !strings.Contains(errb.String(), "page not found") {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
}

func TestEngineGetBadUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := engineGetCommand([]string{"images/json"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d", code)
	}
}

func TestEngineGetRunsInsideTheAgent(t *testing.T) {
	sock, _ := fakeAPI(t, "HTTP/1.0 200 OK\r\n\r\n[]\n")
	c := newSession(t, testAgent(t), false)
	c.hello()
	c.exec(5, execRequest{Argv: []string{"/usr/lib/vbake/vbake-agent", "engine-get", "--socket", sock, "/images/json"}})
	r := c.collect(5, 5*time.Second)
	if r.stdout != "[]\n" || r.stderr != "" || r.exit != (exitStatus{Code: 0}) {
		t.Errorf("got %+v", r)
	}
	// Bad usage comes back as the subcommand's own exit code and message.
	c.exec(6, execRequest{Argv: []string{"/usr/lib/vbake/vbake-agent", "engine-get"}})
	if r := c.collect(6, 5*time.Second); r.exit.Code != 2 || !strings.Contains(r.stderr, "usage") {
		t.Errorf("got %+v", r)
	}
}
