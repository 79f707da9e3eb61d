package main

// The engine-get subcommand reads one resource of the engine's HTTP API on its unix socket, so
// the host can answer read-only commands (vdkr images) without starting the engine's CLI, whose
// start-up alone costs most of a second under TCG.

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

const engineGetTimeout = 30 * time.Second

// engineGetCommand writes the body of GET PATH to stdout; exit 1 when the engine does not answer
// 200 (its status line and body go to stderr), 2 on bad usage.
func engineGetCommand(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: vbake-agent engine-get --socket PATH API_PATH"
	flags := flag.NewFlagSet("engine-get", flag.ContinueOnError)
	flags.SetOutput(stderr)
	socket := flags.String("socket", "", "the engine's API socket")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *socket == "" || flags.NArg() != 1 || !strings.HasPrefix(flags.Arg(0), "/") {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	path := flags.Arg(0)
	conn, err := net.DialTimeout("unix", *socket, engineGetTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "engine-get: %v\n", err)
		return 1
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(engineGetTimeout))
	// HTTP/1.0: the engine answers without chunking and closes the connection at the end.
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: engine\r\n\r\n", path); err != nil {
		fmt.Fprintf(stderr, "engine-get: %v\n", err)
		return 1
	}
	r := bufio.NewReader(conn)
	status, err := r.ReadString('\n')
	if err != nil {
		fmt.Fprintf(stderr, "engine-get: GET %s: %v\n", path, err)
		return 1
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			fmt.Fprintf(stderr, "engine-get: GET %s: headers: %v\n", path, err)
			return 1
		}
		if strings.TrimRight(line, "\r\n") == "" {
			break
		}
	}
	f := strings.Fields(status)
	if len(f) < 2 || f[1] != "200" {
		fmt.Fprintf(stderr, "engine-get: GET %s: %s\n", path, strings.TrimSpace(status))
		_, _ = io.Copy(stderr, r)
		return 1
	}
	if _, err := io.Copy(stdout, r); err != nil {
		fmt.Fprintf(stderr, "engine-get: GET %s: body: %v\n", path, err)
		return 1
	}
	return 0
}
