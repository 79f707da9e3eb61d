package main

// merge-tree runs on the host, not in the guest: it copies a container's -v directory (a tar
// from the guest's export-tree) back over the user's directory. Go, because Java cannot make a
// file whose name is not valid UTF-8, and a container may write such names.
//
// Rules: new and changed entries are written, nothing else on the host is touched; every file,
// link and FIFO is made under a fresh name in its directory and renamed into place, so a reader
// sees the old or the new file, never half of one, and no name the container chose can get in the
// way; nothing is written through a symlink. A non-root user cannot make devices, give files to
// other users or keep setuid/setgid bits (and should not get them from a container): those are
// skipped or dropped and named in one warning. As root everything is kept, as with a bind mount.

import (
	"archive/tar"
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// mergeTreeCommand is `vbake-agent merge-tree --root DIR`: 0 when every entry was merged (some
// perhaps without what a non-root user cannot keep, as the warning says), 1 on an error, 2 on
// bad usage.
func mergeTreeCommand(args []string, stdin io.Reader, stderr io.Writer) int {
	const usage = "usage: vbake-agent merge-tree --root DIR [--as-root|--as-user]"
	flags := flag.NewFlagSet("merge-tree", flag.ContinueOnError)
	flags.SetOutput(stderr)
	root := flags.String("root", "", "directory to merge into (created if missing)")
	asUser := flags.Bool("as-user", false, "keep only what an unprivileged user can (the default when not root)")
	asRoot := flags.Bool("as-root", false, "keep owners, devices and setuid bits (the default as root)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *root == "" || flags.NArg() > 0 || (*asUser && *asRoot) {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	m := &merger{privileged: os.Geteuid() == 0, buf: make([]byte, treeBufferSize), dropped: map[string][]string{}}
	if *asUser {
		m.privileged = false
	}
	if *asRoot {
		m.privileged = true
	}
	err := m.run(*root, stdin)
	if w := m.warning(); w != "" {
		fmt.Fprintln(stderr, w)
	}
	if err != nil {
		fmt.Fprintf(stderr, "merge-tree: %v\n", err)
		return 1
	}
	return 0
}

type merger struct {
	root       string
	privileged bool
	known      map[string]bool // relative dirs checked to be real directories ("" is the root)
	dirs       []*tar.Header   // directories whose mode and mtime are set last
	buf        []byte
	dropped    map[string][]string // what could not be kept -> entry names
	written    int
}

func (m *merger) drop(why, name string) {
	m.dropped[why] = append(m.dropped[why], strconv.Quote(strings.TrimPrefix(name, "./")))
}

// warning names everything not kept, in one line, or "".
func (m *merger) warning() string {
	if len(m.dropped) == 0 {
		return ""
	}
	var whys []string
	for why := range m.dropped {
		whys = append(whys, why)
	}
	sort.Strings(whys)
	var parts []string
	for _, why := range whys {
		names := m.dropped[why]
		if len(names) > 10 {
			names = append(names[:10:10], fmt.Sprintf("and %d more", len(m.dropped[why])-10))
		}
		parts = append(parts, why+": "+strings.Join(names, ", "))
	}
	return "merge-tree: warning: not kept (" + strings.Join(parts, "; ") + ")"
}

func (m *merger) run(root string, in io.Reader) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	fi, err := os.Lstat(root)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", root)
	}
	m.root = root
	m.known = map[string]bool{"": true}
	tr := tar.NewReader(bufio.NewReaderSize(in, treeBufferSize))
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
		if err := m.entry(hdr, tr); err != nil {
			return fmt.Errorf("%s: %v", strings.TrimPrefix(hdr.Name, "./"), err)
		}
	}
	for i := len(m.dirs) - 1; i >= 0; i-- {
		hdr := m.dirs[i]
		rel, _ := cleanRel(hdr.Name)
		full := m.path(rel)
		if fi, err := os.Lstat(full); err != nil || !fi.IsDir() {
			continue // replaced by a later entry
		}
		if err := syscall.Chmod(full, m.mode(hdr)|0o700); err != nil {
			return &fs.PathError{Op: "chmod", Path: full, Err: err}
		}
		if err := lutimes(full, hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

func (m *merger) path(rel string) string {
	if rel == "" {
		return m.root
	}
	return m.root + "/" + rel
}

// mode is the entry's permission bits, without setuid/setgid for an unprivileged user.
func (m *merger) mode(hdr *tar.Header) uint32 {
	mode := uint32(hdr.Mode & 0o7777)
	if !m.privileged && mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 && hdr.Typeflag != tar.TypeDir {
		m.drop("setuid/setgid bits", hdr.Name)
		mode &^= syscall.S_ISUID | syscall.S_ISGID
	}
	return mode
}

func (m *merger) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanRel(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag == tar.TypeDir {
			m.dirs = append(m.dirs, hdr)
		}
		return nil
	}
	if err := m.parents(rel); err != nil {
		if errors.Is(err, errBelowSymlink) {
			m.drop("entries below a symlink on the host", hdr.Name)
			return nil
		}
		return err
	}
	full := m.path(rel)
	existing, err := os.Lstat(full)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	exists := err == nil
	if hdr.Typeflag == tar.TypeDir {
		if exists && !existing.IsDir() {
			// The container made a directory where the host has a file or link.
			if err := os.Remove(full); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := os.Mkdir(full, 0o700); err != nil {
				return err
			}
		}
		m.known[rel] = true
		m.dirs = append(m.dirs, hdr)
		return m.attributes(full, hdr, true)
	}
	if exists && existing.IsDir() {
		m.drop("entries where the host has a directory", hdr.Name)
		return nil
	}
	dir, base := m.path(parentOf(rel)), rel[strings.LastIndexByte(rel, '/')+1:]
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		return m.replace(dir, base, hdr, func(tmp string) error {
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			_, err = io.CopyBuffer(f, r, m.buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		})
	case tar.TypeSymlink:
		return m.replace(dir, base, hdr, func(tmp string) error { return os.Symlink(hdr.Linkname, tmp) })
	case tar.TypeLink:
		target, err := cleanRel(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("link target: %v", err)
		}
		if target == rel {
			return nil
		}
		if err := m.parents(target); err != nil {
			return fmt.Errorf("link target: %v", err)
		}
		if fi, err := os.Lstat(m.path(target)); err != nil || fi.IsDir() {
			m.drop("hardlinks to entries not kept", hdr.Name)
			return nil
		}
		// The same inode as the target, whose entry came first and carried the metadata.
		return m.replace(dir, base, nil, func(tmp string) error { return os.Link(m.path(target), tmp) })
	case tar.TypeFifo:
		return m.replace(dir, base, hdr, func(tmp string) error { return syscall.Mkfifo(tmp, 0o600) })
	case tar.TypeChar, tar.TypeBlock:
		if !m.privileged {
			m.drop("device nodes", hdr.Name)
			return nil
		}
		kind := uint32(syscall.S_IFCHR)
		if hdr.Typeflag == tar.TypeBlock {
			kind = syscall.S_IFBLK
		}
		dev := mkdev(uint64(hdr.Devmajor), uint64(hdr.Devminor))
		return m.replace(dir, base, hdr, func(tmp string) error { return syscall.Mknod(tmp, kind|0o600, int(dev)) })
	default:
		m.drop(fmt.Sprintf("entries of type %q", hdr.Typeflag), hdr.Name)
		return nil
	}
}

// replace makes the new entry under a fresh name in dir (make creates it there), gives it the
// header's attributes, and renames it over base: atomic, whatever names already exist in dir.
func (m *merger) replace(dir, base string, hdr *tar.Header, make func(tmp string) error) error {
	var tmp string
	for {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		tmp = dir + "/.vbake-merge-" + hex.EncodeToString(b[:])
		err := make(tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
		break
	}
	if hdr != nil {
		if err := m.attributes(tmp, hdr, false); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, dir+"/"+base); err != nil {
		os.Remove(tmp)
		return err
	}
	m.written++
	return nil
}

// attributes sets owner (privileged only), mode, xattrs that can be set, and mtime.
func (m *merger) attributes(full string, hdr *tar.Header, isDir bool) error {
	if m.privileged {
		if err := syscall.Lchown(full, hdr.Uid, hdr.Gid); err != nil {
			return &fs.PathError{Op: "lchown", Path: full, Err: err}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink && !isDir {
		if err := syscall.Chmod(full, m.mode(hdr)); err != nil {
			return &fs.PathError{Op: "chmod", Path: full, Err: err}
		}
	}
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, xattrPAXPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, xattrPAXPrefix)
		if err := lsetxattr(full, name, []byte(v)); err != nil {
			m.drop("extended attributes", hdr.Name+" ("+name+")")
		}
	}
	if isDir {
		return nil // set last, in run
	}
	return lutimes(full, hdr.ModTime)
}

// parents makes sure every parent of rel is a real directory below the root, creating missing
// ones; a symlink on the way (the host's or the container's) is refused: following it could
// write anywhere.
func (m *merger) parents(rel string) error {
	return makeParents(m.path, m.known, rel)
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}
