package org.vbake.runtime.podman;

import java.nio.charset.StandardCharsets;
import org.vbake.storage.FsTree;
import org.vbake.storage.NotMirroredException;

/** Files of the store's own (metadata, locks) in a tree being written. */
final class TreeFiles {

    private TreeFiles() {
    }

    static void file(FsTree root, String path, int mode, byte[] content) throws NotMirroredException {
        root.create(path, FsTree.Type.FILE, mode, 0, 0);
        root.write(path, FsTree.Content.of(content));
    }

    /** Replaces a file's content, keeping its mode (an atomic rewrite, as the engine does it). */
    static void replace(FsTree root, String path, String content) throws NotMirroredException {
        int mode = root.lstat(path).mode();
        root.removeAll(path);
        file(root, path, mode, content.getBytes(StandardCharsets.UTF_8));
    }
}
