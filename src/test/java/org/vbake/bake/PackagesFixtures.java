package org.vbake.bake;

import com.github.luben.zstd.ZstdOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPOutputStream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.vbake.api.BadInputException;
import org.vbake.image.BlobCache;
import org.vbake.image.Digest;
import org.vbake.image.MediaTypes;
import org.vbake.image.ResolvedImage;

/** Layer tars with package databases in them, and ResolvedImages whose blobs sit in a BlobCache. */
final class PackagesFixtures {

    private PackagesFixtures() {
    }

    enum Compress { NONE, GZIP, ZSTD }

    /** One tar entry; build with {@link #file}, {@link #dir}, {@link #symlink}, {@link #whiteout}. */
    record Item(String name, byte type, byte[] content, String linkName) {
    }

    static Item file(String name, String content) {
        return file(name, content.getBytes(StandardCharsets.UTF_8));
    }

    static Item file(String name, byte[] content) {
        return new Item(name, TarArchiveEntry.LF_NORMAL, content, null);
    }

    static Item dir(String name) {
        return new Item(name.endsWith("/") ? name : name + "/", TarArchiveEntry.LF_DIR, null, null);
    }

    static Item symlink(String name, String target) {
        return new Item(name, TarArchiveEntry.LF_SYMLINK, null, target);
    }

    static Item hardlink(String name, String target) {
        return new Item(name, TarArchiveEntry.LF_LINK, null, target);
    }

    /** The empty file an OCI layer uses to delete {@code dir/name}: {@code dir/.wh.name}. */
    static Item whiteout(String path) {
        int slash = path.lastIndexOf('/');
        return file(path.substring(0, slash + 1) + ".wh." + path.substring(slash + 1), "");
    }

    static byte[] tar(Item... items) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(bytes)) {
            tar.setLongFileMode(TarArchiveOutputStream.LONGFILE_POSIX);
            for (Item item : items) {
                TarArchiveEntry e = new TarArchiveEntry(item.name(), item.type());
                byte[] content = item.content() == null ? new byte[0] : item.content();
                if (item.linkName() != null) {
                    e.setLinkName(item.linkName());
                }
                if (item.type() == TarArchiveEntry.LF_NORMAL) {
                    e.setSize(content.length);
                }
                tar.putArchiveEntry(e);
                tar.write(content);
                tar.closeArchiveEntry();
            }
        }
        return bytes.toByteArray();
    }

    /** A layer blob: its tar plus how it is compressed. */
    record Layer(byte[] tar, Compress compress) {
    }

    static Layer layer(Compress compress, Item... items) throws IOException {
        return new Layer(tar(items), compress);
    }

    static Layer plain(Item... items) throws IOException {
        return layer(Compress.NONE, items);
    }

    static Layer gzip(Item... items) throws IOException {
        return layer(Compress.GZIP, items);
    }

    /** Stores the layers in a BlobCache under {@code cacheRoot} and returns an arm64 image over them. */
    static ResolvedImage image(Path cacheRoot, String repository, Layer... layers)
            throws IOException, BadInputException {
        BlobCache cache = new BlobCache(cacheRoot);
        List<ResolvedImage.Layer> resolved = new ArrayList<>();
        StringBuilder diffIds = new StringBuilder();
        for (Layer layer : layers) {
            byte[] blob = compress(layer.tar(), layer.compress());
            Path path = cache.put(blob, "test layer");
            Digest diffId = Digest.of(layer.tar());
            String mediaType = switch (layer.compress()) {
                case NONE -> MediaTypes.OCI_LAYER;
                case GZIP -> MediaTypes.OCI_LAYER_GZIP;
                case ZSTD -> MediaTypes.OCI_LAYER_ZSTD;
            };
            resolved.add(new ResolvedImage.Layer(Digest.of(blob), mediaType, blob.length, diffId, path));
            diffIds.append(diffIds.length() == 0 ? "" : ",").append('"').append(diffId).append('"');
        }
        byte[] config = ("{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\",\"rootfs\":{\"type\":\"layers\","
                + "\"diff_ids\":[" + diffIds + "]}}").getBytes(StandardCharsets.UTF_8);
        byte[] manifest = ("{\"schemaVersion\":2,\"config\":\"" + Digest.of(config) + "\"}")
                .getBytes(StandardCharsets.UTF_8);
        List<String> tags = repository == null ? List.of() : List.of(repository + ":1.0");
        return new ResolvedImage("oci-archive /in/test.tar", repository, tags, Digest.of(manifest), manifest,
                MediaTypes.OCI_MANIFEST, Digest.of(config), config, "linux", "arm64", "v8", resolved);
    }

    static byte[] compress(byte[] tar, Compress compress) throws IOException {
        if (compress == Compress.NONE) {
            return tar;
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = compress == Compress.GZIP ? new GZIPOutputStream(bytes) : new ZstdOutputStream(bytes)) {
            out.write(tar);
        }
        return bytes.toByteArray();
    }

    /** A dpkg status stanza. */
    static String stanza(String name, String status, String version, String arch, String source) {
        return "Package: " + name + "\n"
                + "Status: " + status + "\n"
                + "Priority: optional\n"
                + "Maintainer: Someone <someone@example.org>\n"
                + (source != null ? "Source: " + source + "\n" : "")
                + "Version: " + version + "\n"
                + "Architecture: " + arch + "\n"
                + "Description: the " + name + " package\n"
                + " with a continuation line: Version: 0\n"
                + " .\n";
    }

    static final String INSTALLED = "install ok installed";

    static final String DEBIAN_OS_RELEASE = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"
            + "VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n";

    /** Three packages, one of them removed with its config files left behind. */
    static final String BASE_STATUS = stanza("base-files", INSTALLED, "12.4+deb12u5", "arm64", null) + "\n"
            + stanza("libc6", INSTALLED, "2.36-9+deb12u4", "arm64", "glibc") + "\n"
            + stanza("oldpkg", "deinstall ok config-files", "1.0-1", "arm64", null);

    /** The base layer of a Debian-like image: os-release (via a symlink, as Debian has it) and the dpkg status. */
    static Layer debianBase(Compress compress) throws IOException {
        return layer(compress,
                dir("./"), dir("./etc"), dir("./usr"), dir("./usr/lib"),
                file("./usr/lib/os-release", DEBIAN_OS_RELEASE),
                symlink("./etc/os-release", "../usr/lib/os-release"),
                dir("./var"), dir("./var/lib"), dir("./var/lib/dpkg"),
                file("./var/lib/dpkg/status", BASE_STATUS),
                file("./var/lib/dpkg/status-old", "Package: stale\nStatus: install ok installed\nVersion: 0\n"));
    }
}
