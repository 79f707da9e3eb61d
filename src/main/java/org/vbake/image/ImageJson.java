package org.vbake.image;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import org.vbake.api.BadInputException;

/** Parsing of the small JSON documents of an image (index, manifest, config) as bad-input-safe trees. */
final class ImageJson {

    static final ObjectMapper MAPPER = new ObjectMapper();

    /** Manifests and configs above this are refused rather than read into memory. */
    static final long MAX_JSON_BYTES = 16L << 20;

    private ImageJson() {
    }

    /** Parses {@code bytes} as a JSON object; anything else is bad input naming {@code what}. */
    static JsonNode object(byte[] bytes, String what) throws BadInputException {
        JsonNode node = parse(bytes, what);
        if (!node.isObject()) {
            throw new BadInputException(what + " is not a JSON object");
        }
        return node;
    }

    static JsonNode parse(byte[] bytes, String what) throws BadInputException {
        try {
            JsonNode node = MAPPER.readTree(bytes);
            if (node == null || node.isMissingNode()) {
                throw new BadInputException(what + " is empty, not JSON");
            }
            return node;
        } catch (JsonProcessingException e) {
            String problem = e.getOriginalMessage().lines().findFirst().orElse("");
            throw new BadInputException(what + " is not valid JSON: " + problem);
        } catch (IOException e) {
            throw new BadInputException(what + " is not valid JSON: " + e.getMessage());
        }
    }

    /** A non-empty text field, or null. */
    static String text(JsonNode node, String field) {
        JsonNode v = node == null ? null : node.get(field);
        return v != null && v.isTextual() && !v.asText().isEmpty() ? v.asText() : null;
    }

    /**
     * A content descriptor: {@code {"mediaType", "digest", "size"}}.
     *
     * @param size -1 when the descriptor gives none
     */
    record Descriptor(String mediaType, Digest digest, long size, JsonNode node) {

        static Descriptor of(JsonNode node, String what) throws BadInputException {
            if (node == null || !node.isObject()) {
                throw new BadInputException(what + " is not a descriptor object");
            }
            Digest digest = Digest.parse(text(node, "digest"), what);
            JsonNode size = node.get("size");
            long n = -1;
            if (size != null) {
                if (!size.canConvertToLong() || !size.isIntegralNumber() || size.asLong() < 0) {
                    throw new BadInputException(what + ": size " + size + " is not a byte count");
                }
                n = size.asLong();
            }
            return new Descriptor(text(node, "mediaType"), digest, n, node);
        }

        /** The path of this blob inside an OCI image layout. */
        String layoutPath() {
            return "blobs/sha256/" + digest.hex();
        }
    }
}
