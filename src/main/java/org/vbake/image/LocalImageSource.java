package org.vbake.image;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;

/**
 * Images given as local files: an OCI image layout directory, an oci-archive, or a
 * {@code docker save} archive. Tells them apart from root filesystems (directories and tarballs,
 * imported differently) and reads one image into the {@link BlobCache}.
 */
public final class LocalImageSource {

    /** What a local path holds. */
    public enum Kind {
        /** A directory with {@code oci-layout} and {@code index.json}. */
        OCI_LAYOUT("oci-layout"),
        /** A tar of an OCI image layout. */
        OCI_ARCHIVE("oci-archive"),
        /** {@code docker save} / {@code podman save} output: a tar with {@code manifest.json}. */
        DOCKER_ARCHIVE("docker-archive"),
        /** Any other directory: a root filesystem. */
        ROOTFS_DIR("rootfs directory"),
        /** Any other regular file: a rootfs tarball, maybe gzip, zstd or xz compressed. */
        ROOTFS_TAR("rootfs tarball");

        private final String label;

        Kind(String label) {
            this.label = label;
        }

        /** How messages name it: {@code oci-archive}. */
        public String label() {
            return label;
        }

        public boolean isImage() {
            return this == OCI_LAYOUT || this == OCI_ARCHIVE || this == DOCKER_ARCHIVE;
        }
    }

    private LocalImageSource() {
    }

    /**
     * A local image as a user names it: a path, or a path with the image in it picked by digest
     * ({@code DIR@sha256:<hex>}: an entry of index.json) or by name ({@code DIR:REFNAME}, or
     * {@code ARCHIVE:name:tag}). A path that exists as written is always just a path.
     *
     * @param select a digest ({@code sha256:...}), a name, or null
     */
    public record Spec(Path path, String select) {
        public static Spec parse(String text) {
            Path whole = Path.of(text);
            if (Files.exists(whole)) {
                return new Spec(whole, null);
            }
            int at = text.lastIndexOf("@sha256:");
            if (at > 0 && Files.exists(Path.of(text.substring(0, at)))) {
                return new Spec(Path.of(text.substring(0, at)), text.substring(at + 1));
            }
            for (int colon = text.indexOf(':'); colon > 0; colon = text.indexOf(':', colon + 1)) {
                if (colon + 1 < text.length() && Files.exists(Path.of(text.substring(0, colon)))) {
                    return new Spec(Path.of(text.substring(0, colon)), text.substring(colon + 1));
                }
            }
            return new Spec(whole, null);
        }
    }

    /**
     * Classifies {@code path} by content, not by name. Image archives are listed to the end (they
     * are read whole anyway); a rootfs tarball is recognised at its first entry.
     */
    public static Kind detect(Path path) throws IOException, BadInputException {
        try {
            if (Files.isDirectory(path)) {
                return detectDirectory(path);
            }
            checkRegularFile(path);
            if (Files.size(path) == 0) {
                return Kind.ROOTFS_TAR;
            }
            // To the end: what decides is manifest.json (or oci-layout and index.json) wherever it
            // sits in the archive, whatever the other names are.
            TarImageFiles tar = Compression.of(path) == Compression.NONE
                    ? TarImageFiles.listHeaders(path, path.toString())
                    : null;
            if (tar == null || tar.problem() != null || kindOf(tar) == Kind.ROOTFS_TAR && !tar.foreign()) {
                // Compressed, or not conclusive (no marker of an image archive, but no name of a
                // root filesystem either: maybe cut off): read front to back, which sees the
                // entries before a break.
                tar = TarImageFiles.scan(path, path.toString(), false, false);
            }
            return kindOf(tar);
        } catch (AccessDeniedException e) {
            throw new BadInputException(path + ": permission denied");
        } catch (CorruptInputException e) {
            throw new BadInputException(path + ": " + e.getMessage());
        }
    }

    /**
     * Reads one single-platform image for {@code arch} from an image layout or archive, verifying
     * every blob and storing it in {@code cache}.
     *
     * @param selectName which image when the source holds several: matched against the
     *                   {@code org.opencontainers.image.ref.name} annotation (OCI) or RepoTags
     *                   (docker-archive), docker short names allowed; may be null
     * @param allowArchMismatch accept a single-platform image for another arch
     * @return an image with {@code repository} null; {@code tags} are the archive's RepoTags as full
     *         references for docker-archive sources and empty for OCI sources
     * @throws BadInputException when the path is no image, is malformed, or has no image for
     *                           {@code arch}; the message names the file and the problem
     */
    public static ResolvedImage read(Path path, String selectName, Arch arch, boolean allowArchMismatch,
            BlobCache cache, EventListener events) throws IOException, BadInputException {
        long start = System.nanoTime();
        Kind kind;
        ImageFiles files;
        try {
            if (Files.isDirectory(path)) {
                kind = detectDirectory(path);
                files = new DirImageFiles(path, kind.label() + " " + path);
            } else {
                checkRegularFile(path);
                if (Files.size(path) == 0) {
                    throw new BadInputException(path + ": empty file, not an image archive");
                }
                TarImageFiles tar = TarImageFiles.scan(path, path.toString(), true, false);
                kind = kindOf(tar);
                String source = kind.label() + " " + path;
                if (tar.isEmpty() && tar.problem() != null) {
                    throw new BadInputException(path + ": not an image archive (" + tar.problem().getMessage() + ")");
                }
                if (kind.isImage() && tar.problem() != null) {
                    throw new BadInputException(source + ": " + tar.problem().getMessage());
                }
                files = tar.withSource(source);
            }
        } catch (AccessDeniedException e) {
            throw new BadInputException(path + ": permission denied");
        } catch (CorruptInputException e) {
            throw new BadInputException(path + ": " + e.getMessage());
        }
        if (!kind.isImage()) {
            throw new BadInputException(path + " is not an image: no OCI layout, oci-archive or docker-archive found"
                    + " (it looks like a " + kind.label() + ")");
        }
        events.on(new Event.Progress("reading " + files.source()));
        ResolvedImage image;
        try {
            image = kind == Kind.DOCKER_ARCHIVE
                    ? DockerArchiveReader.read(files, selectName, arch, allowArchMismatch, cache, events)
                    : OciImageReader.read(files, selectName, arch, allowArchMismatch, cache, events);
        } catch (CorruptInputException e) {
            throw new BadInputException(files.source() + ": " + e.getMessage());
        } catch (AccessDeniedException e) {
            if (e.getFile() != null && Path.of(e.getFile()).startsWith(path)) {
                throw new BadInputException(e.getFile() + ": permission denied");
            }
            throw e;
        }
        events.on(new Event.Debug(files.source() + ": " + image.platform() + ", config " + image.configDigest() + ", "
                + image.layers().size() + " layers, " + image.totalLayerBytes() + " bytes"));
        events.on(new Event.Phase("read " + kind.label(), Duration.ofNanos(System.nanoTime() - start)));
        return image;
    }

    private static Kind detectDirectory(Path dir) {
        return Files.isRegularFile(dir.resolve("oci-layout")) && Files.isRegularFile(dir.resolve("index.json"))
                ? Kind.OCI_LAYOUT
                : Kind.ROOTFS_DIR;
    }

    private static Kind kindOf(TarImageFiles tar) {
        if (tar.has("manifest.json")) {
            return Kind.DOCKER_ARCHIVE;
        }
        if (tar.has("oci-layout") || tar.has("index.json") && tar.hasNameStartingWith("blobs/")) {
            return Kind.OCI_ARCHIVE;
        }
        if (tar.problem() != null && !tar.isEmpty() && !tar.foreign()) {
            // Cut off before its index: every name so far was an image archive's.
            return tar.hasNameStartingWith("blobs/") ? Kind.OCI_ARCHIVE : Kind.DOCKER_ARCHIVE;
        }
        return Kind.ROOTFS_TAR;
    }

    private static void checkRegularFile(Path path) throws BadInputException {
        if (!Files.exists(path)) {
            throw new BadInputException(path + ": no such file or directory");
        }
        if (!Files.isRegularFile(path)) {
            throw new BadInputException(path + ": not a regular file or directory");
        }
    }
}
