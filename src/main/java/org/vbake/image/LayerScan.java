package org.vbake.image;

import java.io.BufferedInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HashSet;
import java.util.Locale;
import java.util.Set;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.vbake.api.BadInputException;

/**
 * Reads a layer once on the host before anything of it is written or sent to a guest: its
 * uncompressed size against a limit (stopping as soon as it is passed, so a small layer that
 * expands to gigabytes costs only the limit), its uncompressed digest against the config's
 * diff_id, and every entry against the rules the engines enforce when they unpack it (moby's and
 * containers/storage's {@code pkg/archive}): no name outside the layer's root, no hardlink or
 * symlink target outside it, and for the overlay drivers, which unpack each layer into an empty
 * directory of its own, no hardlink to something the layer does not hold.
 */
public final class LayerScan {

    private static final int BUFFER = 1 << 16;
    private static final String ROOT = "/layer-root";

    /**
     * What a layer must satisfy.
     *
     * @param maxBytes             largest uncompressed size accepted
     * @param limitSource          for messages: where the limit comes from
     * @param hardlinksWithinLayer a hardlink must name an earlier entry of its own layer (overlay drivers)
     */
    public record Rules(long maxBytes, String limitSource, boolean hardlinksWithinLayer) {
    }

    /** Room left on the host's disk beyond what a layer may take. */
    static final long RESERVE = 1L << 30;

    private LayerScan() {
    }

    /**
     * The rules for layers whose content will land on the filesystem of {@code hostDir} (staged
     * there, or in a sparse state disk beside it): by default a layer may take the free space
     * less a reserve; {@code VBAKE_LAYER_LIMIT} sets a size ({@code 20G}, {@code 512M}) or a
     * share of the free space ({@code 50%}).
     */
    public static Rules rules(Path hostDir, java.util.Map<String, String> env, boolean hardlinksWithinLayer)
            throws BadInputException, IOException {
        Path existing = hostDir.toAbsolutePath();
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        long free = existing == null ? Long.MAX_VALUE : Files.getFileStore(existing).getUsableSpace();
        String setting = env.get("VBAKE_LAYER_LIMIT");
        if (setting == null || setting.isBlank()) {
            return new Rules(Math.max(0, free - RESERVE), "the free space in " + existing + " less "
                    + human(RESERVE), hardlinksWithinLayer);
        }
        String v = setting.strip().toUpperCase(Locale.ROOT);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("(\\d+)\\s*(%|[KMGT]I?B?|B?)").matcher(v);
        if (!m.matches()) {
            throw new BadInputException("VBAKE_LAYER_LIMIT=" + setting + " is not a size or a share of free space",
                    "e.g. VBAKE_LAYER_LIMIT=20G, 512M or 50%");
        }
        long n = Long.parseLong(m.group(1));
        String unit = m.group(2);
        if (unit.equals("%")) {
            if (n < 1 || n > 100) {
                throw new BadInputException("VBAKE_LAYER_LIMIT=" + setting + ": a share must be 1% to 100%");
            }
            return new Rules(free / 100 * n, "VBAKE_LAYER_LIMIT=" + setting + " of the free space in " + existing,
                    hardlinksWithinLayer);
        }
        int shift = unit.isEmpty() || unit.equals("B") ? 0 : switch (unit.charAt(0)) {
            case 'K' -> 10;
            case 'M' -> 20;
            case 'G' -> 30;
            default -> 40;
        };
        return new Rules(n << shift, "VBAKE_LAYER_LIMIT=" + setting, hardlinksWithinLayer);
    }

    /**
     * Scans {@code layer} and returns its uncompressed size.
     *
     * @param what names the layer in messages ({@code oci-archive x.tar: layer sha256:...})
     * @throws BadInputException when the layer breaks a rule; the message names the entry
     */
    public static long scan(ResolvedImage.Layer layer, String what, Rules rules) throws IOException, BadInputException {
        Path blob = layer.blob();
        Compression compression = Compression.of(blob);
        Counted counted;
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(blob), BUFFER);
                InputStream plain = compression.decompress(raw, what)) {
            counted = new Counted(plain, rules.maxBytes());
            try {
                checkEntries(counted, what, rules);
            } catch (TooLarge e) {
                throw tooLarge(what, rules);
            } catch (CorruptInputException e) {
                throw new BadInputException(what + ": " + e.getMessage());
            }
        } catch (CorruptInputException e) {
            throw new BadInputException(what + ": " + e.getMessage());
        }
        Digest actual = Digest.fromMessageDigest(counted.md);
        if (!actual.equals(layer.diffId())) {
            throw new BadInputException(what + ": digest mismatch: uncompressed content is " + actual
                    + ", the config's diff_id is " + layer.diffId());
        }
        return counted.count;
    }

    /** The refusal of a layer that expands beyond {@code rules}' limit. */
    public static BadInputException tooLarge(String what, Rules rules) {
        return new BadInputException(String.format(Locale.ROOT, "%s expands to more than %s uncompressed (%s)",
                what, human(rules.maxBytes()), rules.limitSource()),
                "free space on the host, or raise the limit with VBAKE_LAYER_LIMIT (e.g. 20G, or 80% of free space)");
    }

    private static void checkEntries(Counted in, String what, Rules rules) throws IOException, BadInputException {
        Set<String> seen = new HashSet<>();
        TarArchiveInputStream tar = new TarArchiveInputStream(in);
        while (true) {
            TarArchiveEntry e;
            try {
                e = tar.getNextEntry();
            } catch (IOException | RuntimeException ex) {
                for (Throwable c = ex; c != null; c = c.getCause()) {
                    if (c instanceof TooLarge t) {
                        throw t;
                    }
                }
                throw GuardedInputStream.corrupt(ex, "layer tar");
            }
            if (e == null) {
                break;
            }
            String name = e.getName();
            String path = TarPaths.join(ROOT, name);
            if (!inside(path)) {
                throw new BadInputException(what + ": entry '" + name + "' lies outside the layer's root",
                        "the engine would refuse this layer; it is not a valid image");
            }
            if (e.isLink()) {
                String target = TarPaths.join(ROOT, e.getLinkName());
                if (!inside(target)) {
                    throw new BadInputException(what + ": hardlink '" + name + "' -> '" + e.getLinkName()
                            + "' points outside the layer's root", "the engine would refuse this layer");
                }
                if (rules.hardlinksWithinLayer() && !seen.contains(target)) {
                    throw new BadInputException(what + ": hardlink '" + name + "' -> '" + e.getLinkName()
                            + "' names no earlier file of this layer",
                            "each layer is unpacked on its own; a hardlink can only join files of one layer");
                }
            } else if (e.isSymbolicLink()) {
                String dir = path.substring(0, path.lastIndexOf('/'));
                if (!inside(TarPaths.join(dir.isEmpty() ? "/" : dir, e.getLinkName()))) {
                    throw new BadInputException(what + ": symlink '" + name + "' -> '" + e.getLinkName()
                            + "' climbs out of the layer's root", "the engine would refuse this layer");
                }
            }
            if (!e.isDirectory()) {
                seen.add(path);
            }
        }
        // The end-of-archive blocks and anything after them are part of the diff_id too.
        in.drain();
    }

    private static boolean inside(String path) {
        return path.equals(ROOT) || path.startsWith(ROOT + "/");
    }

    static String human(long bytes) {
        if (bytes >= 1L << 30) {
            return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
        }
        return String.format(Locale.ROOT, "%.1f MiB", bytes / (double) (1L << 20));
    }

    /** Thrown by {@link Counted} past the limit; never escapes {@link #scan}. */
    private static final class TooLarge extends IOException {
        TooLarge() {
            super("layer larger than the limit", null);
        }
    }

    /** Hashes and counts every byte, also those the tar reader skips, and stops past a limit. */
    private static final class Counted extends FilterInputStream {
        final MessageDigest md = Digest.sha256();
        private final long limit;
        private final byte[] skipBuffer = new byte[BUFFER];
        long count;

        Counted(InputStream in, long limit) {
            super(in);
            this.limit = limit;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            int n = read(one, 0, 1);
            return n < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = in.read(b, off, len);
            if (n > 0) {
                count += n;
                if (count > limit) {
                    throw new TooLarge();
                }
                md.update(b, off, n);
            }
            return n;
        }

        @Override
        public long skip(long n) throws IOException {
            long done = 0;
            while (done < n) {
                int r = read(skipBuffer, 0, (int) Math.min(skipBuffer.length, n - done));
                if (r < 0) {
                    break;
                }
                done += r;
            }
            return done;
        }

        @Override
        public int available() {
            return 0;
        }

        @Override
        public boolean markSupported() {
            return false;
        }

        void drain() throws IOException {
            while (read(skipBuffer, 0, skipBuffer.length) >= 0) {
                // hashed and counted by read
            }
        }

        @Override
        public void close() {
            // the caller closes the decompressor
        }
    }
}
