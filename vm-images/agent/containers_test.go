package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// dockerStore makes a data root with two images' layers and the given containers: name ->
// mount-id, and the -init layer when init is true. Empty mount-id: a half-created container.
func dockerStore(t *testing.T, driver string, containers map[string]string, init bool) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if content != "" || !strings.HasSuffix(rel, "/") {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	layerDir := map[string]string{"overlay2": "overlay2/", "vfs": "vfs/dir/"}[driver]
	image := strings.Repeat("a", 64)
	mk(layerDir+image+"/diff/bin/sh", "sh")
	mk("image/"+driver+"/layerdb/sha256/"+strings.Repeat("b", 64)+"/cache-id", image)
	if driver == "overlay2" {
		mk("overlay2/"+image+"/link", "IMAGELINKAAAAAAAAAAAAAAAAA")
		mk("overlay2/l/IMAGELINKAAAAAAAAAAAAAAAAA", "")
	}
	mk("image/"+driver+"/layerdb/mounts/", "")
	for name, id := range containers {
		mk("containers/"+name+"/config.v2.json", "{}")
		if id == "" {
			mk("image/"+driver+"/layerdb/mounts/"+name+"/parent", "sha256:x")
			continue
		}
		mk("image/"+driver+"/layerdb/mounts/"+name+"/mount-id", id)
		mk(layerDir+id+"/diff/tmp/x", "written by the container")
		link := strings.ToUpper(id[:26])
		if driver == "overlay2" {
			mk("overlay2/"+id+"/link", link)
			mk("overlay2/l/"+link, "")
		}
		if init {
			mk("image/"+driver+"/layerdb/mounts/"+name+"/init-id", id+"-init\n")
			mk(layerDir+id+"-init/diff/etc/hosts", "")
			if driver == "overlay2" {
				mk("overlay2/"+id+"-init/link", "INIT"+link[4:])
				mk("overlay2/l/INIT"+link[4:], "")
			}
		}
	}
	return root
}

func TestDockerContainerPathsWithAnEmptyMountsDirectory(t *testing.T) {
	// The store after 'run --rm': the mounts directory exists and is empty. The shell loop this
	// replaces failed here ("cannot list container layers: exit code 1").
	root := dockerStore(t, "overlay2", nil, false)
	paths, n, err := dockerContainerPaths(root, "overlay2")
	if err != nil || n != 0 {
		t.Fatalf("err %v, %d containers", err, n)
	}
	want := []string{"containers", "image/overlay2/layerdb/mounts"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	if err := os.RemoveAll(filepath.Join(root, "image/overlay2/layerdb/mounts")); err != nil {
		t.Fatal(err)
	}
	if _, n, err := dockerContainerPaths(root, "overlay2"); err != nil || n != 0 {
		t.Errorf("without a mounts directory: err %v, %d containers", err, n)
	}
}

func TestDockerContainerPathsOverlay2(t *testing.T) {
	id := strings.Repeat("c", 64)
	root := dockerStore(t, "overlay2", map[string]string{"ctr1": id, "half": ""}, true)
	paths, n, err := dockerContainerPaths(root, "overlay2")
	if err != nil || n != 1 {
		t.Fatalf("err %v, %d containers", err, n)
	}
	link := strings.ToUpper(id[:26])
	want := []string{"containers", "image/overlay2/layerdb/mounts", "overlay2/" + id, "overlay2/" + id + "-init",
		"overlay2/l/" + link, "overlay2/l/INIT" + link[4:]}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths\n%v, want\n%v", paths, want)
	}
}

func TestDockerContainerPathsVfsAndOddRecords(t *testing.T) {
	id := strings.Repeat("d", 64)
	root := dockerStore(t, "vfs", map[string]string{"ctr": id}, true)
	// A record naming something that is no layer id is not followed out of the layer directory.
	bad := filepath.Join(root, "image/vfs/layerdb/mounts/evil")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "mount-id"), []byte("../../etc"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths, n, err := dockerContainerPaths(root, "vfs")
	if err != nil || n != 1 {
		t.Fatalf("err %v, %d containers", err, n)
	}
	want := []string{"containers", "image/vfs/layerdb/mounts", "vfs/dir/" + id, "vfs/dir/" + id + "-init"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("paths %v, want %v", paths, want)
	}
	if _, _, err := dockerContainerPaths(root, "btrfs"); err == nil {
		t.Errorf("unknown driver accepted")
	}
}

func TestExportTreeLeavesDockerContainersOut(t *testing.T) {
	id := strings.Repeat("e", 64)
	root := dockerStore(t, "overlay2", map[string]string{"ctr": id}, true)
	var out, errOut bytes.Buffer
	if code := exportTreeCommand([]string{"--root", root, "--docker-containers", "overlay2"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "left out 1 container(s)") {
		t.Errorf("stderr %q", errOut.String())
	}
	names, _ := readTar(t, out.Bytes())
	joined := strings.Join(names, "\n")
	for _, gone := range []string{"./containers/", id, "layerdb/mounts", "INIT"} {
		if strings.Contains(joined, gone) {
			t.Errorf("%s exported:\n%s", gone, joined)
		}
	}
	for _, kept := range []string{"./overlay2/" + strings.Repeat("a", 64) + "/diff/bin/sh",
		"./overlay2/l/IMAGELINKAAAAAAAAAAAAAAAAA"} {
		if !strings.Contains(joined, kept) {
			t.Errorf("%s missing:\n%s", kept, joined)
		}
	}

	// An empty store of containers exports too, and says nothing about containers.
	empty := dockerStore(t, "overlay2", nil, false)
	out.Reset()
	errOut.Reset()
	if code := exportTreeCommand([]string{"--root", empty, "--docker-containers", "overlay2"}, &out, &errOut); code != 0 {
		t.Fatalf("empty mounts: exit %d: %s", code, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr %q", errOut.String())
	}
}
