package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// Freezing a real filesystem is left to the integration tests (here it would freeze the host's).
func TestSuspendAndResumeCommandLines(t *testing.T) {
	var errOut bytes.Buffer
	if code := suspendPrepareCommand([]string{"extra"}, &errOut); code != 2 {
		t.Errorf("suspend-prepare with an argument: exit %d", code)
	}
	if code := resumeFinishCommand([]string{"--path", "/tmp"}, &errOut); code != 2 {
		t.Errorf("resume-finish without --clock: exit %d", code)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	errOut.Reset()
	if code := suspendPrepareCommand([]string{"--path", missing}, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "freeze "+missing) {
		t.Errorf("suspend-prepare of a missing path: exit %d: %s", code, errOut.String())
	}
}
