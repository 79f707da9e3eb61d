package org.vbake.runtime.podman;

import java.util.ArrayList;
import java.util.List;
import org.vbake.runtime.HostTreeWriter;

/**
 * An image's names and names-history as containers/storage keeps them (images.go updateNames),
 * through what vbake's guest path does to a pulled image: {@code untag ID}, {@code tag ID NAME} per
 * name (ImageLoader), then every name again and {@code untag} of any other (Baker's reconcile).
 * podman 5's tag adds the new name first, podman 4's appends it (SetNames); podman 4 also names a
 * pulled layout after its path. Every change puts each name the image then has in front of its
 * history, in order.
 */
final class PodmanNames {

    final List<String> names = new ArrayList<>();
    final List<String> history = new ArrayList<>();
    private final List<String> wanted = new ArrayList<>();
    private final boolean appendOnTag;

    /**
     * @param pulledAs    the name the pull gave the image, or null (podman 5)
     * @param appendOnTag podman 4's tag (the new name last)
     */
    PodmanNames(String pulledAs, boolean appendOnTag) {
        this.appendOnTag = appendOnTag;
        if (pulledAs != null) {
            names.add(pulledAs);
            touchHistory();
        }
    }

    boolean wants(String name) {
        return wanted.contains(name);
    }

    /** ImageLoader.load: every name off, then the image's names (or a derived one for its digest). */
    void load(HostTreeWriter.Image img) {
        for (String n : new ArrayList<>(names)) {
            remove(n);
        }
        List<String> given = new ArrayList<>(img.tags());
        if (given.isEmpty() && img.image().repository() != null && img.repoDigest() != null) {
            given.add(img.image().repository() + ":sha256-" + img.repoDigest().shortId());
        }
        for (String t : given) {
            add(t);
        }
        wanted.addAll(img.tags());
    }

    /** Baker.reconcile: each wanted name again, then any other name off. */
    void reconcile() {
        for (String t : wanted) {
            add(t);
        }
        for (String n : new ArrayList<>(names)) {
            if (!wanted.contains(n)) {
                remove(n);
            }
        }
    }

    private void add(String name) {
        if (appendOnTag) {
            if (!names.contains(name)) {
                names.add(name);
            }
        } else {
            names.remove(name);
            names.add(0, name);
        }
        touchHistory();
    }

    private void remove(String name) {
        names.remove(name);
        touchHistory();
    }

    private void touchHistory() {
        for (String n : names) {
            history.remove(n);
            history.add(0, n);
        }
    }
}
