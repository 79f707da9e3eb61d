package org.vbake.image;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.LinkedHashSet;
import java.util.Set;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;

/**
 * Chooses the image for a target arch from a multi-platform index and refuses single-platform
 * images built for another arch. Works on parsed JSON only, so local sources and the registry
 * client share it.
 */
public final class Platforms {

    public static final String ALLOW_MISMATCH_HINT = "pass --allow-arch-mismatch to import it anyway";

    private static final String REFERENCE_TYPE = "vnd.docker.reference.type";

    private Platforms() {
    }

    /**
     * Returns the descriptor (an element of {@code index.manifests}) for linux on {@code arch}: for
     * arm64 the variant must be absent or {@code v8}; for amd64 an entry without variant (or
     * {@code v1}) is preferred over {@code v2}/{@code v3}. Attestation entries are skipped.
     *
     * @param index a parsed OCI image index or docker manifest list
     * @param where names the index in messages: {@code "oci-archive /x/y.tar"}
     */
    public static JsonNode select(JsonNode index, Arch arch, String where) throws BadInputException {
        JsonNode manifests = index == null ? null : index.get("manifests");
        if (manifests == null || !manifests.isArray()) {
            throw new BadInputException(where + ": not an image index (it has no \"manifests\" list)");
        }
        Set<String> available = new LinkedHashSet<>();
        JsonNode best = null;
        int bestRank = Integer.MAX_VALUE;
        for (JsonNode descriptor : manifests) {
            if (!descriptor.isObject() || isAttestation(descriptor)) {
                continue;
            }
            JsonNode platform = descriptor.path("platform");
            String os = text(platform, "os");
            String architecture = text(platform, "architecture");
            String variant = text(platform, "variant");
            available.add(platformString(os, architecture, variant));
            int rank = rank(arch, os, architecture, variant);
            if (rank < bestRank) {
                best = descriptor;
                bestRank = rank;
            }
        }
        if (best == null) {
            throw new BadInputException(where + " has no linux/" + arch.ociArch() + " image (it has: "
                    + (available.isEmpty() ? "no images" : String.join(", ", available)) + ")");
        }
        return best;
    }

    /**
     * Refuses an image config whose os/architecture is not linux on {@code arch}, unless
     * {@code allowMismatch}.
     */
    public static void checkConfig(JsonNode config, Arch arch, boolean allowMismatch, String where)
            throws BadInputException {
        if (matches(config, arch) || allowMismatch) {
            return;
        }
        throw new BadInputException(where + " is a " + platformOf(config) + " image, not linux/" + arch.ociArch(),
                ALLOW_MISMATCH_HINT);
    }

    /** True when the config (or a descriptor's platform object) says linux on {@code arch}. */
    public static boolean matches(JsonNode configOrPlatform, Arch arch) {
        return "linux".equals(text(configOrPlatform, "os"))
                && arch.ociArch().equals(text(configOrPlatform, "architecture"));
    }

    /** {@code os/architecture[/variant]} of a config or platform object; unknown parts say so. */
    public static String platformOf(JsonNode configOrPlatform) {
        return platformString(text(configOrPlatform, "os"), text(configOrPlatform, "architecture"),
                text(configOrPlatform, "variant"));
    }

    /** Buildkit's provenance and SBOM entries, which are not runnable images. */
    public static boolean isAttestation(JsonNode descriptor) {
        JsonNode platform = descriptor.path("platform");
        return "attestation-manifest".equals(text(descriptor.path("annotations"), REFERENCE_TYPE))
                || ("unknown".equals(text(platform, "os")) && "unknown".equals(text(platform, "architecture")));
    }

    /** Lower is better; {@link Integer#MAX_VALUE} means unusable. */
    private static int rank(Arch arch, String os, String architecture, String variant) {
        if (!"linux".equals(os) || !arch.ociArch().equals(architecture)) {
            return Integer.MAX_VALUE;
        }
        switch (arch) {
            case AARCH64:
                return variant == null || variant.equals("v8") ? 0 : Integer.MAX_VALUE;
            case X86_64:
                return variant == null || variant.equals("v1") ? 0 : 1;
            default:
                return Integer.MAX_VALUE;
        }
    }

    private static String platformString(String os, String architecture, String variant) {
        return (os == null ? "unknown" : os) + "/" + (architecture == null ? "unknown" : architecture)
                + (variant == null ? "" : "/" + variant);
    }

    private static String text(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        return v != null && v.isTextual() && !v.asText().isEmpty() ? v.asText() : null;
    }
}
