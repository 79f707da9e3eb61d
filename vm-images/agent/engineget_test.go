package main

import (
	"bufio"
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
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
