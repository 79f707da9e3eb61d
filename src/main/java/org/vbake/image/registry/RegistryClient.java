package org.vbake.image.registry;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.channels.UnresolvedAddressException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;
import javax.net.ssl.SSLException;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.BlobCache;
import org.vbake.image.Digest;
import org.vbake.image.MediaTypes;
import org.vbake.image.Platforms;
import org.vbake.image.ResolvedImage;

/**
 * Pulls one platform of an image from a registry over the distribution API v2 into the
 * {@link BlobCache}, keeping the manifest and config bytes exactly as the registry serves them, so
 * the manifest digest and the image ID (the config digest) equal upstream's. Everything fetched by
 * digest is verified; what is already in the cache is not fetched again, so a pull pinned by
 * digest that was done once works offline.
 *
 * <p>Redirects are followed here, not by the {@link HttpClient}, so that the registry's
 * {@code Authorization} never reaches another host (docker.io sends blobs from a CDN).
 */
public final class RegistryClient {

    private static final Set<String> SCHEMA1 = Set.of(
            "application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws");
    private static final List<String> MANIFEST_TYPES = List.of(
            MediaTypes.OCI_INDEX, MediaTypes.DOCKER_MANIFEST_LIST, MediaTypes.OCI_MANIFEST, MediaTypes.DOCKER_MANIFEST);
    private static final String ACCEPT = String.join(", ", MANIFEST_TYPES);
    private static final Set<String> LAYER_TYPES = Set.of(
            MediaTypes.OCI_LAYER,
            MediaTypes.OCI_LAYER_GZIP,
            MediaTypes.OCI_LAYER_ZSTD,
            MediaTypes.DOCKER_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.diff.tar");

    /** Docker refuses manifests above 4 MiB too. */
    static final int MAX_MANIFEST_BYTES = 4 << 20;
    static final int MAX_CONFIG_BYTES = 16 << 20;
    private static final int MAX_SMALL_BODY_BYTES = 1 << 20;
    private static final int MAX_REDIRECTS = 10;
    private static final int MAX_INDEX_DEPTH = 2;
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(30);
    static final Duration RESPONSE_TIMEOUT = Duration.ofSeconds(60);
    static final Duration IDLE_TIMEOUT = Duration.ofSeconds(60);
    private static final String USER_AGENT = "vbake";
    private static final Pattern LOOPBACK_V4 = Pattern.compile("127\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}");
    private static final ObjectMapper JSON = new ObjectMapper();

    /**
     * One pull's outcome.
     *
     * @param image       the platform image; its manifestDigest is the platform manifest's
     * @param repoDigest  the digest a user writes after {@code @} to get this again: the index's when
     *                    the reference named an index (as docker records RepoDigests), else the manifest's
     * @param indexDigest the index's digest, or null when the reference named a single manifest
     */
    public record Result(ResolvedImage image, Digest repoDigest, Digest indexDigest) {

        /** {@code docker.io/library/alpine@sha256:..}: the reproducible spelling of what was pulled. */
        public String pinnedReference() {
            return image.repository() + "@" + repoDigest;
        }
    }

    private final HttpClient http;
    private final Set<String> insecureRegistries;
    private final RegistryAuth auth;
    private final EventListener events;
    private final Duration responseTimeout;
    private final Duration idleTimeout;
    private final boolean plainHttpForLoopback;
    /** {@code Authorization} header values by {@code apiHost/repository}, reused until refused. */
    private final Map<String, String> authorizations = new ConcurrentHashMap<>();

    /** With {@link #defaultHttpClient()}. */
    public RegistryClient(Set<String> insecureRegistries, RegistryAuth auth, EventListener events) {
        this(defaultHttpClient(), insecureRegistries, auth, events);
    }

    /**
     * @param http               must not follow redirects ({@link HttpClient.Redirect#NEVER})
     * @param insecureRegistries registries ({@code host[:port]}) spoken to over plain http; loopback
     *                           registries always are, as with docker
     */
    public RegistryClient(HttpClient http, Set<String> insecureRegistries, RegistryAuth auth, EventListener events) {
        this(http, insecureRegistries, auth, events, RESPONSE_TIMEOUT, IDLE_TIMEOUT, true);
    }

    RegistryClient(HttpClient http, Set<String> insecureRegistries, RegistryAuth auth, EventListener events,
            Duration responseTimeout, Duration idleTimeout, boolean plainHttpForLoopback) {
        if (http.followRedirects() != HttpClient.Redirect.NEVER) {
            throw new IllegalArgumentException("the HttpClient must not follow redirects: RegistryClient follows "
                    + "them itself so that credentials stay with the registry");
        }
        this.http = http;
        Set<String> insecure = new HashSet<>();
        for (String r : insecureRegistries) {
            insecure.add(r.replaceFirst("^(?i)https?://", "").replaceAll("/+$", "").toLowerCase(Locale.ROOT));
        }
        this.insecureRegistries = Set.copyOf(insecure);
        this.auth = auth;
        this.events = events;
        this.responseTimeout = responseTimeout;
        this.idleTimeout = idleTimeout;
        this.plainHttpForLoopback = plainHttpForLoopback;
    }

    private volatile boolean offline;

    /**
     * From now on, answer only from the blob cache: anything that needs the network fails with an
     * error naming what is missing (for {@code bake --offline}). Only digest-pinned references can
     * be resolved this way.
     */
    public RegistryClient offline() {
        this.offline = true;
        return this;
    }

    /**
     * A client that also trusts {@code caCert} (a PEM file of one or more certificates, for a
     * registry with a CA of its own; null for the JDK's CAs only) and, with
     * {@code tlsForLoopback}, speaks https to loopback registries too (unless named insecure).
     */
    public static RegistryClient create(Set<String> insecureRegistries, RegistryAuth auth, EventListener events,
            java.nio.file.Path caCert, boolean tlsForLoopback) throws BadInputException {
        HttpClient http = caCert == null ? defaultHttpClient() : HttpClient.newBuilder()
                .connectTimeout(CONNECT_TIMEOUT)
                .followRedirects(HttpClient.Redirect.NEVER)
                .sslContext(trusting(caCert))
                .build();
        return new RegistryClient(http, insecureRegistries, auth, events, RESPONSE_TIMEOUT, IDLE_TIMEOUT,
                !tlsForLoopback);
    }

    /** The JDK's CAs plus those in {@code pem}. */
    static javax.net.ssl.SSLContext trusting(java.nio.file.Path pem) throws BadInputException {
        try {
            java.security.KeyStore ks = java.security.KeyStore.getInstance(java.security.KeyStore.getDefaultType());
            java.nio.file.Path cacerts = java.nio.file.Path.of(System.getProperty("java.home"), "lib", "security",
                    "cacerts");
            if (java.nio.file.Files.isRegularFile(cacerts)) {
                try (java.io.InputStream in = java.nio.file.Files.newInputStream(cacerts)) {
                    ks.load(in, "changeit".toCharArray());
                }
            } else {
                ks.load(null, null);
            }
            java.util.Collection<? extends java.security.cert.Certificate> certs;
            try (java.io.InputStream in = java.nio.file.Files.newInputStream(pem)) {
                certs = java.security.cert.CertificateFactory.getInstance("X.509").generateCertificates(in);
            }
            if (certs.isEmpty()) {
                throw new BadInputException("--ca-cert " + pem + ": holds no certificate");
            }
            int i = 0;
            for (java.security.cert.Certificate c : certs) {
                ks.setCertificateEntry("vbake-ca-" + i++, c);
            }
            javax.net.ssl.TrustManagerFactory tmf = javax.net.ssl.TrustManagerFactory.getInstance(
                    javax.net.ssl.TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            javax.net.ssl.SSLContext ctx = javax.net.ssl.SSLContext.getInstance("TLS");
            ctx.init(null, tmf.getTrustManagers(), null);
            return ctx;
        } catch (java.nio.file.NoSuchFileException e) {
            throw new BadInputException("--ca-cert " + pem + ": no such file");
        } catch (java.io.IOException | java.security.GeneralSecurityException e) {
            throw new BadInputException("--ca-cert " + pem + ": not a PEM certificate (" + e.getMessage() + ")");
        }
    }

    /** Connect timeout 30 s; redirects are left to the RegistryClient. */
    public static HttpClient defaultHttpClient() {
        return HttpClient.newBuilder()
                .connectTimeout(CONNECT_TIMEOUT)
                .followRedirects(HttpClient.Redirect.NEVER)
                .build();
    }

    /**
     * Resolves {@code ref} to its linux/{@code arch} image and stores the manifest(s), the config and
     * every layer in {@code cache}. An index is narrowed to the platform's entry; a single manifest
     * must be for that arch unless {@code allowArchMismatch}.
     *
     * @throws BadInputException for a wrong reference, a missing image or platform, refused access,
     *                           content that does not match its digest, an unreachable registry
     * @throws VbakeException    (exit 1) when the registry fails (5xx, rate limit) or a transfer breaks
     */
    public Result resolve(ImageRef ref, Arch arch, boolean allowArchMismatch, BlobCache cache)
            throws VbakeException {
        long started = System.nanoTime();
        String what = ref.toString();
        Manifest manifest = fetchManifest(ref, ref.reference(), ref.digest(), -1, cache, what);
        Digest indexDigest = null;
        String indexVariant = null;
        for (int depth = 0; manifest.isIndex(); depth++) {
            if (depth == MAX_INDEX_DEPTH) {
                throw new BadInputException(what + ": image indexes are nested more than " + MAX_INDEX_DEPTH + " deep");
            }
            if (indexDigest == null) {
                indexDigest = manifest.digest();
            }
            JsonNode entry = Platforms.select(manifest.json(), arch, what);
            Digest entryDigest = Digest.parse(entry.path("digest").asText(null),
                    what + ": index entry for linux/" + arch.ociArch());
            indexVariant = entry.path("platform").path("variant").asText(null);
            events.on(new Event.Debug(what + ": linux/" + arch.ociArch() + " is " + entryDigest));
            manifest = fetchManifest(ref, entryDigest.toString(), entryDigest, entry.path("size").asLong(-1), cache,
                    what + " linux/" + arch.ociArch() + " manifest " + entryDigest);
        }
        Digest repoDigest = indexDigest != null ? indexDigest : manifest.digest();

        JsonNode configDescriptor = manifest.json().path("config");
        String configType = configDescriptor.path("mediaType").asText("");
        if (!MediaTypes.isConfig(configType)) {
            throw new BadInputException(what + " is not a container image (its config media type is '" + configType + "')");
        }
        Digest configDigest = Digest.parse(configDescriptor.path("digest").asText(null), what + ": config digest");
        byte[] configBytes = fetchConfig(ref, configDigest, configDescriptor.path("size").asLong(-1), cache, what);
        JsonNode config = parseJson(configBytes, what + ": image config");
        String os = config.path("os").asText(null);
        String architecture = config.path("architecture").asText(null);
        String variant = config.path("variant").asText(indexVariant);
        Platforms.checkConfig(config, arch, allowArchMismatch, what);

        List<ResolvedImage.Layer> layers = fetchLayers(ref, manifest.json(), config, cache, what);
        ResolvedImage image = new ResolvedImage(
                "registry " + ref,
                ref.name(),
                ref.tag() != null ? List.of(ref.name() + ":" + ref.tag()) : List.of(),
                manifest.digest(),
                manifest.bytes(),
                manifest.mediaType(),
                configDigest,
                configBytes,
                os,
                architecture,
                variant,
                layers);
        if (ref.digest() == null) {
            events.on(new Event.Progress("warning: " + what + " is not pinned by digest; pin it as "
                    + ref.name() + "@" + repoDigest + " for reproducible builds"));
        }
        events.on(new Event.Phase("pull " + what, Duration.ofNanos(System.nanoTime() - started)));
        return new Result(image, repoDigest, indexDigest);
    }

    /** A manifest or index exactly as served, with its digest and what it is. */
    private record Manifest(Digest digest, byte[] bytes, String mediaType, JsonNode json) {
        boolean isIndex() {
            return MediaTypes.isIndex(mediaType);
        }
    }

    private Manifest fetchManifest(ImageRef ref, String reference, Digest expected, long expectedSize,
            BlobCache cache, String what) throws VbakeException {
        byte[] bytes;
        String headerType = null;
        if (expected != null && cache.contains(expected)) {
            bytes = readCached(cache, expected, what);
            events.on(new Event.Debug(what + ": manifest " + expected + " is cached"));
        } else {
            String headerDigest;
            try (Response r = get(ref, "/manifests/" + reference, ACCEPT, what)) {
                requireOk(r, ref, what, what + ": not found in " + ref.registry());
                bytes = readAtMost(r, MAX_MANIFEST_BYTES, what);
                headerType = r.headers().firstValue("Content-Type").map(RegistryClient::bareMediaType).orElse(null);
                headerDigest = r.headers().firstValue("Docker-Content-Digest").orElse(null);
            }
            Digest actual = Digest.of(bytes);
            if (expected != null && !actual.equals(expected)) {
                throw digestMismatch(what, expected, actual);
            }
            if (expected == null && headerDigest != null && headerDigest.startsWith("sha256:")
                    && !headerDigest.equals(actual.toString())) {
                throw new BadInputException(what + ": digest mismatch: the registry says the manifest is "
                        + headerDigest + ", its content is " + actual);
            }
            if (expectedSize >= 0 && bytes.length != expectedSize) {
                throw new BadInputException(what + ": size mismatch: the index says " + expectedSize
                        + " bytes, the registry sent " + bytes.length);
            }
            put(cache, bytes, what);
        }
        JsonNode json = parseJson(bytes, what + ": manifest");
        String mediaType = json.path("mediaType").asText(null);
        if (mediaType == null) {
            mediaType = headerType;
        }
        if ((mediaType != null && SCHEMA1.contains(mediaType)) || json.path("schemaVersion").asInt(2) == 1) {
            throw new BadInputException(what + ": schema1 manifests are not supported",
                    "push the image again with a current docker, podman or buildah; they write schema2 or OCI manifests");
        }
        if (mediaType == null || !MANIFEST_TYPES.contains(mediaType)) {
            // OCI allows omitting mediaType; fall back to the shape when the header is no help either.
            if (json.has("manifests")) {
                mediaType = MediaTypes.OCI_INDEX;
            } else if (json.has("config") && json.has("layers")) {
                mediaType = MediaTypes.OCI_MANIFEST;
            } else {
                throw new BadInputException(what + ": unsupported manifest media type '" + mediaType + "'");
            }
        }
        return new Manifest(Digest.of(bytes), bytes, mediaType, json);
    }

    private byte[] fetchConfig(ImageRef ref, Digest digest, long size, BlobCache cache, String what)
            throws VbakeException {
        String configWhat = what + " config " + digest;
        if (cache.contains(digest)) {
            return readCached(cache, digest, configWhat);
        }
        byte[] bytes;
        try (Response r = getBlob(ref, digest, configWhat)) {
            bytes = readAtMost(r, MAX_CONFIG_BYTES, configWhat);
        }
        try {
            cache.put(digest, size, new ByteArrayInputStream(bytes), configWhat);
        } catch (IOException e) {
            throw cacheFailed(configWhat, e);
        }
        return bytes;
    }

    private List<ResolvedImage.Layer> fetchLayers(ImageRef ref, JsonNode manifest, JsonNode config,
            BlobCache cache, String what) throws VbakeException {
        JsonNode layerNodes = manifest.path("layers");
        JsonNode diffIds = config.path("rootfs").path("diff_ids");
        if (!layerNodes.isArray() || !diffIds.isArray() || layerNodes.size() != diffIds.size()) {
            throw new BadInputException(what + ": the manifest lists " + layerNodes.size()
                    + " layers but the config has " + diffIds.size() + " diff_ids");
        }
        int count = layerNodes.size();
        long total = 0;
        for (JsonNode l : layerNodes) {
            total += Math.max(0, l.path("size").asLong(0));
        }
        events.on(new Event.Progress("pulling " + what + ": " + count + " layer" + (count == 1 ? "" : "s")
                + ", " + humanSize(total)));
        List<ResolvedImage.Layer> layers = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            JsonNode l = layerNodes.get(i);
            String mediaType = l.path("mediaType").asText("");
            Digest digest = Digest.parse(l.path("digest").asText(null), what + ": layer " + (i + 1) + " digest");
            Digest diffId = Digest.parse(diffIds.get(i).asText(null), what + ": diff_id " + (i + 1));
            long size = l.path("size").asLong(-1);
            if (!LAYER_TYPES.contains(mediaType)) {
                throw new BadInputException(what + ": layer " + digest + " has media type '" + mediaType
                        + "', which is not a linux image layer vbake can use");
            }
            if (size < 0) {
                throw new BadInputException(what + ": layer " + digest + " has no size in the manifest");
            }
            String line = "pulling " + what + ": layer " + (i + 1) + "/" + count + " sha256:" + digest.shortId()
                    + " (" + humanSize(size) + ")";
            if (cache.contains(digest)) {
                events.on(new Event.Progress(line + " cached"));
            } else {
                events.on(new Event.Progress(line));
                String layerWhat = what + " layer " + digest;
                try (Response r = getBlob(ref, digest, layerWhat)) {
                    cache.put(digest, size, r.body(), layerWhat);
                } catch (IOException e) {
                    throw transferFailed(layerWhat, e);
                }
            }
            layers.add(new ResolvedImage.Layer(digest, mediaType, size, diffId, cache.path(digest)));
        }
        return layers;
    }

    private Response getBlob(ImageRef ref, Digest digest, String what) throws VbakeException {
        Response r = get(ref, "/blobs/" + digest, null, what);
        try {
            requireOk(r, ref, what, what + ": not found in " + ref.registry());
        } catch (VbakeException e) {
            r.close();
            throw e;
        }
        return r;
    }

    // ---- HTTP with auth and redirects ----

    /** A response whose body stalls into an exception rather than a hang. */
    private record Response(int status, HttpHeaders headers, InputStream body, URI uri) implements AutoCloseable {
        @Override
        public void close() {
            try {
                body.close();
            } catch (IOException ignored) {
                // nothing more to read from it either way
            }
        }
    }

    /**
     * GETs {@code /v2/<repo><suffix>}: with the cached authorization for the repository, and on a
     * 401 once more with a fresh one obtained from the challenge. A second refusal is access denied.
     */
    private Response get(ImageRef ref, String suffix, String accept, String what) throws VbakeException {
        URI uri = URI.create(baseUri(ref) + "/v2/" + ref.repository() + suffix);
        String key = ref.apiHost() + "/" + ref.repository();
        String authorization = authorizations.get(key);
        boolean fresh = false;
        while (true) {
            Response r = follow(uri, accept, authorization, what);
            if (r.status() == 401 && !fresh) {
                List<String> challenges = r.headers().allValues("WWW-Authenticate");
                r.close();
                authorization = authorize(ref, challenges, what);
                authorizations.put(key, authorization);
                fresh = true;
                continue;
            }
            if (r.status() == 401 || r.status() == 403) {
                r.close();
                throw accessDenied(ref);
            }
            return r;
        }
    }

    /** Sends {@code authorization} only to the registry's own origin, never to a redirect target elsewhere. */
    private Response follow(URI uri, String accept, String authorization, String what) throws VbakeException {
        URI current = uri;
        for (int hop = 0; ; hop++) {
            HttpRequest.Builder b = request(current).GET();
            if (accept != null) {
                b.header("Accept", accept);
            }
            if (authorization != null && sameOrigin(current, uri)) {
                b.header("Authorization", authorization);
            }
            HttpResponse<InputStream> resp = send(b.build());
            int status = resp.statusCode();
            if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
                String location = resp.headers().firstValue("Location").orElse(null);
                closeQuietly(resp.body());
                if (location == null || hop == MAX_REDIRECTS) {
                    throw new VbakeException(1, what + ": " + current.getAuthority() + " answered " + status
                            + (location == null ? " without a Location" : " once too often (" + MAX_REDIRECTS + " redirects)"),
                            null, null);
                }
                try {
                    current = current.resolve(location);
                } catch (IllegalArgumentException e) {
                    throw new VbakeException(1, what + ": " + current.getAuthority() + " redirected to an invalid URL",
                            null, e);
                }
                events.on(new Event.Debug(what + ": redirected to " + current.getScheme() + "://" + current.getAuthority()));
                continue;
            }
            return new Response(status, resp.headers(), new IdleTimeoutInputStream(resp.body(), idleTimeout), current);
        }
    }

    /**
     * Answers a 401 challenge: Bearer asks the token service named in it for a pull token for this
     * repository (with the user's credentials when there are some); Basic sends the credentials.
     */
    private String authorize(ImageRef ref, List<String> challengeHeaders, String what) throws VbakeException {
        RegistryAuth.Credentials creds = auth.lookup(ref.registry(), ref.repository());
        Challenge challenge = Challenge.pick(challengeHeaders);
        if (challenge == null) {
            throw accessDenied(ref);
        }
        if (challenge.scheme().equals("basic")) {
            if (creds == null || !creds.hasPassword()) {
                throw accessDenied(ref);
            }
            return creds.basicHeader();
        }
        String realm = challenge.params().get("realm");
        URI realmUri;
        try {
            realmUri = realm == null ? null : URI.create(realm);
        } catch (IllegalArgumentException e) {
            realmUri = null;
        }
        if (realmUri == null || realmUri.getHost() == null
                || !("https".equals(realmUri.getScheme()) || "http".equals(realmUri.getScheme()))) {
            throw new VbakeException(1, what + ": " + ref.apiHost() + " asked for a token from an invalid realm",
                    null, null);
        }
        Map<String, String> form = new LinkedHashMap<>();
        String service = challenge.params().get("service");
        if (service != null) {
            form.put("service", service);
        }
        form.put("scope", "repository:" + ref.repository() + ":" + (pushing ? "pull,push" : "pull"));

        HttpRequest tokenRequest;
        if (creds != null && creds.identityToken() != null) {
            // An identity token is an OAuth2 refresh token: it is exchanged by POST, as docker does.
            form.put("grant_type", "refresh_token");
            form.put("client_id", USER_AGENT);
            form.put("refresh_token", creds.identityToken());
            tokenRequest = request(realmUri)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .POST(HttpRequest.BodyPublishers.ofString(formEncode(form)))
                    .build();
        } else {
            String query = formEncode(form);
            URI withQuery = URI.create(realm + (realm.contains("?") ? "&" : "?") + query);
            HttpRequest.Builder b = request(withQuery).GET();
            if (creds != null && creds.hasPassword()) {
                b.header("Authorization", creds.basicHeader());
            }
            tokenRequest = b.build();
        }
        events.on(new Event.Debug(what + ": token from " + realmUri.getScheme() + "://" + realmUri.getAuthority()
                + realmUri.getPath() + " for repository:" + ref.repository() + (pushing ? ":pull,push" : ":pull")));
        HttpResponse<InputStream> resp = send(tokenRequest);
        byte[] body;
        try (InputStream in = new IdleTimeoutInputStream(resp.body(), idleTimeout)) {
            if (resp.statusCode() == 401 || resp.statusCode() == 403) {
                throw accessDenied(ref);
            }
            if (resp.statusCode() != 200) {
                throw new VbakeException(1, what + ": the token service " + realmUri.getAuthority() + " answered "
                        + resp.statusCode(), resp.statusCode() >= 500 ? "try again later" : null, null);
            }
            body = in.readNBytes(MAX_SMALL_BODY_BYTES);
        } catch (IOException e) {
            throw transferFailed(what + ": token from " + realmUri.getAuthority(), e);
        }
        String token = null;
        try {
            JsonNode json = JSON.readTree(body);
            if (json != null) {
                token = json.path("token").asText(null);
                if (token == null || token.isEmpty()) {
                    token = json.path("access_token").asText(null);
                }
            }
        } catch (IOException e) {
            // reported below without echoing the body, which may hold a token
        }
        if (token == null || token.isEmpty()) {
            throw new VbakeException(1, what + ": the token service " + realmUri.getAuthority()
                    + " answered without a token", null, null);
        }
        return "Bearer " + token;
    }

    private HttpRequest.Builder request(URI uri) {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri)
                .timeout(responseTimeout)
                .header("User-Agent", USER_AGENT);
        if ("http".equals(uri.getScheme())) {
            // plain-http registries speak HTTP/1.1; skip the h2c upgrade dance
            b.version(HttpClient.Version.HTTP_1_1);
        }
        return b;
    }

    private HttpResponse<InputStream> send(HttpRequest request) throws VbakeException {
        URI uri = request.uri();
        String host = uri.getAuthority();
        if (offline) {
            throw new BadInputException("offline: " + host + uri.getPath() + " is not in the local cache",
                    "run once without --offline to fill the cache (only digest-pinned references work offline)");
        }
        try {
            return http.send(request, HttpResponse.BodyHandlers.ofInputStream());
        } catch (HttpConnectTimeoutException e) {
            // The JDK counts the TLS handshake as connecting; a plain-http server may never answer it.
            throw new BadInputException("cannot reach registry " + host + ": no connection"
                    + (uri.getScheme().equals("https") ? " (TCP and TLS handshake)" : "") + " within the timeout",
                    "check the registry name, the network and any proxy"
                            + (uri.getScheme().equals("https")
                                    ? "; if " + host + " serves plain http, pass --insecure-registry " + host : ""));
        } catch (HttpTimeoutException e) {
            throw new VbakeException(1, "registry " + host + " did not answer within " + responseTimeout.toSeconds()
                    + " s", "try again later", e);
        } catch (SSLException e) {
            throw new BadInputException("cannot reach registry " + host + ": TLS failed: " + e.getMessage(),
                    "if " + host + " serves plain http, pass --insecure-registry " + host);
        } catch (IOException e) {
            if (hasCause(e, UnresolvedAddressException.class) || hasCause(e, UnknownHostException.class)) {
                throw new BadInputException("cannot reach registry " + host + ": unknown host",
                        "check the registry name and DNS");
            }
            if (hasCause(e, ConnectException.class)) {
                String reason = e.getMessage() != null && !e.getMessage().isBlank() ? e.getMessage() : "connection refused";
                throw new BadInputException("cannot reach registry " + host + ": " + reason,
                        "is the registry running, and is " + uri.getScheme() + " the right protocol for it?"
                                + (uri.getScheme().equals("https") ? " (for a plain-http registry pass --insecure-registry "
                                        + host + ")" : ""));
            }
            if (hasCause(e, SSLException.class)) {
                throw new BadInputException("cannot reach registry " + host + ": TLS failed: " + e.getMessage(),
                        "if " + host + " serves plain http, pass --insecure-registry " + host);
            }
            throw new VbakeException(1, "request to registry " + host + " failed: " + e, null, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new VbakeException(1, "interrupted while talking to registry " + host, null, e);
        }
    }

    /** {@code http} for insecure and loopback registries, like docker; {@code https} otherwise. */
    URI baseUri(ImageRef ref) {
        return URI.create((plainHttp(ref) ? "http" : "https") + "://" + ref.apiHost());
    }

    private boolean plainHttp(ImageRef ref) {
        for (String name : List.of(ref.registry(), ref.apiHost())) {
            String n = name.toLowerCase(Locale.ROOT);
            if (insecureRegistries.contains(n) || insecureRegistries.contains(hostWithoutPort(n))) {
                return true;
            }
        }
        if (!plainHttpForLoopback) {
            return false;
        }
        String host = hostWithoutPort(ref.apiHost().toLowerCase(Locale.ROOT));
        return host.equals("localhost") || host.equals("[::1]") || LOOPBACK_V4.matcher(host).matches();
    }

    private static String hostWithoutPort(String hostPort) {
        if (hostPort.startsWith("[")) {
            int end = hostPort.indexOf(']');
            return end < 0 ? hostPort : hostPort.substring(0, end + 1);
        }
        int colon = hostPort.lastIndexOf(':');
        return colon < 0 ? hostPort : hostPort.substring(0, colon);
    }

    private static boolean sameOrigin(URI a, URI b) {
        return a.getScheme().equalsIgnoreCase(b.getScheme())
                && a.getHost() != null && a.getHost().equalsIgnoreCase(b.getHost())
                && effectivePort(a) == effectivePort(b);
    }

    private static int effectivePort(URI u) {
        return u.getPort() >= 0 ? u.getPort() : "https".equalsIgnoreCase(u.getScheme()) ? 443 : 80;
    }

    // ---- status, bodies, errors ----

    private void requireOk(Response r, ImageRef ref, String what, String notFound) throws VbakeException {
        int status = r.status();
        if (status == 200) {
            return;
        }
        String detail = errorDetail(r);
        String host = r.uri().getAuthority();
        if (status == 404) {
            throw new BadInputException(notFound + detail);
        }
        if (status == 429) {
            throw new VbakeException(1, what + ": " + host + " is limiting the pull rate (429)" + detail,
                    "wait and try again, or log in (--authfile): registries allow users with accounts more pulls", null);
        }
        if (status >= 500) {
            throw new VbakeException(1, what + ": registry " + host + " failed with " + status + detail,
                    "try again later", null);
        }
        throw new BadInputException(what + ": registry " + host + " answered " + status + detail);
    }

    /** The registry's own words from an error body ({@code {"errors":[{"code","message"}]}}), if any. */
    private static String errorDetail(Response r) {
        try {
            byte[] body = r.body().readNBytes(64 << 10);
            JsonNode errors = JSON.readTree(body).path("errors");
            List<String> parts = new ArrayList<>();
            for (JsonNode e : errors) {
                String code = e.path("code").asText("");
                String message = e.path("message").asText("");
                parts.add((code + (code.isEmpty() || message.isEmpty() ? "" : ": ") + message).strip());
            }
            String joined = String.join("; ", parts);
            if (joined.length() > 300) {
                joined = joined.substring(0, 300) + "...";
            }
            return joined.isEmpty() ? "" : " (" + joined + ")";
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }

    private byte[] readAtMost(Response r, int limit, String what) throws VbakeException {
        byte[] bytes;
        try {
            bytes = r.body().readNBytes(limit + 1);
        } catch (IOException e) {
            throw transferFailed(what, e);
        }
        if (bytes.length > limit) {
            throw new BadInputException(what + " is larger than " + limit + " bytes, which no sane image has");
        }
        return bytes;
    }

    private static byte[] readCached(BlobCache cache, Digest digest, String what) throws VbakeException {
        try {
            return Files.readAllBytes(cache.path(digest));
        } catch (IOException e) {
            throw cacheFailed(what, e);
        }
    }

    private static void put(BlobCache cache, byte[] bytes, String what) throws VbakeException {
        try {
            cache.put(bytes, what);
        } catch (IOException e) {
            throw cacheFailed(what, e);
        }
    }

    private static JsonNode parseJson(byte[] bytes, String what) throws BadInputException {
        try {
            JsonNode node = JSON.readTree(bytes);
            if (node == null || !node.isObject()) {
                throw new BadInputException(what + " is not a JSON object");
            }
            return node;
        } catch (JsonProcessingException e) {
            throw new BadInputException(what + " is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw new BadInputException(what + " cannot be read: " + e.getMessage());
        }
    }

    /**
     * Checks the credentials this client has for {@code host} as {@code docker login} does: the
     * registry's API root, answering its challenge (a token for a Bearer one, the credentials for
     * Basic). Fails with "unauthorized" when the registry refuses them.
     */
    public void checkLogin(String host) throws VbakeException {
        ImageRef ref = ImageRef.parse(host + "/library/vbake-login-check");
        URI uri = URI.create(baseUri(ref) + "/v2/");
        String what = "login to " + host;
        try (Response r = follow(uri, null, null, what)) {
            if (r.status() == 200) {
                return;
            }
            if (r.status() != 401) {
                throw new VbakeException(1, what + ": " + host + " answered " + r.status(), null, null);
            }
            String authorization;
            try {
                authorization = authorize(ref, r.headers().allValues("WWW-Authenticate"), what);
            } catch (BadInputException e) {
                throw new VbakeException(1, what + " failed: unauthorized (wrong username or password)", null, e);
            }
            try (Response again = follow(uri, null, authorization, what)) {
                if (again.status() != 200) {
                    throw new VbakeException(1, what + " failed: unauthorized (" + host + " answered "
                            + again.status() + ")", null, null);
                }
            }
        }
    }

    /** Set while pushing: tokens are asked for with the push scope too. */
    private volatile boolean pushing;

    /**
     * Pushes {@code image} to {@code target} (a repository and a tag): every layer and the config
     * that the registry does not have yet (blobs are content-addressed, so what is there is not
     * sent again), then the manifest: the image's own manifest bytes when it has some (so the
     * digest is the one it was pulled or saved with), else an OCI manifest made here for its
     * layers as stored. Returns the manifest digest the registry now holds.
     */
    public Digest push(ResolvedImage image, ImageRef target) throws VbakeException {
        if (target.tag() == null) {
            throw new BadInputException("push: " + target + " names no tag", "push NAME:TAG");
        }
        pushing = true;
        authorizations.clear();
        try {
            for (ResolvedImage.Layer layer : image.layers()) {
                pushBlob(target, layer.digest(), layer.size(), layer.blob(), null);
            }
            pushBlob(target, image.configDigest(), image.configBytes().length, null, image.configBytes());
            byte[] manifest;
            String mediaType;
            if (image.manifestBytes() != null) {
                manifest = image.manifestBytes();
                mediaType = image.manifestMediaType();
            } else {
                manifest = ociManifest(image);
                mediaType = MediaTypes.OCI_MANIFEST;
            }
            URI uri = URI.create(baseUri(target) + "/v2/" + target.repository() + "/manifests/" + target.tag());
            int status = upload(target, uri, "PUT", mediaType, HttpRequest.BodyPublishers.ofByteArray(manifest),
                    "push the manifest of " + target).status();
            if (status != 201 && status != 200) {
                throw new VbakeException(1, "push " + target + ": the registry refused the manifest (" + status + ")",
                        null, null);
            }
            return Digest.of(manifest);
        } finally {
            pushing = false;
        }
    }

    /** The size of {@link #ociManifest}. */
    public static int ociManifestSize(ResolvedImage image) {
        return ociManifest(image).length;
    }

    /** The manifest for an image that came without one (a docker-archive): OCI, its layers as stored. */
    static byte[] ociManifest(ResolvedImage image) {
        com.fasterxml.jackson.databind.node.ObjectNode m = JSON.createObjectNode();
        m.put("schemaVersion", 2);
        m.put("mediaType", MediaTypes.OCI_MANIFEST);
        com.fasterxml.jackson.databind.node.ObjectNode config = m.putObject("config");
        config.put("mediaType", MediaTypes.OCI_CONFIG);
        config.put("digest", image.configDigest().toString());
        config.put("size", image.configBytes().length);
        com.fasterxml.jackson.databind.node.ArrayNode layers = m.putArray("layers");
        for (ResolvedImage.Layer l : image.layers()) {
            com.fasterxml.jackson.databind.node.ObjectNode d = layers.addObject();
            d.put("mediaType", l.mediaType());
            d.put("digest", l.digest().toString());
            d.put("size", l.size());
        }
        try {
            return JSON.writeValueAsBytes(m);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** One blob: skipped when the registry has it, else a monolithic upload (POST, then PUT ?digest=). */
    private void pushBlob(ImageRef target, Digest digest, long size, java.nio.file.Path file, byte[] bytes)
            throws VbakeException {
        String what = "push " + target + ": blob " + digest.shortId();
        URI blob = URI.create(baseUri(target) + "/v2/" + target.repository() + "/blobs/" + digest);
        Response head = upload(target, blob, "HEAD", null, HttpRequest.BodyPublishers.noBody(), what);
        head.close();
        if (head.status() == 200) {
            events.on(new Event.Debug(what + ": already there"));
            return;
        }
        URI start = URI.create(baseUri(target) + "/v2/" + target.repository() + "/blobs/uploads/");
        Response started = upload(target, start, "POST", null, HttpRequest.BodyPublishers.noBody(), what);
        started.close();
        String location = started.headers().firstValue("Location").orElse(null);
        if (started.status() != 202 || location == null) {
            throw new VbakeException(1, what + ": the registry did not start an upload (" + started.status() + ")",
                    null, null);
        }
        URI put = start.resolve(location);
        put = URI.create(put + (put.getRawQuery() == null ? "?" : "&") + "digest=" + digest);
        HttpRequest.BodyPublisher body;
        try {
            body = file != null ? HttpRequest.BodyPublishers.ofFile(file) : HttpRequest.BodyPublishers.ofByteArray(bytes);
        } catch (java.io.FileNotFoundException e) {
            throw new VbakeException(1, what + ": " + file + " is gone from the cache", null, e);
        }
        Response done = upload(target, put, "PUT", "application/octet-stream", body, what);
        done.close();
        if (done.status() != 201) {
            throw new VbakeException(1, what + ": the registry refused the upload (" + done.status() + ")", null, null);
        }
        events.on(new Event.Progress("pushed " + digest.shortId() + " (" + humanSize(size) + ")"));
    }

    /** A request that changes the registry, with the push authorization (answering a 401 once). */
    private Response upload(ImageRef ref, URI uri, String method, String contentType,
            HttpRequest.BodyPublisher body, String what) throws VbakeException {
        String key = ref.apiHost() + "/" + ref.repository();
        String authorization = authorizations.get(key);
        boolean fresh = false;
        while (true) {
            HttpRequest.Builder b = request(uri).method(method, body);
            if (contentType != null) {
                b.header("Content-Type", contentType);
            }
            if (authorization != null) {
                b.header("Authorization", authorization);
            }
            HttpResponse<InputStream> resp = send(b.build());
            if (resp.statusCode() == 401 && !fresh) {
                List<String> challenges = resp.headers().allValues("WWW-Authenticate");
                closeQuietly(resp.body());
                authorization = authorize(ref, challenges, what);
                authorizations.put(key, authorization);
                fresh = true;
                continue;
            }
            if (resp.statusCode() == 401 || resp.statusCode() == 403) {
                closeQuietly(resp.body());
                throw new BadInputException(what + ": access denied", "log in first: push needs credentials with "
                        + "push rights for " + ref.registry());
            }
            return new Response(resp.statusCode(), resp.headers(), resp.body(), uri);
        }
    }

    /** One file of an artifact: its name (the title annotation), digest, size and media type. */
    public record ArtifactFile(String name, Digest digest, long size, String mediaType) {
    }

    /**
     * Pushes files as an OCI artifact ({@code artifactType}, an empty config, one layer per file
     * with its name as {@code org.opencontainers.image.title}) under {@code target}'s tag. Blobs
     * the registry has are not sent again.
     */
    public Digest pushArtifact(ImageRef target, String artifactType, List<ArtifactFile> files,
            Map<String, java.nio.file.Path> paths) throws VbakeException {
        if (target.tag() == null) {
            throw new BadInputException("push " + target + ": names no tag");
        }
        pushing = true;
        authorizations.clear();
        try {
            for (ArtifactFile f : files) {
                pushBlob(target, f.digest(), f.size(), paths.get(f.name()), null);
            }
            byte[] empty = "{}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            pushBlob(target, Digest.of(empty), empty.length, null, empty);
            com.fasterxml.jackson.databind.node.ObjectNode m = JSON.createObjectNode();
            m.put("schemaVersion", 2);
            m.put("mediaType", MediaTypes.OCI_MANIFEST);
            m.put("artifactType", artifactType);
            com.fasterxml.jackson.databind.node.ObjectNode config = m.putObject("config");
            config.put("mediaType", "application/vnd.oci.empty.v1+json");
            config.put("digest", Digest.of(empty).toString());
            config.put("size", empty.length);
            com.fasterxml.jackson.databind.node.ArrayNode layers = m.putArray("layers");
            for (ArtifactFile f : files) {
                com.fasterxml.jackson.databind.node.ObjectNode l = layers.addObject();
                l.put("mediaType", f.mediaType());
                l.put("digest", f.digest().toString());
                l.put("size", f.size());
                l.putObject("annotations").put("org.opencontainers.image.title", f.name());
            }
            byte[] manifest;
            try {
                manifest = JSON.writeValueAsBytes(m);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
            URI uri = URI.create(baseUri(target) + "/v2/" + target.repository() + "/manifests/" + target.tag());
            Response r = upload(target, uri, "PUT", MediaTypes.OCI_MANIFEST, HttpRequest.BodyPublishers.ofByteArray(manifest),
                    "push " + target);
            r.close();
            if (r.status() != 201 && r.status() != 200) {
                throw new VbakeException(1, "push " + target + ": the registry refused the manifest (" + r.status() + ")",
                        null, null);
            }
            return Digest.of(manifest);
        } finally {
            pushing = false;
        }
    }

    /** The files of the artifact tagged {@code ref}, or null when the registry has no such tag. */
    public List<ArtifactFile> fetchArtifact(ImageRef ref, String artifactType) throws VbakeException {
        String what = "the artifact " + ref;
        Response r = get(ref, "/manifests/" + ref.tag(), MediaTypes.OCI_MANIFEST, what);
        try {
            if (r.status() == 404) {
                return null;
            }
            requireOk(r, ref, what, what + ": not found");
            JsonNode m = parseJson(readAtMost(r, 4 << 20, what), what);
            if (!artifactType.equals(m.path("artifactType").asText(null))) {
                throw new BadInputException(what + " is not a " + artifactType);
            }
            List<ArtifactFile> files = new ArrayList<>();
            for (JsonNode l : m.path("layers")) {
                String name = l.path("annotations").path("org.opencontainers.image.title").asText(null);
                if (name == null || name.isEmpty() || name.startsWith("/") || name.contains("..")) {
                    throw new BadInputException(what + " has a file without a usable name");
                }
                files.add(new ArtifactFile(name, Digest.parse(l.path("digest").asText(""), what),
                        l.path("size").asLong(-1), l.path("mediaType").asText("")));
            }
            return files;
        } finally {
            r.close();
        }
    }

    /** Downloads a blob into {@code target}, checking its digest and size; a mismatch is bad input. */
    public void fetchBlob(ImageRef ref, ArtifactFile f, java.nio.file.Path target) throws VbakeException {
        String what = ref + ": " + f.name();
        try (Response r = getBlob(ref, f.digest(), what)) {
            java.security.MessageDigest md = Digest.sha256();
            long n = 0;
            try (java.io.OutputStream out = java.nio.file.Files.newOutputStream(target)) {
                byte[] buf = new byte[1 << 16];
                for (int k; (k = r.body().read(buf)) > 0; ) {
                    md.update(buf, 0, k);
                    out.write(buf, 0, k);
                    n += k;
                    if (f.size() >= 0 && n > f.size()) {
                        break;
                    }
                }
            } catch (IOException e) {
                throw transferFailed(what, e);
            }
            Digest actual = Digest.fromMessageDigest(md);
            if (!actual.equals(f.digest()) || (f.size() >= 0 && n != f.size())) {
                throw digestMismatch(what, f.digest(), actual);
            }
        }
    }

    private BadInputException accessDenied(ImageRef ref) {
        RegistryAuth.Credentials creds = auth.lookup(ref.registry(), ref.repository());
        return new BadInputException(ref + ": access denied ("
                + (creds != null ? "credentials from " + creds.source() : "no credentials") + ")",
                "the repository may not exist, or it needs credentials: log in with 'podman login " + ref.registry()
                        + "' or 'docker login " + ref.registry() + "', or pass --authfile");
    }

    private static BadInputException digestMismatch(String what, Digest expected, Digest actual) {
        return new BadInputException(what + ": digest mismatch: asked for " + expected
                + ", the registry sent content that hashes to " + actual);
    }

    private static VbakeException transferFailed(String what, IOException e) {
        if (e instanceof HttpTimeoutException) {
            return new VbakeException(1, what + ": the registry stopped sending (" + e.getMessage() + ")",
                    "check the network and try again; completed blobs stay cached", e);
        }
        return new VbakeException(1, what + ": transfer failed: " + e.getMessage(),
                "try again; completed blobs stay cached", e);
    }

    private static VbakeException cacheFailed(String what, IOException e) {
        return new VbakeException(1, what + ": cannot write to the blob cache: " + e, null, e);
    }

    private static boolean hasCause(Throwable t, Class<? extends Throwable> type) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (type.isInstance(c)) {
                return true;
            }
        }
        return false;
    }

    private static void closeQuietly(InputStream in) {
        try {
            in.close();
        } catch (IOException ignored) {
            // a redirect's body is of no interest
        }
    }

    private static String bareMediaType(String contentType) {
        int semi = contentType.indexOf(';');
        return (semi < 0 ? contentType : contentType.substring(0, semi)).trim().toLowerCase(Locale.ROOT);
    }

    private static String formEncode(Map<String, String> form) {
        List<String> parts = new ArrayList<>();
        form.forEach((k, v) -> parts.add(URLEncoder.encode(k, StandardCharsets.UTF_8) + "="
                + URLEncoder.encode(v, StandardCharsets.UTF_8)));
        return String.join("&", parts);
    }

    /** {@code 12.3 MB}, decimal units as docker prints them. */
    static String humanSize(long bytes) {
        if (bytes < 1000) {
            return bytes + " B";
        }
        String[] units = {"kB", "MB", "GB", "TB"};
        double v = bytes;
        int u = -1;
        while (v >= 1000 && u < units.length - 1) {
            v /= 1000;
            u++;
        }
        return String.format(Locale.ROOT, "%.1f %s", v, units[u]);
    }

    /** One {@code WWW-Authenticate} challenge: scheme (lowercase) and its parameters. */
    record Challenge(String scheme, Map<String, String> params) {

        /** Bearer if offered, else Basic, else null. */
        static Challenge pick(List<String> headers) {
            Challenge basic = null;
            for (String h : headers) {
                Challenge c = parse(h);
                if (c == null) {
                    continue;
                }
                if (c.scheme().equals("bearer")) {
                    return c;
                }
                if (c.scheme().equals("basic") && basic == null) {
                    basic = c;
                }
            }
            return basic;
        }

        /** {@code Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="a:b:pull,push"}. */
        static Challenge parse(String header) {
            String h = header.strip();
            int space = h.indexOf(' ');
            String scheme = (space < 0 ? h : h.substring(0, space)).toLowerCase(Locale.ROOT);
            if (scheme.isEmpty()) {
                return null;
            }
            Map<String, String> params = new LinkedHashMap<>();
            int i = space < 0 ? h.length() : space + 1;
            while (i < h.length()) {
                while (i < h.length() && (h.charAt(i) == ' ' || h.charAt(i) == ',')) {
                    i++;
                }
                int eq = h.indexOf('=', i);
                if (eq < 0) {
                    break;
                }
                String name = h.substring(i, eq).strip().toLowerCase(Locale.ROOT);
                i = eq + 1;
                StringBuilder value = new StringBuilder();
                if (i < h.length() && h.charAt(i) == '"') {
                    i++;
                    while (i < h.length() && h.charAt(i) != '"') {
                        if (h.charAt(i) == '\\' && i + 1 < h.length()) {
                            i++;
                        }
                        value.append(h.charAt(i++));
                    }
                    i++;
                } else {
                    while (i < h.length() && h.charAt(i) != ',') {
                        value.append(h.charAt(i++));
                    }
                }
                params.put(name, value.toString().strip());
            }
            return new Challenge(scheme, params);
        }
    }
}
