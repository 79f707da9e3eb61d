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
        try (StorageFile sf = StorageFile.create(target, "--storage")) {
            return export(session, sf, withContainers, mtimeClamp);
        } catch (IOException e) {
            throw new VbakeException(1, "cannot write " + target + ": " + e.getMessage(), null, e);
        }
    }

    /**
     * As {@link #export(GuestSession, Path, boolean, Long)}, into a file opened before the guest
     * booted (so that a target that cannot be written is known before any work).
     */
    public List<Path> export(GuestSession session, StorageFile sf, boolean withContainers, Long mtimeClamp)
            throws VbakeException, InterruptedException {
        Path target = sf.target();
        ContainerRuntime rt = session.runtime();
        long t0 = System.nanoTime();
        warnAboutKeptContainers(session, rt, withContainers);
        events.on(new Event.Progress("exporting " + rt.storagePath() + " (" + rt.driver() + ") to " + target));
        List<Path> written = new ArrayList<>();
        try {
            String reclaimed = sf.swept().describe(sf.target().getParent());
            if (reclaimed != null) {
                events.on(new Event.Debug(reclaimed));
            }
            report(session.exportStorage(sf.stream(), List.of(), withContainers, mtimeClamp));
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
        warnAboutKeptContainers(session, rt, withContainers);
        List<Path> written = new ArrayList<>();
        written.add(new PartitionExporter(events).export(session, disk, target, withContainers, mtimeClamp));
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

    /** Containers an engine keeps in its store's own files (podman) are exported; say so. */
    private void warnAboutKeptContainers(GuestSession session, ContainerRuntime rt, boolean withContainers)
            throws VbakeException, InterruptedException {
        if (withContainers || !rt.exportsContainersAlways()) {
            return;
        }
        String ids = session.engine(List.of("ps", "-aq"), "list containers").strip();
        if (!ids.isEmpty()) {
            events.on(new Event.Progress("warning: the podman store holds " + ids.split("\\s+").length
                    + " container(s); they are exported with the images (remove them with 'rm' first)"));
        }
    }

    /** The exporter's notes as progress: "left out N container(s)" gets the hint to keep them. */
    void report(List<String> notes) {
        for (String n : notes) {
            String line = n.startsWith("export-tree: ") ? n.substring("export-tree: ".length()) : n;
            if (line.startsWith("left out ") && line.endsWith(" container(s)")) {
                events.on(new Event.Progress(line + " of the export (--storage-containers keeps them)"));
            } else {
                events.on(new Event.Debug("export-tree: " + line));
            }
        }
    }
}
