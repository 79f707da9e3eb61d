package org.vbake.session;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.RuntimeKind;
import org.vbake.api.VbakeException;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.storage.StorageFile;

/**
 * Writes the engine's storage tree from a running guest to a host file ({@code --storage}):
 * all or nothing, compressed by extension, containers left out unless asked for, and for podman
 * the storage.conf the target needs next to it.
 */
public final class StorageExporter {

    private final EventListener events;

    public StorageExporter(EventListener events) {
        this.events = events;
    }

    /**
     * @param withContainers keep containers (docker: their config and writable layers)
     * @param mtimeClamp     SOURCE_DATE_EPOCH, or null
     * @return the files written (the tree, and podman's storage.conf)
     */
    public List<Path> export(GuestSession session, Path target, boolean withContainers, Long mtimeClamp)
            throws VbakeException, InterruptedException {
        ContainerRuntime rt = session.runtime();
        long t0 = System.nanoTime();
        List<String> excludes = withContainers ? List.of() : containerPaths(session, rt);
        events.on(new Event.Progress("exporting " + rt.storagePath() + " (" + rt.driver() + ") to " + target));
        List<Path> written = new ArrayList<>();
        try (StorageFile sf = StorageFile.create(target, "--storage")) {
            session.exportStorage(sf.stream(), excludes, mtimeClamp);
            sf.commit();
            written.add(sf.target());
            long size = Files.size(sf.target());
            events.on(new Event.Progress(String.format(Locale.ROOT, "wrote %s (%.1f MB tar, %.1f MB on disk)",
                    sf.target(), sf.tarBytes() / 1e6, size / 1e6)));
        } catch (IOException e) {
            throw new VbakeException(1, "cannot write " + target + ": " + e.getMessage(), null, e);
        }
        writeStorageConf(rt, target, written);
        events.on(new Event.Phase("export", Duration.ofNanos(System.nanoTime() - t0)));
        return written;
    }

    /** {@code --storage x.ext4}: the tree as an ext4 image made on {@code disk} (the attached output disk). */
    public List<Path> exportPartition(GuestSession session, Path disk, Path target, boolean withContainers,
            Long mtimeClamp) throws VbakeException, InterruptedException {
        ContainerRuntime rt = session.runtime();
        List<String> excludes = withContainers ? List.of() : containerPaths(session, rt);
        List<Path> written = new ArrayList<>();
        written.add(new PartitionExporter(events).export(session, disk, target, excludes, mtimeClamp));
        writeStorageConf(rt, target, written);
        return written;
    }

    /** podman's storage.conf for the driver used, beside the tree; nothing for docker. */
    private void writeStorageConf(ContainerRuntime rt, Path target, List<Path> written) throws VbakeException {
        String conf = rt.storageConf();
        if (conf == null) {
            return;
        }
        Path confFile = storageConfPath(target);
        try {
            Files.writeString(confFile, conf, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new VbakeException(1, "cannot write " + confFile + ": " + e.getMessage(), null, e);
        }
        written.add(confFile);
        events.on(new Event.Progress("wrote " + confFile + " (install as /etc/containers/storage.conf)"));
    }

    /** {@code out.tar.zst} → {@code out.storage.conf}, beside it. */
    public static Path storageConfPath(Path target) {
        String name = target.getFileName().toString();
        StorageFile.Format f = StorageFile.Format.forName(name);
        String base = f != null && name.toLowerCase(Locale.ROOT).endsWith(f.extension())
                ? name.substring(0, name.length() - f.extension().length())
                : name.toLowerCase(Locale.ROOT).endsWith(".ext4") ? name.substring(0, name.length() - 5) : name;
        return target.toAbsolutePath().resolveSibling(base + ".storage.conf");
    }

    /** What belongs to containers, relative to the storage root, so an export can leave it out. */
    private List<String> containerPaths(GuestSession session, ContainerRuntime rt)
            throws VbakeException, InterruptedException {
        if (rt.kind() == RuntimeKind.PODMAN) {
            String ids = session.engine(List.of("ps", "-aq"), "list containers").strip();
            if (!ids.isEmpty()) {
                events.on(new Event.Progress("warning: the podman store holds " + ids.split("\\s+").length
                        + " container(s); they are exported with the images (remove them with 'rm' first)"));
            }
            return List.of();
        }
        String driver = rt.driver();
        String root = rt.storagePath();
        // Each container's writable layer (and its -init layer) is named in layerdb/mounts; the
        // overlay2 short link of each is in its link file.
        String script = "cd \"$1\" 2>/dev/null || exit 0; for m in */; do "
                + "for f in mount-id init-id; do [ -f \"$m$f\" ] && { cat \"$m$f\"; echo; }; done; done";
        String out = session.check(List.of("/bin/sh", "-c", script, "sh",
                root + "/image/" + driver + "/layerdb/mounts"), "list container layers");
        List<String> excludes = new ArrayList<>(List.of("containers", "image/" + driver + "/layerdb/mounts"));
        List<String> ids = out.lines().map(String::strip).filter(s -> s.matches("[0-9a-f]{64}(-init)?")).toList();
        if (ids.isEmpty()) {
            return excludes;
        }
        String layerDir = driver.equals("vfs") ? "vfs/dir/" : driver + "/";
        StringBuilder links = new StringBuilder();
        for (String id : ids) {
            excludes.add(layerDir + id);
            links.append(root).append('/').append(driver).append('/').append(id).append("/link ");
        }
        if (driver.equals("overlay2")) {
            String names = session.check(List.of("/bin/sh", "-c", "for f in " + links + "; do [ -f \"$f\" ] && "
                    + "{ cat \"$f\"; echo; }; done; true"), "list container layer links");
            names.lines().map(String::strip).filter(s -> s.matches("[A-Z0-9]{26}"))
                    .forEach(l -> excludes.add("overlay2/l/" + l));
        }
        events.on(new Event.Progress("leaving " + ids.stream().filter(i -> !i.endsWith("-init")).count() + " container(s) out of the export"
                + " (--storage-containers keeps them)"));
        return excludes;
    }
}
