package org.vbake.image;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.image.ImageJson.Descriptor;

/**
 * Reads one image out of an OCI image layout (a directory or an oci-archive): picks the image by
 * ref name and platform, checks every blob against its descriptor and stores it in the cache.
 */
final class OciImageReader {

    static final String REF_NAME = "org.opencontainers.image.ref.name";
    /** containerd and docker 25+ put the full image name here. */
    static final String CONTAINERD_NAME = "io.containerd.image.name";
    private static final int MAX_INDEX_DEPTH = 4;

    private final ImageFiles files;
    private final String source;
    private final Arch arch;
    private final BlobCache cache;

    private OciImageReader(ImageFiles files, Arch arch, BlobCache cache) {
        this.files = files;
        this.source = files.source();
        this.arch = arch;
        this.cache = cache;
    }

    static ResolvedImage read(ImageFiles files, String selectName, Arch arch, boolean allowArchMismatch,
            BlobCache cache, EventListener events) throws IOException, BadInputException {
        return new OciImageReader(files, arch, cache).read(selectName, allowArchMismatch, events);
    }

    private ResolvedImage read(String selectName, boolean allowArchMismatch, EventListener events)
            throws IOException, BadInputException {
        ImageJson.parse(files.readSmall("oci-layout", "oci-layout file", ImageJson.MAX_JSON_BYTES), source + ": oci-layout");
        JsonNode index = ImageJson.object(files.readSmall("index.json", "index.json", ImageJson.MAX_JSON_BYTES),
                source + ": index.json");
        Descriptor chosen = chooseImage(index, selectName);

        String variantFromIndex = null;
        Descriptor manifestDescriptor = chosen;
        byte[] manifestBytes;
        JsonNode manifest;
        String mediaType;
        for (int depth = 0; ; depth++) {
            manifestBytes = readBlob(manifestDescriptor, "manifest");
            manifest = ImageJson.object(manifestBytes, source + ": manifest " + manifestDescriptor.digest());
            mediaType = manifestDescriptor.mediaType() != null ? manifestDescriptor.mediaType()
                    : ImageJson.text(manifest, "mediaType");
            if (mediaType == null) {
                mediaType = manifest.has("manifests") ? MediaTypes.OCI_INDEX : MediaTypes.OCI_MANIFEST;
            }
            if (!MediaTypes.isIndex(mediaType)) {
                break;
            }
            if (depth == MAX_INDEX_DEPTH) {
                throw new BadInputException(source + ": image indexes nested more than " + MAX_INDEX_DEPTH + " deep");
            }
            JsonNode selected = Platforms.select(manifest, arch, source);
            variantFromIndex = ImageJson.text(selected.path("platform"), "variant");
            manifestDescriptor = Descriptor.of(selected, source + ": index " + manifestDescriptor.digest() + " entry");
        }
        if (!MediaTypes.isManifest(mediaType)) {
            throw new BadInputException(source + ": manifest " + manifestDescriptor.digest() + " has media type "
                    + mediaType + ", not an OCI or docker schema2 image manifest");
        }
        String manifestWhat = source + ": manifest " + manifestDescriptor.digest();

        Descriptor configDescriptor = Descriptor.of(manifest.get("config"), manifestWhat + " config");
        if (configDescriptor.mediaType() != null && !MediaTypes.isConfig(configDescriptor.mediaType())) {
            throw new BadInputException(source + " is not a container image (its config has media type "
                    + configDescriptor.mediaType() + ")");
        }
        byte[] configBytes = readBlob(configDescriptor, "config");
        JsonNode config = ImageJson.object(configBytes, source + ": config " + configDescriptor.digest());
        Platforms.checkConfig(config, arch, allowArchMismatch, source);
        if (!Platforms.matches(config, arch)) {
            events.on(new Event.Progress("warning: " + source + " is a " + Platforms.platformOf(config)
                    + " image, importing it for linux/" + arch.ociArch() + " as asked"));
        }
        List<Digest> diffIds = diffIds(config, source + ": config " + configDescriptor.digest());

        JsonNode layerNodes = manifest.get("layers");
        if (layerNodes == null || !layerNodes.isArray()) {
            throw new BadInputException(manifestWhat + " has no \"layers\" list");
        }
        if (layerNodes.size() != diffIds.size()) {
            throw new BadInputException(manifestWhat + " lists " + layerNodes.size() + " layers but its config has "
                    + diffIds.size() + " diff_ids");
        }
        List<Descriptor> layerDescriptors = new ArrayList<>();
        for (int i = 0; i < layerNodes.size(); i++) {
            Descriptor d = Descriptor.of(layerNodes.get(i), manifestWhat + " layer " + (i + 1));
            if (d.mediaType() != null && !d.mediaType().contains("tar")) {
                throw new BadInputException(manifestWhat + " layer " + d.digest() + " has media type " + d.mediaType()
                        + ", not a tar layer");
            }
            blobName(d, "layer");
            layerDescriptors.add(d);
        }

        cache.put(manifestBytes, manifestWhat);
        cache.put(configBytes, source + ": config " + configDescriptor.digest());
        copyLayers(layerDescriptors);

        List<ResolvedImage.Layer> layers = new ArrayList<>();
        for (int i = 0; i < layerDescriptors.size(); i++) {
            Descriptor d = layerDescriptors.get(i);
            long size = d.size() >= 0 ? d.size() : Files.size(cache.path(d.digest()));
            String layerType = d.mediaType() != null ? d.mediaType() : MediaTypes.OCI_LAYER_GZIP;
            layers.add(new ResolvedImage.Layer(d.digest(), layerType, size, diffIds.get(i), cache.path(d.digest())));
        }
        String variant = ImageJson.text(config, "variant");
        return new ResolvedImage(source, null, List.of(), manifestDescriptor.digest(), manifestBytes, mediaType,
                configDescriptor.digest(), configBytes, ImageJson.text(config, "os"),
                ImageJson.text(config, "architecture"), variant != null ? variant : variantFromIndex, layers);
    }

    /**
     * The entry of index.json to use: by digest ({@code sha256:...}) or ref name when asked; else
     * the only image; else, when the entries are the platforms of one image (one name or none, each
     * with a platform, as in the image-layout spec's own example), the one for the target arch.
     * Entries that differ in name, or lack a platform, are different images: one must be named.
     */
    private Descriptor chooseImage(JsonNode index, String selectName) throws BadInputException {
        JsonNode manifests = index.get("manifests");
        if (manifests == null || !manifests.isArray()) {
            throw new BadInputException(source + ": index.json has no \"manifests\" list");
        }
        List<JsonNode> candidates = new ArrayList<>();
        for (JsonNode d : manifests) {
            if (d.isObject() && !Platforms.isAttestation(d)) {
                candidates.add(d);
            }
        }
        if (candidates.isEmpty()) {
            throw new BadInputException(source + ": index.json lists no images");
        }
        List<JsonNode> chosen = candidates;
        if (selectName != null && selectName.matches("sha256:[0-9a-f]{64}")) {
            chosen = candidates.stream().filter(d -> selectName.equals(ImageJson.text(d, "digest"))).toList();
            if (chosen.isEmpty()) {
                throw new BadInputException(source + " has no index.json entry " + selectName + " (it has: "
                        + String.join(", ", entryList(candidates)) + ")");
            }
        } else if (selectName != null) {
            chosen = new ArrayList<>();
            for (JsonNode d : candidates) {
                if (nameMatches(d, selectName)) {
                    chosen.add(d);
                }
            }
            boolean anyNamed = candidates.stream().anyMatch(d -> refName(d) != null);
            if (chosen.isEmpty() && (anyNamed || !onePlatformSet(candidates))) {
                throw new BadInputException(source + " has no image named '" + selectName + "' (it has: "
                        + String.join(", ", entryList(candidates)) + ")");
            }
            if (chosen.isEmpty()) {
                chosen = candidates;
            }
        }
        if (chosen.size() == 1) {
            return Descriptor.of(chosen.get(0), source + ": index.json entry");
        }
        Set<String> names = new LinkedHashSet<>();
        for (JsonNode d : chosen) {
            names.add(nameOf(d));
        }
        if (names.size() > 1) {
            throw new BadInputException(source + " holds several images (" + String.join(", ", entryList(chosen))
                    + "); name the one to use", "PATH:NAME, or PATH@sha256:DIGEST for an unnamed one");
        }
        if (!onePlatformSet(chosen)) {
            throw new BadInputException(source + " holds several images" + (names.contains(null) ? ""
                    : " named '" + names.iterator().next() + "'") + " that differ in something other than platform ("
                    + String.join(", ", entryList(chosen)) + ")", "pick one with PATH@sha256:DIGEST");
        }
        // The platforms of one image, listed in index.json itself.
        ArrayNode list = ImageJson.MAPPER.createArrayNode().addAll(chosen);
        ObjectNode pseudoIndex = ImageJson.MAPPER.createObjectNode();
        pseudoIndex.set("manifests", list);
        return Descriptor.of(Platforms.select(pseudoIndex, arch, source), source + ": index.json entry");
    }

    /** True when every entry has a platform and no two have the same one: the platforms of one image. */
    private static boolean onePlatformSet(List<JsonNode> entries) {
        Set<String> platforms = new LinkedHashSet<>();
        for (JsonNode d : entries) {
            if (!d.path("platform").isObject() || !platforms.add(Platforms.platformOf(d.path("platform")))) {
                return false;
            }
        }
        return true;
    }

    /** An entry's name (containerd's full name, else the ref name), or null. */
    private static String nameOf(JsonNode descriptor) {
        String name = ImageJson.text(descriptor.path("annotations"), CONTAINERD_NAME);
        return name != null ? name : refName(descriptor);
    }

    /** For messages: each entry as its name or digest, with its platform when it has one. */
    private static List<String> entryList(List<JsonNode> entries) {
        List<String> out = new ArrayList<>();
        for (JsonNode d : entries) {
            String name = nameOf(d);
            String label = name != null ? name : "unnamed " + ImageJson.text(d, "digest");
            out.add(d.path("platform").isObject() ? label + " [" + Platforms.platformOf(d.path("platform")) + "]"
                    : label);
        }
        return out;
    }

    private static String refName(JsonNode descriptor) {
        return ImageJson.text(descriptor.path("annotations"), REF_NAME);
    }

    private static boolean nameMatches(JsonNode descriptor, String selectName) {
        String ref = refName(descriptor);
        String full = ImageJson.text(descriptor.path("annotations"), CONTAINERD_NAME);
        return (ref != null && (ref.equals(selectName) || ImageNames.sameImage(ref, selectName)))
                || (full != null && ImageNames.sameImage(full, selectName));
    }

    static List<Digest> diffIds(JsonNode config, String what) throws BadInputException {
        JsonNode ids = config.path("rootfs").get("diff_ids");
        if (ids == null || !ids.isArray()) {
            throw new BadInputException(what + " has no rootfs.diff_ids list");
        }
        List<Digest> result = new ArrayList<>();
        for (JsonNode id : ids) {
            result.add(Digest.parse(id.isTextual() ? id.asText() : id.toString(), what + " diff_id"));
        }
        return result;
    }

    private String blobName(Descriptor d, String what) throws BadInputException {
        String name = files.canonical(d.layoutPath());
        if (name == null) {
            throw new BadInputException(source + ": blob " + d.digest() + " (" + what + ") is missing");
        }
        return name;
    }

    /** A manifest, index or config blob, checked against its descriptor. */
    private byte[] readBlob(Descriptor d, String what) throws IOException, BadInputException {
        byte[] bytes = files.readSmall(blobName(d, what), "blob " + d.digest() + " (" + what + ")",
                ImageJson.MAX_JSON_BYTES);
        Digest actual = Digest.of(bytes);
        if (!actual.equals(d.digest())) {
            throw new BadInputException(source + ": blob " + d.digest() + " (" + what + "): digest mismatch: content is "
                    + actual);
        }
        if (d.size() >= 0 && d.size() != bytes.length) {
            throw new BadInputException(source + ": blob " + d.digest() + " (" + what + "): size mismatch: descriptor says "
                    + d.size() + " bytes, blob has " + bytes.length);
        }
        return bytes;
    }

    /** Streams every layer into the cache, which checks digest and size (also of blobs it already has). */
    private void copyLayers(List<Descriptor> layers) throws IOException, BadInputException {
        Map<String, Descriptor> byName = new LinkedHashMap<>();
        for (Descriptor d : layers) {
            byName.putIfAbsent(blobName(d, "layer"), d);
        }
        files.stream(byName.keySet(), (name, in) -> {
            Descriptor d = byName.get(name);
            cache.put(d.digest(), d.size(), in, source + ": blob " + d.digest() + " (layer)");
        });
    }
}
