package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.regex.Pattern;
import org.vbake.api.BadInputException;

/** A content digest as written in OCI and docker manifests: {@code sha256:<64 hex>}. Only sha256 is used. */
public record Digest(String hex) implements Comparable<Digest> {

    private static final Pattern HEX = Pattern.compile("[0-9a-f]{64}");

    public Digest {
        if (hex == null || !HEX.matcher(hex).matches()) {
            throw new IllegalArgumentException("not a sha256 hex digest: " + hex);
        }
    }

    /** Parses {@code sha256:<hex>}; anything else is bad input naming {@code what}. */
    public static Digest parse(String text, String what) throws BadInputException {
        if (text == null || !text.startsWith("sha256:") || !HEX.matcher(text.substring(7)).matches()) {
            throw new BadInputException(what + ": '" + text + "' is not a sha256 digest (sha256:<64 hex digits>)");
        }
        return new Digest(text.substring(7));
    }

    public static Digest of(byte[] content) {
        return new Digest(HexFormat.of().formatHex(sha256().digest(content)));
    }

    /** Reads {@code in} to the end. */
    public static Digest of(InputStream in) throws IOException {
        MessageDigest md = sha256();
        byte[] buf = new byte[1 << 16];
        for (int n; (n = in.read(buf)) > 0; ) {
            md.update(buf, 0, n);
        }
        return new Digest(HexFormat.of().formatHex(md.digest()));
    }

    public static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    public static Digest fromMessageDigest(MessageDigest md) {
        return new Digest(HexFormat.of().formatHex(md.digest()));
    }

    /** The first 12 hex digits, as docker shows image IDs. */
    public String shortId() {
        return hex.substring(0, 12);
    }

    @Override
    public int compareTo(Digest o) {
        return hex.compareTo(o.hex);
    }

    @Override
    public String toString() {
        return "sha256:" + hex;
    }
}
