package org.vbake.bake;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.image.Digest;
import org.vbake.image.ResolvedImage;

/**
 * The listing a bake writes next to the storage tree: for every image baked in, where it came
 * from, its exact identity (image ID, manifest and repo digests, layers) and the OS packages in it.
 * The same input always gives the same bytes: no timestamps, fixed key order, packages sorted.
 *
 * <p>Shape ({@value #SCHEMA}):
 * <pre>
 * {"schema":"vbake.listing/1","images":[{"references":[..],"source":..,"platform":"linux/arm64/v8",
 *   "imageId":"sha256:..","configDigest":"sha256:..","manifestDigest":..|null,"repoDigest":..|null,
 *   "distro":{"id","versionId","prettyName"}|null,
 *   "layers":[{"digest","mediaType","size","diffId"}],
 *   "packages":[{"name","version","arch","type","sourcePackage","license"}],"notes":[..]}]}
 * </pre>
 * Images keep the given order, references their given order (the first is the image's name in the
 * SBOM), layers bottom first; packages are sorted by {@link Packages#ORDER}.
 */
public final class ContentListing {

    public static final String SCHEMA = "vbake.listing/1";

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    private static final ObjectWriter PRETTY;

    static {
        // Explicit "\n" instead of the platform line separator, and arrays one item per line.
        DefaultIndenter indenter = new DefaultIndenter("  ", "\n");
        Separators separators = Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER)
                .withObjectEmptySeparator("")
                .withArrayEmptySeparator("");
        DefaultPrettyPrinter printer = new DefaultPrettyPrinter(separators)
                .withObjectIndenter(indenter)
                .withArrayIndenter(indenter);
        PRETTY = new ObjectMapper().writer(printer);
    }

    private ContentListing() {
    }

    /**
     * One image of a bake.
     *
     * @param references the names it is stored under in the baked storage, first = primary; may be empty
     * @param image      as resolved on the host
     * @param repoDigest the RepoDigest the engine records for it (normally the manifest digest); null if none
     * @param packages   from {@link Packages#scan}; re-sorted in the listing
     * @param notes      what the listing cannot say (scan notes, caller's own); kept in order
     * @param distro     from {@link Packages#distro()}, used for package URLs in the SBOM; may be null
     */
    public record Entry(List<String> references, ResolvedImage image, Digest repoDigest, List<Package> packages,
            List<String> notes, Distro distro) {

        public Entry {
            references = List.copyOf(references);
            Objects.requireNonNull(image, "image");
            packages = List.copyOf(packages);
            notes = List.copyOf(notes);
        }

        /** Without a distro: package URLs fall back to {@code debian} and {@code alpine}. */
        public Entry(List<String> references, ResolvedImage image, Digest repoDigest, List<Package> packages,
                List<String> notes) {
            this(references, image, repoDigest, packages, notes, null);
        }

        /** Everything {@link Packages#scan} found: its packages, notes and distro. */
        public static Entry of(List<String> references, ResolvedImage image, Digest repoDigest, Packages scanned) {
            return new Entry(references, image, repoDigest, scanned.list(), scanned.notes(), scanned.distro());
        }
    }

    public static ObjectNode listing(List<Entry> images) {
        ObjectNode root = NODES.objectNode();
        root.put("schema", SCHEMA);
        ArrayNode list = root.putArray("images");
        for (Entry entry : images) {
            list.add(image(entry));
        }
        return root;
    }

    private static ObjectNode image(Entry entry) {
        ResolvedImage image = entry.image();
        ObjectNode node = NODES.objectNode();
        ArrayNode references = node.putArray("references");
        entry.references().forEach(references::add);
        node.put("source", image.source());
        node.put("platform", image.platform());
        node.put("imageId", image.configDigest().toString());
        node.put("configDigest", image.configDigest().toString());
        node.put("manifestDigest", text(image.manifestDigest()));
        node.put("repoDigest", text(entry.repoDigest()));
        if (entry.distro() == null) {
            node.putNull("distro");
        } else {
            ObjectNode distro = node.putObject("distro");
            distro.put("id", entry.distro().id());
            distro.put("versionId", entry.distro().versionId());
            distro.put("prettyName", entry.distro().prettyName());
        }
        ArrayNode layers = node.putArray("layers");
        for (ResolvedImage.Layer layer : image.layers()) {
            ObjectNode l = layers.addObject();
            l.put("digest", layer.digest().toString());
            l.put("mediaType", layer.mediaType());
            l.put("size", layer.size());
            l.put("diffId", text(layer.diffId()));
        }
        ArrayNode packages = node.putArray("packages");
        for (Package p : entry.packages().stream().sorted(Packages.ORDER).toList()) {
            ObjectNode n = packages.addObject();
            n.put("name", p.name());
            n.put("version", p.version());
            n.put("arch", p.arch());
            n.put("type", p.type());
            n.put("sourcePackage", p.sourcePackage());
            n.put("license", p.license());
        }
        ArrayNode notes = node.putArray("notes");
        entry.notes().forEach(notes::add);
        return node;
    }

    private static String text(Digest d) {
        return d == null ? null : d.toString();
    }

    /** Pretty-printed UTF-8 with two-space indents, {@code \n} line ends and a trailing newline. */
    public static byte[] toBytes(ObjectNode json) {
        try {
            byte[] body = PRETTY.writeValueAsBytes(json);
            byte[] withNewline = Arrays.copyOf(body, body.length + 1);
            withNewline[body.length] = '\n';
            return withNewline;
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a JSON tree failed to serialise", e);
        }
    }

}
