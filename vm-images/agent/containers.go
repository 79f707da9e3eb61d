package main

// What belongs to docker's containers (as opposed to its images) in a data root, so that an
// export can leave it out: a rootfs gets images and volumes, not the build host's containers.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

var (
	dockerLayerID   = regexp.MustCompile(`^[0-9a-f]{64}(-init)?$`)
	overlay2LinkID  = regexp.MustCompile(`^[A-Z0-9]{26}$`)
	dockerDriverDir = map[string]string{"overlay2": "overlay2", "vfs": "vfs/dir"}
)

// dockerContainerPaths returns the paths (relative to root) of docker's containers for the
// storage driver: their configs, the layerdb mount records, each container's writable layer and
// its -init layer, and for overlay2 their short links in overlay2/l/. A store in which no
// container ever existed, or whose mounts directory is empty or missing, is no error; records
// without a mount-id (a half-created container) are skipped. Only what the records name is
// returned, and only names of the shape docker writes.
func dockerContainerPaths(root, driver string) (paths []string, containers int, err error) {
	layers, ok := dockerDriverDir[driver]
	if !ok {
		return nil, 0, fmt.Errorf("unknown docker storage driver %q (overlay2 or vfs)", driver)
	}
	mounts := path.Join("image", driver, "layerdb", "mounts")
	paths = []string{"containers", mounts}
	entries, err := os.ReadDir(filepath.Join(root, mounts))
	if errors.Is(err, fs.ErrNotExist) {
		return paths, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, m := range entries {
		if !m.IsDir() {
			continue
		}
		counted := false
		for _, f := range []string{"mount-id", "init-id"} {
			id, err := readID(filepath.Join(root, mounts, m.Name(), f))
			if err != nil {
				return nil, 0, err
			}
			if id == "" || !dockerLayerID.MatchString(id) {
				continue
			}
			if !counted && f == "mount-id" {
				containers++
				counted = true
			}
			paths = append(paths, path.Join(layers, id))
			if driver != "overlay2" {
				continue
			}
			link, err := readID(filepath.Join(root, "overlay2", id, "link"))
			if err != nil {
				return nil, 0, err
			}
			if overlay2LinkID.MatchString(link) {
				paths = append(paths, path.Join("overlay2", "l", link))
			}
		}
	}
	sort.Strings(paths)
	return paths, containers, nil
}

// readID reads a small id file; a missing one is "".
func readID(p string) (string, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
