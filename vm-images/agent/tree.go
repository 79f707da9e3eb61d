package main

// The export-tree and import-tree subcommands move a container engine's data root (overlay
// layers with their whiteouts, capabilities and hardlinks) in and out of the guest as a tar. The
// host runs them through EXEC; the tar is what ends up as /var/lib/docker or
// /var/lib/containers/storage in an embedded rootfs, so the output must be faithful and
// byte-for-byte reproducible.

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	xattrPAXPrefix = "SCHILY.xattr."
	treeBufferSize = 1 << 20
	atFDCWD        = -0x64 // AT_FDCWD; the syscall package keeps it unexported
	atNoFollow     = 0x100 // AT_SYMLINK_NOFOLLOW
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// exportTreeCommand is `vbake-agent export-tree`: 0 when the whole tar went to stdout, 1 on any
// error (the host then discards the partial output), 2 on bad usage.
func exportTreeCommand(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: vbake-agent export-tree --root DIR [--exclude REL]... [--docker-containers DRIVER] " +
		"[--skip-xattr NAME]... [--mtime-clamp EPOCH_SECONDS] [--stats]"
	flags := flag.NewFlagSet("export-tree", flag.ContinueOnError)
	flags.SetOutput(stderr)
	root := flags.String("root", "", "directory to export")
	var excludes stringList
	flags.Var(&excludes, "exclude", "path relative to --root to leave out with its subtree (repeatable)")
	var skipXattrs stringList
	flags.Var(&skipXattrs, "skip-xattr", "leave this extended attribute out (repeatable; e.g. the host's security.selinux)")
	dockerContainers := flags.String("docker-containers", "",
		"leave out docker's containers (configs, writable layers and their links) for this storage driver")
	clamp := flags.Int64("mtime-clamp", -1, "write no mtime later than this (seconds since the epoch)")
	stats := flags.Bool("stats", false, "print {\"entries\":N,\"files\":N,\"bytes\":N} on stderr at the end")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *root == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	e := &exporter{
		exclude: map[string]bool{},
		clamp:   *clamp,
		links:   map[fileID]string{},
		warn:    stderr,
		buf:     make([]byte, treeBufferSize),
		skipX:   map[string]bool{},
	}
	for _, x := range skipXattrs {
		e.skipX[x] = true
	}
	for _, x := range excludes {
		rel, err := cleanRel(x)
		if err != nil || rel == "" {
			fmt.Fprintf(stderr, "export-tree: --exclude %q: not a path below --root\n", x)
			return 2
		}
		e.exclude[rel] = true
	}
	if *dockerContainers != "" {
		paths, n, err := dockerContainerPaths(*root, *dockerContainers)
		if err != nil {
			fmt.Fprintf(stderr, "export-tree: cannot list docker's containers: %v\n", err)
			return 1
		}
		for _, p := range paths {
			e.exclude[p] = true
		}
		if n > 0 {
			fmt.Fprintf(stderr, "export-tree: left out %d container(s)\n", n)
		}
	}
	if err := e.export(*root, stdout); err != nil {
		fmt.Fprintf(stderr, "export-tree: %v\n", err)
		return 1
	}
	if *stats {
		fmt.Fprintf(stderr, "{\"entries\":%d,\"files\":%d,\"bytes\":%d}\n", e.entries, e.files, e.bytes)
	}
	return 0
}

// fileID identifies an inode, for hardlink detection.
type fileID struct{ dev, ino uint64 }

type exporter struct {
	root    string
	exclude map[string]bool   // cleaned relative paths
	clamp   int64             // negative: no clamp
	links   map[fileID]string // inode -> tar name of its first path
	rootDev uint64            // mounts below the root (a container's merged dir) are not descended into
	skipX   map[string]bool   // extended attributes left out
	warn    io.Writer
	buf     []byte
	tw      *tar.Writer

	entries, files, bytes int64
}

func (e *exporter) export(root string, out io.Writer) error {
	// A symlinked root (/var/lib/docker -> /data/docker) exports what it points to.
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	e.root = resolved
	bw := bufio.NewWriterSize(out, treeBufferSize)
	e.tw = tar.NewWriter(bw)
	if err := e.walk(""); err != nil {
		return err
	}
	if err := e.tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// walk writes rel and, for a directory, its contents in bytewise name order (depth first).
func (e *exporter) walk(rel string) error {
	full := filepath.Join(e.root, rel)
	var st syscall.Stat_t
	if err := syscall.Lstat(full, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: full, Err: err}
	}
	if rel == "" && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("%s is not a directory", full)
	}
	if rel == "" {
		e.rootDev = uint64(st.Dev)
	}
	if err := e.entry(rel, full, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil
	}
	if uint64(st.Dev) != e.rootDev {
		fmt.Fprintf(e.warn, "export-tree: %s is a mount point; its content is not exported\n", full)
		return nil
	}
	d, err := os.Open(full)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		child := name
		if rel != "" {
			child = rel + "/" + name
		}
		if e.exclude[child] {
			continue
		}
		if err := e.walk(child); err != nil {
			return err
		}
	}
	return nil
}

// entry writes the header (and content) of one path.
func (e *exporter) entry(rel, full string, st *syscall.Stat_t) error {
	mtime := st.Mtim.Sec
	if e.clamp >= 0 && mtime > e.clamp {
		mtime = e.clamp
	}
	hdr := &tar.Header{
		Name:    "./" + rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(mtime, 0),
		Format:  tar.FormatPAX,
	}
	kind := st.Mode & syscall.S_IFMT
	if kind == syscall.S_IFSOCK {
		fmt.Fprintf(e.warn, "export-tree: warning: skipping socket %s\n", hdr.Name)
		return nil
	}
	id := fileID{uint64(st.Dev), uint64(st.Ino)}
	if kind != syscall.S_IFDIR && st.Nlink > 1 {
		if first, ok := e.links[id]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			e.entries++
			return e.tw.WriteHeader(hdr)
		}
		e.links[id] = hdr.Name
	}
	switch kind {
	case syscall.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if rel != "" {
			hdr.Name += "/"
		}
	case syscall.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case syscall.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case syscall.S_IFCHR, syscall.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if kind == syscall.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		rdev := uint64(st.Rdev)
		hdr.Devmajor = int64(devMajor(rdev))
		hdr.Devminor = int64(devMinor(rdev))
	case syscall.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("%s: unsupported file type %#o", full, kind)
	}
	xattrs, err := readXattrs(full, e.buf)
	if err != nil {
		return err
	}
	for name, value := range xattrs {
		if e.skipX[name] {
			continue
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPAXPrefix+name] = value
	}
	if err := e.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %v", full, err)
	}
	e.entries++
	if hdr.Typeflag == tar.TypeReg {
		if err := e.content(full, st); err != nil {
			return err
		}
		e.files++
		e.bytes += st.Size
	}
	return nil
}

// content copies exactly st.Size bytes of a regular file, failing if the file changed under us
// (a short or long file would make the tar wrong, not just stale).
func (e *exporter) content(full string, st *syscall.Stat_t) error {
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var fst syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &fst); err != nil {
		return &fs.PathError{Op: "fstat", Path: full, Err: err}
	}
	if fst.Dev != st.Dev || fst.Ino != st.Ino {
		return fmt.Errorf("%s: replaced during export", full)
	}
	n, err := io.CopyBuffer(e.tw, io.LimitReader(f, st.Size), e.buf)
	if err != nil {
		return fmt.Errorf("%s: %v", full, err)
	}
	if n != st.Size {
		return fmt.Errorf("%s: shrank during export (%d of %d bytes)", full, n, st.Size)
	}
	if m, _ := f.Read(e.buf[:1]); m > 0 {
		return fmt.Errorf("%s: grew during export", full)
	}
	return nil
}

// importTreeCommand is `vbake-agent import-tree`: 0 when every entry was extracted, 1 on any
// error, 2 on bad usage.
func importTreeCommand(args []string, stdin io.Reader, stderr io.Writer) int {
	const usage = "usage: vbake-agent import-tree --root DIR [--file PATH] [--stats]"
	flags := flag.NewFlagSet("import-tree", flag.ContinueOnError)
	flags.SetOutput(stderr)
	root := flags.String("root", "", "directory to extract into (created if missing)")
	file := flags.String("file", "", "read the tar (plain or gzip) from this file instead of stdin")
	stats := flags.Bool("stats", false, "print {\"entries\":N} on stderr at the end")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *root == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	in := stdin
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			fmt.Fprintf(stderr, "import-tree: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	im := &importer{buf: make([]byte, treeBufferSize)}
	if err := im.run(*root, in); err != nil {
		fmt.Fprintf(stderr, "import-tree: %v\n", err)
		return 1
	}
	if *stats {
		fmt.Fprintf(stderr, "{\"entries\":%d}\n", im.entries)
	}
	return 0
}

type importer struct {
	root    string
	known   map[string]bool // relative paths checked or made to be real directories ("" is the root)
	dirs    []dirMeta       // directories whose mode and mtime are set last
	dirAt   map[string]int  // index into dirs
	buf     []byte
	entries int64
}

type dirMeta struct {
	rel  string
	hdr  *tar.Header
	gone bool // replaced by a later entry
}

func (im *importer) run(root string, in io.Reader) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	resolved, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	im.root = resolved
	im.known = map[string]bool{"": true}
	im.dirAt = map[string]int{}

	br := bufio.NewReaderSize(in, treeBufferSize)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %v", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := im.entry(hdr, tr); err != nil {
			return fmt.Errorf("%s: %v", hdr.Name, err)
		}
		im.entries++
	}
	// Directories last, deepest first: creating their contents changed their mtimes, and a
	// read-only mode must not get in the way of extraction.
	for i := len(im.dirs) - 1; i >= 0; i-- {
		d := im.dirs[i]
		if d.gone {
			continue
		}
		full := im.path(d.rel)
		if fi, err := os.Lstat(full); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: no longer a directory", d.hdr.Name)
		}
		if err := syscall.Chmod(full, uint32(d.hdr.Mode&0o7777)); err != nil {
			return &fs.PathError{Op: "chmod", Path: full, Err: err}
		}
		if err := lutimes(full, d.hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

func (im *importer) path(rel string) string {
	if rel == "" {
		return im.root
	}
	return im.root + "/" + rel
}

// entry extracts one tar entry.
func (im *importer) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanRel(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" && hdr.Typeflag != tar.TypeDir {
		return errors.New("the root entry must be a directory")
	}
	if err := im.parents(rel); err != nil {
		return err
	}
	full := im.path(rel)
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(full)
		if err == nil && !fi.IsDir() {
			if err := im.remove(rel); err != nil {
				return err
			}
		}
		if err != nil || !fi.IsDir() {
			if err := os.Mkdir(full, 0o700); err != nil {
				return err
			}
		}
		im.known[rel] = true
		if err := im.owner(full, hdr); err != nil {
			return err
		}
		if err := setXattrs(full, hdr); err != nil {
			return err
		}
		if i, ok := im.dirAt[rel]; ok {
			im.dirs[i].hdr = hdr
		} else {
			im.dirAt[rel] = len(im.dirs)
			im.dirs = append(im.dirs, dirMeta{rel: rel, hdr: hdr})
		}
		return nil
	case tar.TypeReg, tar.TypeGNUSparse:
		if err := im.remove(rel); err != nil {
			return err
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		_, err = io.CopyBuffer(f, r, im.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := im.remove(rel); err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, full); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := cleanRel(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("link target: %v", err)
		}
		if target == rel {
			return nil
		}
		if err := im.parents(target); err != nil {
			return fmt.Errorf("link target: %v", err)
		}
		if err := im.remove(rel); err != nil {
			return err
		}
		// Same inode as the target: its metadata came with the target's entry.
		return os.Link(im.path(target), full)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := im.remove(rel); err != nil {
			return err
		}
		kind := map[byte]uint32{tar.TypeChar: syscall.S_IFCHR, tar.TypeBlock: syscall.S_IFBLK,
			tar.TypeFifo: syscall.S_IFIFO}[hdr.Typeflag]
		dev := mkdev(uint64(hdr.Devmajor), uint64(hdr.Devminor))
		if err := syscall.Mknod(full, kind|0o600, int(dev)); err != nil {
			return &fs.PathError{Op: "mknod", Path: full, Err: err}
		}
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	// chown before chmod (chown clears setuid/setgid) and before the xattrs (it also drops
	// security.capability), mtime last.
	if err := im.owner(full, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := syscall.Chmod(full, mode); err != nil {
			return &fs.PathError{Op: "chmod", Path: full, Err: err}
		}
	}
	if err := setXattrs(full, hdr); err != nil {
		return err
	}
	return lutimes(full, hdr.ModTime)
}

func (im *importer) owner(full string, hdr *tar.Header) error {
	if err := syscall.Lchown(full, hdr.Uid, hdr.Gid); err != nil {
		return &fs.PathError{Op: "lchown", Path: full, Err: err}
	}
	return nil
}

// parents makes sure every parent of rel is a real directory below the root, creating missing
// ones. A symlink on the way is refused: following it could write outside the root.
func (im *importer) parents(rel string) error {
	return makeParents(im.path, im.known, rel)
}

// errBelowSymlink: a path whose parent is a symlink, which nothing is written through.
var errBelowSymlink = errors.New("is a symlink; nothing is written through one")

// makeParents makes every parent directory of rel (below the root that path maps "" to) a real
// directory, creating missing ones (0755). known caches the relative directories checked.
func makeParents(path func(string) string, known map[string]bool, rel string) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		p := rel[:i]
		if known[p] {
			continue
		}
		full := path(p)
		fi, err := os.Lstat(full)
		switch {
		case err == nil && fi.IsDir():
		case err == nil && fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("parent ./%s %w", p, errBelowSymlink)
		case err == nil:
			return fmt.Errorf("parent ./%s is not a directory", p)
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(full, 0o755); err != nil {
				return err
			}
		default:
			return err
		}
		known[p] = true
	}
	return nil
}

// remove deletes whatever is at rel so that a new entry can take its place.
func (im *importer) remove(rel string) error {
	full := im.path(rel)
	fi, err := os.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(full)
	}
	if err := os.RemoveAll(full); err != nil {
		return err
	}
	prefix := rel + "/"
	for p := range im.known {
		if p == rel || strings.HasPrefix(p, prefix) {
			delete(im.known, p)
		}
	}
	for i := range im.dirs {
		if p := im.dirs[i].rel; p == rel || strings.HasPrefix(p, prefix) {
			im.dirs[i].gone = true
			delete(im.dirAt, p)
		}
	}
	return nil
}

// cleanRel turns a tar name or an --exclude into a clean path relative to the root ("" for the
// root itself), refusing absolute paths and paths that climb out with "..".
func cleanRel(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty path")
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("absolute path %q refused", name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q escapes the root, refused", name)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// devMajor and devMinor decode a Linux dev_t (the inverse of mkdev).
func devMajor(dev uint64) uint64 { return (dev>>8)&0xfff | (dev>>32)&^0xfff }
func devMinor(dev uint64) uint64 { return dev&0xff | (dev>>12)&^0xff }

// readXattrs returns every extended attribute of path itself (not of a symlink's target).
func readXattrs(path string, buf []byte) (map[string]string, error) {
	list, err := xattrCall(syscall.SYS_LLISTXATTR, path, "", buf)
	if err == syscall.ENOTSUP {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "llistxattr", Path: path, Err: err}
	}
	if len(list) == 0 {
		return nil, nil
	}
	names := strings.Split(strings.TrimSuffix(string(list), "\x00"), "\x00")
	attrs := make(map[string]string, len(names))
	for _, name := range names {
		value, err := xattrCall(syscall.SYS_LGETXATTR, path, name, buf)
		if err == syscall.ENODATA {
			continue // removed since the listing
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
		}
		attrs[name] = string(value)
	}
	return attrs, nil
}

// xattrCall runs llistxattr (name "") or lgetxattr into buf, growing it past ERANGE, and
// returns a copy of the result.
func xattrCall(trap uintptr, path, name string, buf []byte) ([]byte, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return nil, err
	}
	var n *byte
	if trap == syscall.SYS_LGETXATTR {
		if n, err = syscall.BytePtrFromString(name); err != nil {
			return nil, err
		}
	}
	for {
		var r uintptr
		var errno syscall.Errno
		if trap == syscall.SYS_LGETXATTR {
			r, _, errno = syscall.Syscall6(trap, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(n)),
				uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		} else {
			r, _, errno = syscall.Syscall(trap, uintptr(unsafe.Pointer(p)),
				uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		}
		if errno == syscall.ERANGE {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		return append([]byte(nil), buf[:r]...), nil
	}
}

// setXattrs applies the SCHILY.xattr.* records of hdr to path itself (lsetxattr).
func setXattrs(path string, hdr *tar.Header) error {
	var names []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPAXPrefix) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		name := strings.TrimPrefix(k, xattrPAXPrefix)
		if err := lsetxattr(path, name, []byte(hdr.PAXRecords[k])); err != nil {
			return &fs.PathError{Op: "lsetxattr " + name, Path: path, Err: err}
		}
	}
	return nil
}

func lsetxattr(path, name string, value []byte) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := syscall.BytePtrFromString(name)
	if err != nil {
		return err
	}
	var v *byte
	if len(value) > 0 {
		v = &value[0]
	}
	_, _, errno := syscall.Syscall6(syscall.SYS_LSETXATTR, uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(v)), uintptr(len(value)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// lutimes sets atime and mtime of path itself (utimensat with AT_SYMLINK_NOFOLLOW).
func lutimes(path string, mtime time.Time) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	ts := syscall.Timespec{Sec: mtime.Unix(), Nsec: int64(mtime.Nanosecond())}
	times := [2]syscall.Timespec{ts, ts}
	dirfd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&times[0])), atNoFollow, 0, 0)
	if errno != 0 {
		return &fs.PathError{Op: "utimensat", Path: path, Err: errno}
	}
	return nil
}
