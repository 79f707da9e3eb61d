package org.vbake.image.registry;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.image.Digest;

/**
 * Just enough of a distribution API v2 registry, in process on 127.0.0.1: manifests by tag and
 * digest, blobs, an optional Bearer token service or Basic auth, blob redirects, and tampering.
 * Every request is recorded with its Authorization header.
 */
final class FakeRegistry implements AutoCloseable {

    record Request(String method, String path, String query, String authorization, String accept) {
    }

    private record Stored(byte[] bytes, String mediaType) {
    }

    private static final Pattern MANIFEST = Pattern.compile("/v2/(.+)/manifests/([^/]+)");
    private static final Pattern BLOB = Pattern.compile("/v2/(.+)/blobs/(sha256:[0-9a-f]{64})");

    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool();
    private final Map<String, Stored> manifests = new ConcurrentHashMap<>();
    private final Map<String, byte[]> blobs = new ConcurrentHashMap<>();
    private final Map<String, String> blobRedirects = new ConcurrentHashMap<>();
    private final Map<String, byte[]> tamperedManifests = new ConcurrentHashMap<>();
    final List<Request> requests = new CopyOnWriteArrayList<>();

    /** When set, /v2/ requests need "Bearer {token}" obtained from /token with these credentials. */
    volatile String tokenUser;
    volatile String tokenPassword;
    volatile boolean anonymousTokens;
    volatile String token = "fake-token-5f3a";
    /** When set, the token service also accepts this refresh token in an OAuth2 POST. */
    volatile String refreshToken;
    final List<String> tokenForms = new CopyOnWriteArrayList<>();
    /** When set, /v2/ requests need exactly this Basic header value. */
    volatile String basicHeader;
    volatile int failWith;
    /** When set, blob bodies stop after this many bytes and the connection hangs. */
    volatile int stallBlobsAfter = -1;
    volatile boolean sendDigestHeader = true;

    FakeRegistry() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::handle);
        server.setExecutor(executor);
        server.start();
    }

    String host() {
        return "127.0.0.1:" + server.getAddress().getPort();
    }

    Digest putManifest(String repo, String tag, byte[] bytes, String mediaType) {
        Digest d = Digest.of(bytes);
        manifests.put(repo + "@" + d, new Stored(bytes, mediaType));
        if (tag != null) {
            manifests.put(repo + ":" + tag, new Stored(bytes, mediaType));
        }
        return d;
    }

    Digest putBlob(byte[] bytes) {
        Digest d = Digest.of(bytes);
        blobs.put(d.toString(), bytes);
        return d;
    }

    /** Serve {@code replacement} where the manifest with {@code digest} is asked for. */
    void tamperManifest(Digest digest, byte[] replacement) {
        tamperedManifests.put(digest.toString(), replacement);
    }

    void tamperBlob(Digest digest, byte[] replacement) {
        blobs.put(digest.toString(), replacement);
    }

    /** Answer requests for this blob of {@code repo} with a 307 to {@code location}. */
    void redirectBlob(String repo, Digest digest, String location) {
        blobRedirects.put("/v2/" + repo + "/blobs/" + digest, location);
    }

    long count(String pathPart) {
        return requests.stream().filter(r -> r.path().contains(pathPart)).count();
    }

    private void handle(HttpExchange ex) throws IOException {
        try (ex) {
            String path = ex.getRequestURI().getPath();
            requests.add(new Request(ex.getRequestMethod(), path, ex.getRequestURI().getRawQuery(),
                    ex.getRequestHeaders().getFirst("Authorization"), ex.getRequestHeaders().getFirst("Accept")));
            if (path.equals("/token")) {
                token(ex);
                return;
            }
            if (failWith != 0) {
                send(ex, failWith, "application/json", "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"down\"}]}");
                return;
            }
            if (!authorized(ex)) {
                return;
            }
            if (path.equals("/v2/")) {
                send(ex, 200, "application/json", "{}");
                return;
            }
            Matcher m = MANIFEST.matcher(path);
            if (m.matches()) {
                Stored s = manifests.get(m.group(1) + (m.group(2).startsWith("sha256:") ? "@" : ":") + m.group(2));
                if (s == null) {
                    send(ex, 404, "application/json",
                            "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}");
                    return;
                }
                byte[] body = s.bytes();
                Digest real = Digest.of(body);
                body = tamperedManifests.getOrDefault(real.toString(), body);
                if (sendDigestHeader) {
                    ex.getResponseHeaders().set("Docker-Content-Digest", real.toString());
                }
                ex.getResponseHeaders().set("Content-Type", s.mediaType());
                ex.sendResponseHeaders(200, body.length);
                ex.getResponseBody().write(body);
                return;
            }
            m = BLOB.matcher(path);
            if (m.matches()) {
                String location = blobRedirects.get(path);
                if (location != null) {
                    ex.getResponseHeaders().set("Location", location);
                    ex.sendResponseHeaders(307, -1);
                    return;
                }
                byte[] body = blobs.get(m.group(2));
                if (body == null) {
                    send(ex, 404, "application/json", "{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"blob unknown\"}]}");
                    return;
                }
                ex.getResponseHeaders().set("Content-Type", "application/octet-stream");
                ex.sendResponseHeaders(200, body.length);
                OutputStream out = ex.getResponseBody();
                if (stallBlobsAfter >= 0) {
                    out.write(body, 0, Math.min(stallBlobsAfter, body.length));
                    out.flush();
                    try {
                        Thread.sleep(10_000);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return;
                }
                out.write(body);
                return;
            }
            send(ex, 404, "text/plain", "no such path");
        }
    }

    private boolean authorized(HttpExchange ex) throws IOException {
        String given = ex.getRequestHeaders().getFirst("Authorization");
        if (tokenUser != null || anonymousTokens) {
            if (("Bearer " + token).equals(given)) {
                return true;
            }
            String repo = ex.getRequestURI().getPath().replaceFirst("^/v2/(.+)/(manifests|blobs)/.*$", "$1");
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer realm=\"http://" + host()
                    + "/token\",service=\"fake-registry\",scope=\"repository:" + repo + ":pull\"");
            send(ex, 401, "application/json", "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
            return false;
        }
        if (basicHeader != null) {
            if (basicHeader.equals(given)) {
                return true;
            }
            ex.getResponseHeaders().set("WWW-Authenticate", "Basic realm=\"fake\"");
            send(ex, 401, "text/plain", "");
            return false;
        }
        return true;
    }

    private void token(HttpExchange ex) throws IOException {
        if (ex.getRequestMethod().equals("POST")) {
            String form = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            tokenForms.add(form);
            if (refreshToken != null && form.contains("grant_type=refresh_token")
                    && form.contains("refresh_token=" + refreshToken)) {
                send(ex, 200, "application/json", "{\"access_token\":\"" + token + "\",\"expires_in\":300}");
            } else {
                send(ex, 401, "application/json", "{\"error\":\"invalid_grant\"}");
            }
            return;
        }
        String expected = tokenUser == null ? null : "Basic " + Base64.getEncoder()
                .encodeToString((tokenUser + ":" + tokenPassword).getBytes(StandardCharsets.UTF_8));
        String given = ex.getRequestHeaders().getFirst("Authorization");
        if (expected != null && !expected.equals(given)) {
            send(ex, 401, "application/json", "{\"details\":\"incorrect username or password\"}");
            return;
        }
        send(ex, 200, "application/json", "{\"token\":\"" + token + "\",\"expires_in\":300}");
    }

    private static void send(HttpExchange ex, int status, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(status, b.length == 0 ? -1 : b.length);
        if (b.length > 0) {
            ex.getResponseBody().write(b);
        }
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}
