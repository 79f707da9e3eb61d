package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const treeMtimeBase = 1600000000

// capNetRaw is a VFS_CAP_REVISION_2 security.capability value: cap_net_raw permitted+effective.
var capNetRaw = string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

var (
	longName   = "dir/" + strings.Repeat("long", 30)
	oddName    = "bytes\xff\x01name"
	binaryNote = "bin\x00ary\xff"
)

func isRoot() bool { return os.Geteuid() == 0 }

// buildTree makes a tree with every kind of entry export-tree must carry; the parts that need
// root are left out otherwise. Every path gets its own mtime with a fractional second.
func buildTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel, content string, mode uint32) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.WriteFile(p, []byte(content), 0o600))
		must(syscall.Chmod(p, mode))
	}
	dir := func(rel string, mode uint32) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.Mkdir(p, 0o700))
		must(syscall.Chmod(p, mode))
	}
	must(os.Mkdir(root, 0o755))
	file("a.txt", "hello\n", 0o644)
	must(syscall.Setxattr(filepath.Join(root, "a.txt"), "user.note", []byte(binaryNote), 0))
	dir("dir", 0o750)
	must(os.Symlink("/nonexistent/target", filepath.Join(root, "dir/abs-link")))
	file("dir/hard2", "linked content", 0o640)
	must(os.Link(filepath.Join(root, "dir/hard2"), filepath.Join(root, "hard1")))
	dir("dir/sub", 0o755)
	big := make([]byte, 200000)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	file("dir/sub/file.bin", string(big), 0o644)
	file(longName, "long name", 0o644)
	file(oddName, "odd name", 0o644)
	dir("empty", 0o700)
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	must(syscall.Chmod(filepath.Join(root, "fifo"), 0o640))
	must(os.Symlink("a.txt", filepath.Join(root, "link")))
	dir("sgid-dir", 0o2775)
	dir("sticky", 0o1777)
	file("suid", "#!/bin/sh\n", 0o4755)
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	if isRoot() {
		file("owned", "uid 1000", 0o600)
		must(os.Lchown(filepath.Join(root, "owned"), 1000, 1000))
		must(syscall.Chmod(filepath.Join(root, "owned"), 0o6750))
		dir("opaque", 0o755)
		must(syscall.Setxattr(filepath.Join(root, "opaque"), "trusted.overlay.opaque", []byte("y"), 0))
		file("opaque/keep", "kept", 0o644)
		file("ping", "ping binary", 0o755)
		must(syscall.Setxattr(filepath.Join(root, "ping"), "security.capability", []byte(capNetRaw), 0))
		must(syscall.Mknod(filepath.Join(root, "whiteout"), syscall.S_IFCHR, 0))
		must(syscall.Mknod(filepath.Join(root, "blk"), syscall.S_IFBLK|0o660, int(mkdev(7, 0))))
		must(os.Lchown(filepath.Join(root, "blk"), 0, 6))
		must(syscall.Chmod(filepath.Join(root, "blk"), 0o660))
		must(lsetxattr(filepath.Join(root, "link"), "trusted.test", []byte("on a symlink")))
	}

	var paths []string
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	for i, p := range paths {
		must(lutimes(p, time.Unix(int64(treeMtimeBase+i), 123456789)))
	}
	return root
}

func exportTree(t *testing.T, args ...string) ([]byte, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := exportTreeCommand(args, &out, &errOut); code != 0 {
		t.Fatalf("export-tree %v: exit %d: %s", args, code, errOut.String())
	}
	return out.Bytes(), errOut.String()
}

func importTree(t *testing.T, in []byte, args ...string) string {
	t.Helper()
	var errOut bytes.Buffer
	if code := importTreeCommand(args, bytes.NewReader(in), &errOut); code != 0 {
		t.Fatalf("import-tree %v: exit %d: %s", args, code, errOut.String())
	}
	return errOut.String()
}

type tarEntry struct {
	hdr     *tar.Header
	content []byte
}

func readTar(t *testing.T, b []byte) ([]string, map[string]tarEntry) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	entries := map[string]tarEntry{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, entries
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := entries[hdr.Name]; dup {
			t.Errorf("duplicate entry %q", hdr.Name)
		}
		names = append(names, hdr.Name)
		entries[hdr.Name] = tarEntry{hdr, content}
	}
}

func TestExportTreeIsDeterministic(t *testing.T) {
	src := buildTree(t)
	first, _ := exportTree(t, "--root", src)
	// Reading every file (atime) and a second walk must not change a byte.
	if _, err := exec.Command("cat", filepath.Join(src, "a.txt"), filepath.Join(src, "hard1")).Output(); err != nil {
		t.Fatal(err)
	}
	second, _ := exportTree(t, "--root", src)
	if !bytes.Equal(first, second) {
		t.Fatalf("two exports differ (%d and %d bytes)", len(first), len(second))
	}
}

func TestExportTreeHeaders(t *testing.T) {
	src := buildTree(t)
	out, stderr := exportTree(t, "--root", src, "--stats")
	names, entries := readTar(t, out)

	// Expected order, independently: WalkDir is depth first with siblings in bytewise order.
	var want []string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(src, p)
		switch {
		case rel == ".":
			want = append(want, "./")
		case d.Type()&fs.ModeSocket != 0:
		case d.IsDir():
			want = append(want, "./"+rel+"/")
		default:
			want = append(want, "./"+rel)
		}
		return nil
	})
	if !reflect.DeepEqual(names, want) {
		t.Errorf("order:\n got %q\nwant %q", names, want)
	}

	for _, name := range names {
		h := entries[name].hdr
		rel := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(src, rel), &st); err != nil {
			t.Fatal(err)
		}
		if h.ModTime.Nanosecond() != 0 || h.ModTime.Unix() != st.Mtim.Sec {
			t.Errorf("%s: mtime %v, want %d whole seconds", name, h.ModTime, st.Mtim.Sec)
		}
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: atime %v ctime %v uname %q gname %q", name, h.AccessTime, h.ChangeTime, h.Uname, h.Gname)
		}
		if h.Uid != int(st.Uid) || h.Gid != int(st.Gid) {
			t.Errorf("%s: uid/gid %d/%d, want %d/%d", name, h.Uid, h.Gid, st.Uid, st.Gid)
		}
	}

	type expect struct {
		typ      byte
		mode     int64
		link     string
		xattrs   map[string]string
		major    int64
		minor    int64
		uid, gid int
		content  string
	}
	checks := map[string]expect{
		"./":             {typ: tar.TypeDir, mode: 0o755},
		"./a.txt":        {typ: tar.TypeReg, mode: 0o644, content: "hello\n", xattrs: map[string]string{"user.note": binaryNote}},
		"./dir/":         {typ: tar.TypeDir, mode: 0o750},
		"./dir/sub/":     {typ: tar.TypeDir, mode: 0o755},
		"./dir/hard2":    {typ: tar.TypeReg, mode: 0o640, content: "linked content"},
		"./hard1":        {typ: tar.TypeLink, mode: 0o640, link: "./dir/hard2"},
		"./dir/abs-link": {typ: tar.TypeSymlink, mode: 0o777, link: "/nonexistent/target"},
		"./" + longName:  {typ: tar.TypeReg, mode: 0o644, content: "long name"},
		"./" + oddName:   {typ: tar.TypeReg, mode: 0o644, content: "odd name"},
		"./empty/":       {typ: tar.TypeDir, mode: 0o700},
		"./fifo":         {typ: tar.TypeFifo, mode: 0o640},
		"./sgid-dir/":    {typ: tar.TypeDir, mode: 0o2775},
		"./sticky/":      {typ: tar.TypeDir, mode: 0o1777},
		"./suid":         {typ: tar.TypeReg, mode: 0o4755, content: "#!/bin/sh\n"},
	}
	if isRoot() {
		checks["./link"] = expect{typ: tar.TypeSymlink, mode: 0o777, link: "a.txt",
			xattrs: map[string]string{"trusted.test": "on a symlink"}}
		checks["./owned"] = expect{typ: tar.TypeReg, mode: 0o6750, uid: 1000, gid: 1000, content: "uid 1000"}
		checks["./opaque/"] = expect{typ: tar.TypeDir, mode: 0o755,
			xattrs: map[string]string{"trusted.overlay.opaque": "y"}}
		checks["./ping"] = expect{typ: tar.TypeReg, mode: 0o755, content: "ping binary",
			xattrs: map[string]string{"security.capability": capNetRaw}}
		checks["./whiteout"] = expect{typ: tar.TypeChar, mode: 0}
		checks["./blk"] = expect{typ: tar.TypeBlock, mode: 0o660, major: 7, minor: 0, gid: 6}
	} else {
		checks["./link"] = expect{typ: tar.TypeSymlink, mode: 0o777, link: "a.txt"}
		t.Log("not root: no devices, foreign owners, trusted.* or security.* xattrs")
	}
	for name, want := range checks {
		e, ok := entries[name]
		if !ok {
			t.Errorf("%s: missing", name)
			continue
		}
		h := e.hdr
		xattrs := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, xattrPAXPrefix) {
				xattrs[strings.TrimPrefix(k, xattrPAXPrefix)] = v
			}
		}
		if want.xattrs == nil {
			want.xattrs = map[string]string{}
		}
		if isRoot() {
			if h.Uid != want.uid || h.Gid != want.gid {
				t.Errorf("%s: owner %d:%d, want %d:%d", name, h.Uid, h.Gid, want.uid, want.gid)
			}
		}
		if h.Typeflag != want.typ || h.Mode != want.mode || h.Linkname != want.link ||
			h.Devmajor != want.major || h.Devminor != want.minor || string(e.content) != want.content ||
			!reflect.DeepEqual(xattrs, want.xattrs) {
			t.Errorf("%s: got type %q mode %#o link %q dev %d,%d xattrs %q content %.20q\n"+
				"want type %q mode %#o link %q dev %d,%d xattrs %q content %.20q", name,
				h.Typeflag, h.Mode, h.Linkname, h.Devmajor, h.Devminor, xattrs, e.content,
				want.typ, want.mode, want.link, want.major, want.minor, want.xattrs, want.content)
		}
	}
	if e := entries["./dir/sub/file.bin"]; e.hdr == nil || e.hdr.Size != 200000 {
		t.Errorf("./dir/sub/file.bin: %+v", e.hdr)
	}
	if _, ok := entries["./sock"]; ok {
		t.Errorf("socket exported")
	}
	if !strings.Contains(stderr, "warning: skipping socket ./sock") {
		t.Errorf("no socket warning in %q", stderr)
	}

	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var stats struct{ Entries, Files, Bytes int64 }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &stats); err != nil {
		t.Fatalf("stats line %q: %v", lines[len(lines)-1], err)
	}
	var files, size int64
	for _, e := range entries {
		if e.hdr.Typeflag == tar.TypeReg {
			files++
			size += e.hdr.Size
		}
	}
	if stats.Entries != int64(len(names)) || stats.Files != files || stats.Bytes != size {
		t.Errorf("stats %+v, want %d entries, %d files, %d bytes", stats, len(names), files, size)
	}
}

func TestExportTreeExcludes(t *testing.T) {
	src := buildTree(t)
	out, _ := exportTree(t, "--root", src, "--exclude", "dir/sub", "--exclude", "./empty/",
		"--exclude", "dir/hard2", "--exclude", "does/not/exist")
	names, entries := readTar(t, out)
	for _, name := range names {
		if strings.HasPrefix(name, "./dir/sub/") || name == "./empty/" || name == "./dir/hard2" {
			t.Errorf("excluded %s exported", name)
		}
	}
	if _, ok := entries["./dir/"]; !ok {
		t.Errorf("./dir/ missing")
	}
	// With its first path excluded, the other path of the hardlink carries the content.
	if e := entries["./hard1"]; e.hdr == nil || e.hdr.Typeflag != tar.TypeReg || string(e.content) != "linked content" {
		t.Errorf("./hard1: %+v", e.hdr)
	}

	for _, bad := range []string{"../x", "/abs", ".", "a/../.."} {
		var errOut bytes.Buffer
		if code := exportTreeCommand([]string{"--root", src, "--exclude", bad}, io.Discard, &errOut); code != 2 {
			t.Errorf("--exclude %q: exit %d, want 2 (%s)", bad, code, errOut.String())
		}
	}
}

func TestExportTreeMtimeClamp(t *testing.T) {
	src := buildTree(t)
	clamp := int64(treeMtimeBase + 5)
	out, _ := exportTree(t, "--root", src, "--mtime-clamp", fmt.Sprint(clamp))
	_, entries := readTar(t, out)
	var clamped, kept int
	for name, e := range entries {
		rel := strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(src, rel), &st); err != nil {
			t.Fatal(err)
		}
		want := st.Mtim.Sec
		if want > clamp {
			want = clamp
			clamped++
		} else {
			kept++
		}
		if got := e.hdr.ModTime.Unix(); got != want {
			t.Errorf("%s: mtime %d, want %d", name, got, want)
		}
	}
	if clamped == 0 || kept == 0 {
		t.Errorf("clamped %d, kept %d: the test tree does not straddle the clamp", clamped, kept)
	}
}

// node is everything import-tree must restore about one path.
type node struct {
	Type         uint32
	Mode         uint32
	UID, GID     uint32
	Size         int64
	Content      string
	Link         string
	Xattrs       map[string]string
	Major, Minor uint64
	SameInodeAs  string
	Mtime        int64
}

func snapshot(t *testing.T, root string) map[string]node {
	t.Helper()
	nodes := map[string]node{}
	firstPath := map[fileID]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Type: st.Mode & syscall.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			Mtime: st.Mtim.Sec}
		switch n.Type {
		case syscall.S_IFSOCK:
			return nil
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.Size, n.Content = st.Size, hex.EncodeToString(sum[:])
		case syscall.S_IFLNK:
			if n.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case syscall.S_IFCHR, syscall.S_IFBLK:
			n.Major, n.Minor = devMajor(uint64(st.Rdev)), devMinor(uint64(st.Rdev))
		}
		if n.Xattrs, err = readXattrs(p, make([]byte, 256)); err != nil {
			return err
		}
		if n.Type != syscall.S_IFDIR {
			id := fileID{uint64(st.Dev), st.Ino}
			if first, ok := firstPath[id]; ok {
				n.SameInodeAs = first
			} else {
				firstPath[id] = rel
			}
		}
		nodes[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			t.Errorf("%q: missing after import", k)
		case !wok:
			t.Errorf("%q: not in the source", k)
		case !reflect.DeepEqual(w, g):
			t.Errorf("%q:\n got %+v\nwant %+v", k, g, w)
		}
	}
}

func TestTreeRoundTrip(t *testing.T) {
	src := buildTree(t)
	out, _ := exportTree(t, "--root", src)
	dst := filepath.Join(t.TempDir(), "new", "target")
	stderr := importTree(t, out, "--root", dst, "--stats")
	want := snapshot(t, src)
	if _, ok := want["hard1"]; !ok || want["hard1"].SameInodeAs != "dir/hard2" {
		t.Fatalf("source snapshot does not see the hardlink: %+v", want["hard1"])
	}
	compareTrees(t, want, snapshot(t, dst))
	names, _ := readTar(t, out)
	if wantStats := fmt.Sprintf("{\"entries\":%d}\n", len(names)); stderr != wantStats {
		t.Errorf("stats %q, want %q", stderr, wantStats)
	}

	// Over an existing tree: files are replaced, directories kept and updated.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dst, "a.txt"), []byte("changed"), 0o600))
	must(os.Remove(filepath.Join(dst, "empty")))
	must(os.WriteFile(filepath.Join(dst, "empty"), []byte("now a file"), 0o600))
	must(os.Remove(filepath.Join(dst, "link")))
	must(os.MkdirAll(filepath.Join(dst, "link", "x"), 0o755))
	must(os.RemoveAll(filepath.Join(dst, "dir", "sub")))
	must(os.Symlink("/", filepath.Join(dst, "dir", "sub")))
	must(os.Chmod(filepath.Join(dst, "sticky"), 0o700))
	importTree(t, out, "--root", dst)
	compareTrees(t, want, snapshot(t, dst))
}

func TestImportTreeGzip(t *testing.T) {
	src := buildTree(t)
	out, _ := exportTree(t, "--root", src)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(out)
	zw.Close()
	want := snapshot(t, src)

	dst := filepath.Join(t.TempDir(), "stdin")
	importTree(t, gz.Bytes(), "--root", dst)
	compareTrees(t, want, snapshot(t, dst))

	file := filepath.Join(t.TempDir(), "tree.tar.gz")
	if err := os.WriteFile(file, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dst = filepath.Join(t.TempDir(), "file")
	importTree(t, nil, "--root", dst, "--file", file)
	compareTrees(t, want, snapshot(t, dst))
}

func TestImportTreeRefusesEscapes(t *testing.T) {
	type ent struct {
		name, link string
		typ        byte
	}
	cases := map[string][]ent{
		"../evil":        {{name: "../evil", typ: tar.TypeReg}},
		"/abs-evil":      {{name: "/abs-evil", typ: tar.TypeReg}},
		"./a/../../evil": {{name: "./a/../../evil", typ: tar.TypeReg}},
		"./hl":           {{name: "./hl", link: "../evil", typ: tar.TypeLink}},
		"./esc/evil": {
			{name: "./esc", link: "OUTSIDE", typ: tar.TypeSymlink},
			{name: "./esc/evil", typ: tar.TypeReg},
		},
	}
	for bad, ents := range cases {
		outside := t.TempDir()
		dst := filepath.Join(outside, "dst")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range ents {
			link := strings.Replace(e.link, "OUTSIDE", outside, 1)
			hdr := &tar.Header{Name: e.name, Linkname: link, Typeflag: e.typ, Mode: 0o644,
				Uid: os.Geteuid(), Gid: os.Getegid(), Format: tar.FormatPAX}
			if e.typ == tar.TypeReg {
				hdr.Size = 4
			}
			tw.WriteHeader(hdr)
			if e.typ == tar.TypeReg {
				tw.Write([]byte("evil"))
			}
		}
		tw.Close()
		var errOut bytes.Buffer
		code := importTreeCommand([]string{"--root", dst}, &buf, &errOut)
		if code != 1 || !strings.Contains(errOut.String(), bad) {
			t.Errorf("%s: exit %d, stderr %q; want 1 naming the entry", bad, code, errOut.String())
		}
		for _, p := range []string{filepath.Join(outside, "evil"), "/abs-evil"} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s: %s was written", bad, p)
			}
		}
	}
}

func TestDiskFindsSerial(t *testing.T) {
	fake := t.TempDir()
	for name, serial := range map[string]string{"vda": "vbake-root\n", "vdb": "  vbake-state \n", "loop0": ""} {
		dir := filepath.Join(fake, "block", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if serial != "" {
			if err := os.WriteFile(filepath.Join(dir, "serial"), []byte(serial), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := sysfsRoot
	sysfsRoot = fake
	defer func() { sysfsRoot = old }()

	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"vbake-state"}, 0, "/dev/vdb\n"},
		{[]string{"vbake-root"}, 0, "/dev/vda\n"},
		{[]string{"nope"}, 1, ""},
		{nil, 2, ""},
		{[]string{"a", "b"}, 2, ""},
	} {
		var out, errOut bytes.Buffer
		code := diskCommand(c.args, &out, &errOut)
		if code != c.code || out.String() != c.out {
			t.Errorf("disk %q: exit %d, stdout %q, stderr %q; want %d, %q", c.args, code, out.String(),
				errOut.String(), c.code, c.out)
		}
	}
}

// TestTreeCommandLine runs the subcommands through run() in a child process, as EXEC does.
func TestTreeCommandLine(t *testing.T) {
	src := buildTree(t)
	inProcess, _ := exportTree(t, "--root", src)
	agent := func(stdin []byte, args ...string) ([]byte, string, int) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), roleEnv+"=agent")
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		return stdout.Bytes(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	out, stderr, code := agent(nil, "export-tree", "--root", src)
	if code != 0 || !bytes.Equal(out, inProcess) {
		t.Fatalf("export-tree: exit %d, %d bytes (in process %d): %s", code, len(out), len(inProcess), stderr)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, stderr, code := agent(out, "import-tree", "--root", dst); code != 0 {
		t.Fatalf("import-tree: exit %d: %s", code, stderr)
	}
	compareTrees(t, snapshot(t, src), snapshot(t, dst))
	if _, stderr, code := agent(nil, "export-tree", "--root", filepath.Join(src, "missing")); code != 1 {
		t.Errorf("export-tree of a missing root: exit %d: %s", code, stderr)
	}
	if _, stderr, code := agent([]byte("not a tar, but long enough to be read as a header block"),
		"import-tree", "--root", t.TempDir()); code != 1 {
		t.Errorf("import-tree of garbage: exit %d: %s", code, stderr)
	}
	if _, _, code := agent(nil, "disk"); code != 2 {
		t.Errorf("disk without a serial: exit %d", code)
	}
}
