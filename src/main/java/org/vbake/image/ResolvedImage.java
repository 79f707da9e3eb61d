package org.vbake.image;

import java.nio.file.Path;
import java.util.List;

/**
 * One single-platform image, resolved on the host and ready to hand to the guest: the exact
 * config bytes (so the engine derives the upstream image ID from them), the original manifest
 * bytes when there was one (so its digest is the upstream RepoDigest), and every layer blob
 * verified and stored in the {@link BlobCache}.
 *
 * @param source          for messages: {@code "oci-archive /x/y.tar"}, {@code "registry 127.0.0.1:5000/a/b@sha256:.."}
 * @param repository      normalised repository ({@code docker.io/library/alpine}) or null when the source names none
 * @param tags            full references to tag the image with ({@code docker.io/library/alpine:3.20}); may be empty
 * @param manifestDigest  digest of {@code manifestBytes}; null when the source had no manifest (docker-archive)
 * @param manifestBytes   the manifest exactly as the source holds it; null for docker-archive sources
 * @param manifestMediaType OCI or docker schema2 manifest media type; null with manifestBytes
 * @param configDigest    sha256 of {@code configBytes}: the image ID
 * @param configBytes     the image config exactly as the source holds it
 * @param os              from the config ({@code linux})
 * @param architecture    from the config ({@code arm64}, {@code amd64})
 * @param variant         from the config or the index entry, may be null
 * @param layers          bottom first
 */
public record ResolvedImage(
        String source,
        String repository,
        List<String> tags,
        Digest manifestDigest,
        byte[] manifestBytes,
        String manifestMediaType,
        Digest configDigest,
        byte[] configBytes,
        String os,
        String architecture,
        String variant,
        List<Layer> layers) {

    public ResolvedImage {
        tags = List.copyOf(tags);
        layers = List.copyOf(layers);
    }

    /**
     * One layer.
     *
     * @param digest    digest of the blob as stored (compressed or not)
     * @param mediaType as in the manifest (for docker-archive sources: the OCI tar media type, or +gzip when gzipped)
     * @param size      blob size in bytes
     * @param diffId    digest of the uncompressed tar, from the config's rootfs.diff_ids
     * @param blob      the verified blob in the cache
     */
    public record Layer(Digest digest, String mediaType, long size, Digest diffId, Path blob) {
    }

    public long totalLayerBytes() {
        return layers.stream().mapToLong(Layer::size).sum();
    }

    public String platform() {
        return os + "/" + architecture + (variant != null ? "/" + variant : "");
    }

    public ResolvedImage withSource(String newSource) {
        return new ResolvedImage(newSource, repository, tags, manifestDigest, manifestBytes, manifestMediaType,
                configDigest, configBytes, os, architecture, variant, layers);
    }

    public ResolvedImage withTags(List<String> newTags) {
        return new ResolvedImage(source, repository, newTags, manifestDigest, manifestBytes, manifestMediaType,
                configDigest, configBytes, os, architecture, variant, layers);
    }
}
