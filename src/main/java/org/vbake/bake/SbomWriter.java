package org.vbake.bake;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import org.vbake.bake.ContentListing.Entry;
import org.vbake.bake.Packages.Distro;
import org.vbake.bake.Packages.Package;
import org.vbake.image.Digest;
import org.vbake.image.ResolvedImage;

/**
 * A CycloneDX 1.5 SBOM of a baked storage tree: one container component per image, the image's OS
 * packages nested in it. Same input, same bytes: the serial number is derived from a seed and
 * there is no timestamp unless a {@code SOURCE_DATE_EPOCH} is passed in.
 */
public final class SbomWriter {

    public static final String SPEC_VERSION = "1.5";
    /** The name of the storage component when the caller gives none. */
    public static final String DEFAULT_NAME = "vbake-storage";

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private SbomWriter() {
    }

    /** As {@link #cycloneDx(List, String, String, Long)} named {@value #DEFAULT_NAME}, without a timestamp. */
    public static byte[] cycloneDx(List<Entry> images, String serialSeed) {
        return cycloneDx(images, DEFAULT_NAME, serialSeed, null);
    }

    /**
     * The SBOM as pretty-printed UTF-8 JSON with a trailing newline.
     *
     * @param images          the baked images, in the order they are listed
     * @param name            name of the {@code metadata.component} (type {@code data}) that stands for the storage tree
     * @param serialSeed      the serial number is the name-based (v3) UUID of these UTF-8 bytes; null derives
     *                        it from the content listing of {@code images}, so that a different bake gets a
     *                        different serial
     * @param sourceDateEpoch seconds since the epoch for {@code metadata.timestamp}; null for no timestamp
     */
    public static byte[] cycloneDx(List<Entry> images, String name, String serialSeed, Long sourceDateEpoch) {
        String seed = serialSeed != null ? serialSeed
                : Digest.of(ContentListing.toBytes(ContentListing.listing(images))).toString();
        UUID serial = UUID.nameUUIDFromBytes(seed.getBytes(StandardCharsets.UTF_8));

        ObjectNode bom = NODES.objectNode();
        bom.put("$schema", "http://cyclonedx.org/schema/bom-1.5.schema.json");
        bom.put("bomFormat", "CycloneDX");
        bom.put("specVersion", SPEC_VERSION);
        bom.put("serialNumber", "urn:uuid:" + serial);
        bom.put("version", 1);

        ObjectNode metadata = bom.putObject("metadata");
        if (sourceDateEpoch != null) {
            metadata.put("timestamp", Instant.ofEpochSecond(sourceDateEpoch).toString());
        }
        ObjectNode tool = metadata.putObject("tools").putArray("components").addObject();
        tool.put("type", "application");
        tool.put("name", "vbake");
        ObjectNode storage = metadata.putObject("component");
        storage.put("type", "data");
        storage.put("bom-ref", "storage");
        storage.put("name", name);

        ArrayNode components = bom.putArray("components");
        Set<String> refs = new HashSet<>();
        for (int i = 0; i < images.size(); i++) {
            components.add(container(images.get(i), "image-" + (i + 1), refs));
        }
        return ContentListing.toBytes(bom);
    }

    private static ObjectNode container(Entry entry, String ref, Set<String> refs) {
        ResolvedImage image = entry.image();
        refs.add(ref);
        String repository = repository(entry);
        ObjectNode c = NODES.objectNode();
        c.put("type", "container");
        c.put("bom-ref", ref);
        c.put("name", !entry.references().isEmpty() ? entry.references().get(0)
                : repository != null ? repository : image.configDigest().toString());
        c.put("version", image.configDigest().toString());
        String purl = ociPurl(entry, repository);
        if (purl != null) {
            c.put("purl", purl);
        }
        ObjectNode hash = c.putArray("hashes").addObject();
        hash.put("alg", "SHA-256");
        hash.put("content", image.configDigest().hex());

        ArrayNode properties = c.putArray("properties");
        property(properties, "vbake:platform", image.platform());
        for (String reference : entry.references()) {
            property(properties, "vbake:reference", reference);
        }
        if (image.manifestDigest() != null) {
            property(properties, "vbake:manifestDigest", image.manifestDigest().toString());
        }
        if (entry.repoDigest() != null) {
            property(properties, "vbake:repoDigest", entry.repoDigest().toString());
        }
        for (String note : entry.notes()) {
            property(properties, "vbake:note", note);
        }

        ArrayNode packages = c.putArray("components");
        for (Package p : entry.packages().stream().sorted(Packages.ORDER).toList()) {
            packages.add(library(p, entry.distro(), ref, refs));
        }
        return c;
    }

    private static ObjectNode library(Package p, Distro distro, String imageRef, Set<String> refs) {
        String purl = packagePurl(p, distro);
        String base = imageRef + ":" + (purl != null ? purl : p.type() + "/" + p.name() + "@" + p.version());
        String ref = base;
        for (int n = 2; !refs.add(ref); n++) {
            ref = base + "#" + n;
        }
        ObjectNode c = NODES.objectNode();
        c.put("type", "library");
        c.put("bom-ref", ref);
        c.put("name", p.name());
        if (p.version() != null) {
            c.put("version", p.version());
        }
        if (purl != null) {
            c.put("purl", purl);
        }
        if (p.license() != null && !p.license().isBlank()) {
            ObjectNode license = c.putArray("licenses").addObject();
            if (spdxExpression(p.license())) {
                license.put("expression", p.license());
            } else {
                license.putObject("license").put("name", p.license());
            }
        }
        ArrayNode properties = c.putArray("properties");
        property(properties, "vbake:packageType", p.type());
        if (p.sourcePackage() != null) {
            property(properties, "vbake:sourcePackage", p.sourcePackage());
        }
        return c;
    }

    private static void property(ArrayNode properties, String name, String value) {
        ObjectNode p = properties.addObject();
        p.put("name", name);
        p.put("value", value);
    }

    /**
     * Whether a package's license text is written as an SPDX license expression with more than one
     * license: operands shaped like SPDX ids ({@code GPL-2.0-or-later}, {@code LicenseRef-x}) joined by
     * the upper-case {@code AND}, {@code OR}, {@code WITH}, with balanced parentheses. Everything else,
     * a single name included, goes into {@code license.name}, which takes any text: a lone word such
     * as {@code GPLv2+} (Fedora's names before 2023) or {@code BSD} is not an SPDX id, and telling
     * them apart needs the SPDX list, which vbake does not carry. The old Fedora and RHEL style joins
     * names with a lower-case {@code and} and has spaces inside names ({@code ASL 2.0}), so it is
     * never taken for an expression.
     */
    static boolean spdxExpression(String license) {
        String[] tokens = license.replace("(", " ( ").replace(")", " ) ").strip().split("\\s+");
        int depth = 0;
        boolean operator = false;
        boolean expectOperand = true;
        for (String t : tokens) {
            switch (t) {
                case "(" -> {
                    if (!expectOperand) {
                        return false;
                    }
                    depth++;
                }
                case ")" -> {
                    if (expectOperand || --depth < 0) {
                        return false;
                    }
                }
                case "AND", "OR", "WITH" -> {
                    if (expectOperand) {
                        return false;
                    }
                    operator = true;
                    expectOperand = true;
                }
                default -> {
                    if (!expectOperand || !t.matches("[A-Za-z0-9][A-Za-z0-9.-]*\\+?")) {
                        return false;
                    }
                    expectOperand = false;
                }
            }
        }
        return operator && depth == 0 && !expectOperand;
    }

    /**
     * {@code pkg:deb/debian/libc6@2.36-9?arch=arm64&distro=debian-12&upstream=glibc}, {@code pkg:apk/alpine/..},
     * {@code pkg:rpm/fedora/bash@5.2.26-3.fc40?arch=x86_64&distro=fedora-40&epoch=1}; null for a type without a
     * purl mapping or a package without a version.
     *
     * <p>rpm follows the purl spec and syft: the version is {@code version-release}, the epoch a
     * qualifier; without an os-release the namespace (the vendor) is left out rather than guessed.
     */
    static String packagePurl(Package p, Distro distro) {
        String purlType;
        String namespace;
        String version = p.version();
        Map<String, String> qualifiers = new TreeMap<>();
        switch (p.type()) {
            case Packages.DPKG:
                purlType = "deb";
                namespace = distro != null ? distro.id() : "debian";
                break;
            case Packages.APK:
                purlType = "apk";
                namespace = distro != null ? distro.id() : "alpine";
                break;
            case Packages.RPM:
                purlType = "rpm";
                namespace = distro != null ? distro.id() : null;
                int colon = version == null ? -1 : version.indexOf(':');
                if (colon > 0 && version.substring(0, colon).chars().allMatch(Character::isDigit)) {
                    qualifiers.put("epoch", version.substring(0, colon));
                    version = version.substring(colon + 1);
                }
                break;
            default:
                return null;
        }
        if (version == null) {
            return null;
        }
        if (p.arch() != null) {
            qualifiers.put("arch", p.arch());
        }
        if (distro != null && distro.versionId() != null) {
            qualifiers.put("distro", distro.id() + "-" + distro.versionId());
        }
        if (p.sourcePackage() != null && !p.sourcePackage().equals(p.name())) {
            qualifiers.put("upstream", p.sourcePackage());
        }
        return "pkg:" + purlType + "/" + (namespace != null ? encode(namespace.toLowerCase(Locale.ROOT), false) + "/" : "")
                + encode(p.name(), false) + "@" + encode(version, false) + qualifiers(qualifiers);
    }

    /**
     * {@code pkg:oci/alpine@sha256%3A..?arch=arm64&repository_url=docker.io/library/alpine&tag=3.20}: the
     * version is the manifest digest (what the image can be pulled by), so an image known only by its
     * config (a docker-archive without a repo digest) gets none.
     */
    static String ociPurl(Entry entry, String repository) {
        Digest manifest = entry.repoDigest() != null ? entry.repoDigest() : entry.image().manifestDigest();
        if (manifest == null || repository == null) {
            return null;
        }
        String name = repository.substring(repository.lastIndexOf('/') + 1).toLowerCase(Locale.ROOT);
        Map<String, String> qualifiers = new TreeMap<>();
        qualifiers.put("arch", entry.image().architecture());
        qualifiers.put("repository_url", repository);
        String tag = entry.references().isEmpty() ? null : tag(entry.references().get(0));
        if (tag != null) {
            qualifiers.put("tag", tag);
        }
        return "pkg:oci/" + encode(name, false) + "@" + encode(manifest.toString(), false) + qualifiers(qualifiers);
    }

    /** The image's repository, else the first reference without tag and digest; null when neither is known. */
    static String repository(Entry entry) {
        if (entry.image().repository() != null) {
            return entry.image().repository();
        }
        if (entry.references().isEmpty()) {
            return null;
        }
        String ref = entry.references().get(0);
        int at = ref.indexOf('@');
        if (at >= 0) {
            ref = ref.substring(0, at);
        }
        int colon = ref.lastIndexOf(':');
        return colon > ref.lastIndexOf('/') ? ref.substring(0, colon) : ref;
    }

    private static String tag(String reference) {
        String ref = reference;
        int at = ref.indexOf('@');
        if (at >= 0) {
            ref = ref.substring(0, at);
        }
        int colon = ref.lastIndexOf(':');
        return colon > ref.lastIndexOf('/') ? ref.substring(colon + 1) : null;
    }

    private static String qualifiers(Map<String, String> sorted) {
        StringBuilder b = new StringBuilder();
        for (Map.Entry<String, String> q : sorted.entrySet()) {
            b.append(b.length() == 0 ? '?' : '&').append(q.getKey()).append('=').append(encode(q.getValue(), true));
        }
        return b.toString();
    }

    /**
     * Percent-encodes all but RFC 3986 unreserved characters (and '/' inside qualifier values, as the
     * purl spec writes {@code repository_url}); so {@code sha256:} becomes {@code sha256%3A} and
     * {@code 1:2.3+dfsg} becomes {@code 1%3A2.3%2Bdfsg}.
     */
    static String encode(String s, boolean keepSlash) {
        StringBuilder b = new StringBuilder();
        for (byte by : s.getBytes(StandardCharsets.UTF_8)) {
            int c = by & 0xff;
            boolean unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                    || c == '-' || c == '.' || c == '_' || c == '~' || (keepSlash && c == '/');
            if (unreserved) {
                b.append((char) c);
            } else {
                b.append('%').append(Character.toUpperCase(Character.forDigit(c >> 4, 16)))
                        .append(Character.toUpperCase(Character.forDigit(c & 0xf, 16)));
            }
        }
        return b.toString();
    }
}
