package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type mergeEntry struct {
	typ      byte
	name     string
	content  string
	linkname string
	mode     int64
}

func mergeTar(t *testing.T, entries ...mergeEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.linkname, Mode: e.mode,
			ModTime: time.Unix(1600000000, 0), Format: tar.FormatPAX, Uid: 4321, Gid: 4321}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.content))
		}
		if e.typ == tar.TypeChar {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The copy-back of a container's volume, as an unprivileged user and as root.
func TestMergeTree(t *testing.T) {
	odd := "caf\xe9-\x01name"
	in := mergeTar(t,
		mergeEntry{typ: tar.TypeDir, name: "./", mode: 0o755},
		mergeEntry{typ: tar.TypeReg, name: "./changed", content: "new\n", mode: 0o640},
		mergeEntry{typ: tar.TypeReg, name: "./sub/a", content: "a\n", mode: 0o644},
		mergeEntry{typ: tar.TypeLink, name: "./sub/a-again", linkname: "./sub/a"},
		mergeEntry{typ: tar.TypeReg, name: "./" + odd, content: "latin-1\n", mode: 0o600},
		mergeEntry{typ: tar.TypeReg, name: "./.changed.vbake-new", content: "a name the container chose\n", mode: 0o644},
		mergeEntry{typ: tar.TypeReg, name: "./suid", content: "#!/bin/sh\n", mode: 0o4755},
		mergeEntry{typ: tar.TypeFifo, name: "./fifo", mode: 0o620},
		mergeEntry{typ: tar.TypeChar, name: "./null", mode: 0o666},
		mergeEntry{typ: tar.TypeSymlink, name: "./link", linkname: "sub/a"},
		mergeEntry{typ: tar.TypeReg, name: "./hostdir", content: "file where the host has a dir\n", mode: 0o644},
		mergeEntry{typ: tar.TypeReg, name: "./viasymlink/x", content: "x\n", mode: 0o644},
	)
	for _, asRoot := range []bool{false, true} {
		if asRoot && os.Geteuid() != 0 {
			continue
		}
		root := t.TempDir()
		write := func(rel, content string) {
			if err := os.WriteFile(filepath.Join(root, rel), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("changed", "old\n")
		write("untouched", "mine\n")
		if err := os.Mkdir(filepath.Join(root, "hostdir"), 0o755); err != nil {
			t.Fatal(err)
		}
		elsewhere := t.TempDir()
		if err := os.Symlink(elsewhere, filepath.Join(root, "viasymlink")); err != nil {
			t.Fatal(err)
		}
		flag := "--as-user"
		if asRoot {
			flag = "--as-root"
		}
		var errOut bytes.Buffer
		if code := mergeTreeCommand([]string{"--root", root, flag}, bytes.NewReader(in), &errOut); code != 0 {
			t.Fatalf("%s: exit %d: %s", flag, code, errOut.String())
		}
		read := func(rel string) string {
			b, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Errorf("%s: %s: %v", flag, rel, err)
			}
			return string(b)
		}
		if read("changed") != "new\n" || read("untouched") != "mine\n" || read(odd) != "latin-1\n" ||
			read(".changed.vbake-new") != "a name the container chose\n" {
			t.Errorf("%s: contents wrong", flag)
		}
		var a, again syscall.Stat_t
		if err := syscall.Stat(filepath.Join(root, "sub/a"), &a); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Stat(filepath.Join(root, "sub/a-again"), &again); err != nil {
			t.Fatal(err)
		}
		if a.Ino != again.Ino || a.Nlink != 2 {
			t.Errorf("%s: hardlink not kept: inodes %d %d, nlink %d", flag, a.Ino, again.Ino, a.Nlink)
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(root, "changed"), &st); err != nil || st.Mode&0o7777 != 0o640 {
			t.Errorf("%s: changed: mode %o", flag, st.Mode&0o7777)
		}
		if err := syscall.Lstat(filepath.Join(root, "fifo"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			t.Errorf("%s: fifo not a FIFO: %o %v", flag, st.Mode, err)
		}
		if link, err := os.Readlink(filepath.Join(root, "link")); err != nil || link != "sub/a" {
			t.Errorf("%s: link %q %v", flag, link, err)
		}
		if fi, err := os.Lstat(filepath.Join(root, "hostdir")); err != nil || !fi.IsDir() {
			t.Errorf("%s: the host's directory was replaced", flag)
		}
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Errorf("%s: written through a symlink: %v", flag, entries)
		}
		entries, _ := os.ReadDir(root)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".vbake-merge-") {
				t.Errorf("%s: temporary %s left", flag, e.Name())
			}
		}
		syscall.Lstat(filepath.Join(root, "suid"), &st)
		_, devErr := os.Lstat(filepath.Join(root, "null"))
		w := errOut.String()
		if asRoot {
			if st.Mode&0o7777 != 0o4755 || st.Uid != 4321 {
				t.Errorf("as root: suid mode %o uid %d", st.Mode&0o7777, st.Uid)
			}
			if devErr != nil {
				t.Errorf("as root: device not made: %v", devErr)
			}
			if strings.Contains(w, "device") || strings.Contains(w, "setuid") {
				t.Errorf("as root: %s", w)
			}
		} else {
			if st.Mode&0o7777 != 0o755 {
				t.Errorf("as user: suid mode %o", st.Mode&0o7777)
			}
			if devErr == nil {
				t.Errorf("as user: device made")
			}
			for _, want := range []string{`device nodes: "null"`, `setuid/setgid bits: "suid"`,
				`entries where the host has a directory: "hostdir"`, `entries below a symlink on the host: "viasymlink/x"`} {
				if !strings.Contains(w, want) {
					t.Errorf("as user: warning %q lacks %q", w, want)
				}
			}
			if strings.Count(w, "\n") != 1 {
				t.Errorf("as user: want one warning line, got %q", w)
			}
		}
	}
}

func TestMergeTreeRefusesEscapesAndBadUsage(t *testing.T) {
	root := t.TempDir()
	var errOut bytes.Buffer
	in := mergeTar(t, mergeEntry{typ: tar.TypeReg, name: "../escape", content: "x", mode: 0o644})
	if code := mergeTreeCommand([]string{"--root", root}, bytes.NewReader(in), &errOut); code != 1 {
		t.Errorf("escape: exit %d: %s", code, errOut.String())
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
		t.Errorf("written outside the root")
	}
	if code := mergeTreeCommand([]string{}, bytes.NewReader(nil), &errOut); code != 2 {
		t.Errorf("no --root: exit %d", code)
	}
}
