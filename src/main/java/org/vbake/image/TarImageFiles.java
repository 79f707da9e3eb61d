package org.vbake.image;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.Deque;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.archivers.tar.TarFile;
import org.vbake.api.BadInputException;

/**
 * An image archive (oci-archive, docker-archive; plain or compressed tar) read as a stream: one
 * pass lists the entries and keeps the small ones (manifests, configs) in memory, later passes
 * stream the layers that are wanted. Nothing large is held in memory.
 */
final class TarImageFiles implements ImageFiles {

    /** Entries up to this size are kept from the first pass: they may be manifests or configs. */
    private static final long KEEP_ENTRY_MAX = 1L << 20;
    private static final long KEEP_BUDGET = 64L << 20;
    private static final int MAX_LINK_HOPS = 16;
    static final String BAD_CHECKSUM = "corrupt archive: a header's checksum does not match";

    /** Every name an OCI layout or a docker/podman save archive holds; anything else means a root filesystem. */
    private static final Pattern IMAGE_ARCHIVE_NAME = Pattern.compile(
            "oci-layout|index\\.json|manifest\\.json|repositories|blobs(/.*)?|[0-9a-f]{64}(\\.json|\\.tar|/.*)?");

    enum Type { FILE, DIR, SYMLINK, HARDLINK, OTHER }

    record Entry(Type type, long size, String link) {
    }

    private final Path file;
    private String source;
    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, byte[]> kept = new HashMap<>();
    private CorruptInputException problem;
    private boolean foreign;

    private TarImageFiles(Path file, String source) {
        this.file = file;
        this.source = source;
    }

    /**
     * Lists the archive. A malformed archive does not throw here: {@link #problem()} says what was
     * wrong, so that detection can still classify what it saw.
     *
     * @param keepSmall         keep small entries' content for later {@link #readSmall}
     * @param stopAtForeignName stop at the first name no image archive holds (a rootfs tarball)
     */
    static TarImageFiles scan(Path file, String source, boolean keepSmall, boolean stopAtForeignName)
            throws IOException, BadInputException {
        TarImageFiles t = new TarImageFiles(file, source);
        long budget = KEEP_BUDGET;
        InputStream raw;
        try {
            raw = Compression.openDecompressed(file, source);
        } catch (CorruptInputException e) {
            t.problem = e;
            return t;
        }
        try (raw;
                TarEndTracker tracker = new TarEndTracker(raw);
                TarArchiveInputStream tar = new TarArchiveInputStream(tracker)) {
            while (true) {
                TarArchiveEntry e;
                try {
                    e = tar.getNextEntry();
                } catch (IOException | RuntimeException ex) {
                    t.problem = GuardedInputStream.corrupt(ex, "archive");
                    break;
                }
                if (e == null) {
                    if (!tracker.sawEndMarker()) {
                        t.problem = new CorruptInputException("truncated: unexpected end of archive", null);
                    }
                    break;
                }
                if (!t.add(e, stopAtForeignName)) {
                    break;
                }
                String name = normalize(e.getName());
                Entry entry = t.entries.get(name);
                if (keepSmall && entry != null && entry.type() == Type.FILE && entry.size() <= KEEP_ENTRY_MAX
                        && entry.size() <= budget) {
                    byte[] content;
                    try {
                        content = tar.readNBytes((int) entry.size());
                    } catch (IOException | RuntimeException ex) {
                        t.problem = GuardedInputStream.corrupt(ex, "archive");
                        break;
                    }
                    if (content.length != entry.size()) {
                        t.problem = new CorruptInputException("truncated: unexpected end of archive", null);
                        break;
                    }
                    t.kept.put(name, content);
                    budget -= content.length;
                }
            }
        }
        return t;
    }

    /**
     * Lists only the headers of an uncompressed archive, seeking past the content: how a large
     * archive is classified without reading it.
     */
    static TarImageFiles listHeaders(Path file, String source) throws IOException {
        TarImageFiles t = new TarImageFiles(file, source);
        try (TarFile tar = new TarFile(file)) {
            for (TarArchiveEntry e : tar.getEntries()) {
                if (!t.add(e, false)) {
                    break;
                }
            }
        } catch (java.nio.file.AccessDeniedException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            t.problem = GuardedInputStream.corrupt(e, "archive");
        }
        return t;
    }

    /** Records one header; false when listing should stop (bad header, or a rootfs's name). */
    private boolean add(TarArchiveEntry e, boolean stopAtForeignName) {
        if (!e.isCheckSumOK()) {
            problem = new CorruptInputException(BAD_CHECKSUM, null);
            return false;
        }
        String name = normalize(e.getName());
        if (name.isEmpty()) {
            return true;
        }
        if (!IMAGE_ARCHIVE_NAME.matcher(name).matches()) {
            foreign = true;
            if (stopAtForeignName && !hasImageMarker()) {
                return false;
            }
        }
        entries.put(name, entryOf(e));
        kept.remove(name); // a later entry of the same name replaces the earlier one
        return true;
    }

    /** What made the archive unreadable, or null. */
    CorruptInputException problem() {
        return problem;
    }

    /**
     * A name was seen that {@code docker save} and OCI layouts do not write. Other writers (jib,
     * go-containerregistry) use such names too, so this alone does not make a rootfs.
     */
    boolean foreign() {
        return foreign;
    }

    boolean has(String name) {
        return entries.containsKey(name);
    }

    boolean hasNameStartingWith(String prefix) {
        return entries.keySet().stream().anyMatch(n -> n.startsWith(prefix));
    }

    boolean isEmpty() {
        return entries.isEmpty();
    }

    private boolean hasImageMarker() {
        return entries.containsKey("manifest.json") || entries.containsKey("oci-layout");
    }

    /** Names the source for messages once its kind is known. */
    TarImageFiles withSource(String newSource) {
        this.source = newSource;
        return this;
    }

    @Override
    public String source() {
        return source;
    }

    @Override
    public String canonical(String name) {
        String current = normalize(name);
        for (int hops = 0; hops <= MAX_LINK_HOPS; hops++) {
            Entry e = entries.get(current);
            if (e == null) {
                return null;
            }
            switch (e.type()) {
                case FILE:
                    return current;
                case SYMLINK:
                    String target = e.link();
                    int slash = current.lastIndexOf('/');
                    current = normalize(target.startsWith("/") ? target
                            : (slash < 0 ? "" : current.substring(0, slash + 1)) + target);
                    break;
                case HARDLINK:
                    current = normalize(e.link());
                    break;
                default:
                    return null;
            }
        }
        return null;
    }

    @Override
    public long size(String canonicalName) {
        return entries.get(canonicalName).size();
    }

    @Override
    public void stream(Collection<String> canonicalNames, EntryHandler handler) throws IOException, BadInputException {
        Set<String> wanted = new LinkedHashSet<>();
        for (String name : canonicalNames) {
            byte[] content = kept.get(name);
            if (content != null) {
                handler.accept(name, new ByteArrayInputStream(content));
            } else {
                wanted.add(name);
            }
        }
        if (wanted.isEmpty()) {
            return;
        }
        try (InputStream raw = Compression.openDecompressed(file, source);
                TarArchiveInputStream tar = new TarArchiveInputStream(raw)) {
            while (!wanted.isEmpty()) {
                TarArchiveEntry e;
                try {
                    e = tar.getNextEntry();
                } catch (IOException | RuntimeException ex) {
                    throw GuardedInputStream.corrupt(ex, "archive");
                }
                if (e == null) {
                    break;
                }
                if (!e.isCheckSumOK()) {
                    throw new CorruptInputException(BAD_CHECKSUM, null);
                }
                String name = normalize(e.getName());
                if (entryOf(e).type() == Type.FILE && wanted.remove(name)) {
                    handler.accept(name, GuardedInputStream.entryOf(tar));
                }
            }
        }
        if (!wanted.isEmpty()) {
            throw new BadInputException(source + ": " + wanted.iterator().next()
                    + " is missing (did the file change while it was read?)");
        }
    }

    private static Entry entryOf(TarArchiveEntry e) {
        if (e.isSymbolicLink()) {
            return new Entry(Type.SYMLINK, 0, e.getLinkName());
        }
        if (e.isLink()) {
            return new Entry(Type.HARDLINK, 0, e.getLinkName());
        }
        if (e.isDirectory()) {
            return new Entry(Type.DIR, 0, null);
        }
        if (e.isFile()) {
            return new Entry(Type.FILE, e.getSize(), null);
        }
        return new Entry(Type.OTHER, 0, null);
    }

    /** {@code ./a//b/../c/} → {@code a/c}; never climbs above the archive root. */
    static String normalize(String name) {
        return org.vbake.image.TarPaths.normalize(name);
    }
}
