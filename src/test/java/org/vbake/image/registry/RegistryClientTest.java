package org.vbake.image.registry;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.http.HttpClient;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.vbake.api.Arch;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.VbakeException;
import org.vbake.image.BlobCache;
import org.vbake.image.Digest;
import org.vbake.image.MediaTypes;
import org.vbake.image.Platforms;
import org.vbake.image.ResolvedImage;

/** Pulls from an in-process fake registry; nothing leaves 127.0.0.1. */
class RegistryClientTest {

    private static final String REPO = "test/img";
    private static final String USER = "alice";
    private static final String PASSWORD = "s3cret-Pa55word";

    @TempDir
    Path tmp;

    private FakeRegistry registry;
    private BlobCache cache;
    private final List<Event> events = new CopyOnWriteArrayList<>();

    @BeforeEach
    void start() throws IOException {
        registry = new FakeRegistry();
        cache = new BlobCache(tmp.resolve("cache"));
    }

    @AfterEach
    void stop() {
        registry.close();
    }

    // ---- building test images ----

    /** One single-platform image pushed to the fake registry. */
    private record Pushed(Digest manifestDigest, byte[] manifest, Digest configDigest, byte[] config,
            List<Digest> layers, List<byte[]> layerBytes, List<Digest> diffIds) {
    }

    private Pushed push(FakeRegistry reg, String tag, String arch, String variant, boolean oci, byte[]... layers) {
        List<Digest> layerDigests = new ArrayList<>();
        List<Digest> diffIds = new ArrayList<>();
        StringBuilder layerJson = new StringBuilder();
        StringBuilder diffJson = new StringBuilder();
        for (int i = 0; i < layers.length; i++) {
            Digest d = reg.putBlob(layers[i]);
            Digest diffId = Digest.of(("uncompressed " + new String(layers[i], StandardCharsets.ISO_8859_1))
                    .getBytes(StandardCharsets.ISO_8859_1));
            layerDigests.add(d);
            diffIds.add(diffId);
            layerJson.append(i == 0 ? "" : ",").append("\n      {\"mediaType\": \"")
                    .append(oci ? "application/vnd.oci.image.layer.v1.tar+gzip"
                            : "application/vnd.docker.image.rootfs.diff.tar.gzip")
                    .append("\", \"size\": ").append(layers[i].length).append(", \"digest\": \"").append(d).append("\"}");
            diffJson.append(i == 0 ? "" : ", ").append('"').append(diffId).append('"');
        }
        // Deliberately not canonical JSON: the bytes must survive exactly as served.
        byte[] config = ("{\"architecture\":\"" + arch + "\"," + (variant != null ? "\"variant\":\"" + variant + "\"," : "")
                + "\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/bin\"]},  \"rootfs\":{\"type\":\"layers\",\"diff_ids\":["
                + diffJson + "]}}\n").getBytes(StandardCharsets.UTF_8);
        Digest configDigest = reg.putBlob(config);
        String type = oci ? MediaTypes.OCI_MANIFEST : MediaTypes.DOCKER_MANIFEST;
        byte[] manifest = ("{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"" + type + "\",\n   \"config\": {\"mediaType\": \""
                + (oci ? "application/vnd.oci.image.config.v1+json" : "application/vnd.docker.container.image.v1+json")
                + "\", \"size\": " + config.length + ", \"digest\": \"" + configDigest + "\"},\n   \"layers\": ["
                + layerJson + "\n   ]\n}").getBytes(StandardCharsets.UTF_8);
        Digest manifestDigest = reg.putManifest(REPO, tag, manifest, type);
        return new Pushed(manifestDigest, manifest, configDigest, config, layerDigests, List.of(layers), diffIds);
    }

    private static String indexEntry(Pushed p, String os, String arch, String variant) {
        return "{\"mediaType\":\"" + MediaTypes.OCI_MANIFEST + "\",\"digest\":\"" + p.manifestDigest()
                + "\",\"size\":" + p.manifest().length + ",\"platform\":{\"architecture\":\"" + arch + "\",\"os\":\"" + os + "\""
                + (variant != null ? ",\"variant\":\"" + variant + "\"" : "") + "}}";
    }

    private Digest pushIndex(String tag, String... entries) {
        byte[] index = ("{\"schemaVersion\":2,\"mediaType\":\"" + MediaTypes.OCI_INDEX + "\",\"manifests\":["
                + String.join(",", entries) + "]}").getBytes(StandardCharsets.UTF_8);
        return registry.putManifest(REPO, tag, index, MediaTypes.OCI_INDEX);
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private RegistryClient client() {
        return client(RegistryAuth.none());
    }

    private RegistryClient client(RegistryAuth auth) {
        return new RegistryClient(Set.of(), auth, events::add);
    }

    private ImageRef ref(String rest) throws BadInputException {
        return ImageRef.parse(registry.host() + "/" + REPO + rest);
    }

    private List<String> progress() {
        return events.stream().filter(e -> e instanceof Event.Progress).map(e -> ((Event.Progress) e).message()).toList();
    }

    private static Digest hashOf(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            return Digest.of(in);
        }
    }

    private Path authFile(String json) throws IOException {
        Path f = tmp.resolve("auth.json");
        Files.writeString(f, json);
        return f;
    }

    private Path authFileWithPassword(String password) throws IOException {
        String auth = Base64.getEncoder().encodeToString((USER + ":" + password).getBytes(StandardCharsets.UTF_8));
        return authFile("{\"auths\":{\"" + registry.host() + "\":{\"auth\":\"" + auth + "\"}}}");
    }

    // ---- single manifests ----

    @Test
    void pullsASingleManifestByTagKeepingExactBytes() throws Exception {
        Pushed p = push(registry, "1.0", "amd64", null, false, bytes("layer one"), bytes("layer two, longer"));
        ImageRef ref = ref(":1.0");

        RegistryClient.Result result = client().resolve(ref, Arch.X86_64, false, cache);

        ResolvedImage image = result.image();
        assertThat(image.manifestBytes()).isEqualTo(p.manifest());
        assertThat(image.manifestDigest()).isEqualTo(p.manifestDigest()).isEqualTo(Digest.of(p.manifest()));
        assertThat(image.manifestMediaType()).isEqualTo(MediaTypes.DOCKER_MANIFEST);
        assertThat(image.configBytes()).isEqualTo(p.config());
        assertThat(image.configDigest()).isEqualTo(p.configDigest()).isEqualTo(Digest.of(p.config()));
        assertThat(result.repoDigest()).isEqualTo(p.manifestDigest());
        assertThat(result.indexDigest()).isNull();
        assertThat(result.pinnedReference()).isEqualTo(registry.host() + "/test/img@" + p.manifestDigest());
        assertThat(image.source()).isEqualTo("registry " + registry.host() + "/test/img:1.0");
        assertThat(image.repository()).isEqualTo(registry.host() + "/test/img");
        assertThat(image.tags()).containsExactly(registry.host() + "/test/img:1.0");
        assertThat(image.platform()).isEqualTo("linux/amd64");
        assertThat(image.layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(p.layers());
        assertThat(image.layers()).extracting(ResolvedImage.Layer::diffId).containsExactlyElementsOf(p.diffIds());
        assertThat(image.layers()).extracting(ResolvedImage.Layer::mediaType)
                .containsOnly("application/vnd.docker.image.rootfs.diff.tar.gzip");
        for (int i = 0; i < 2; i++) {
            ResolvedImage.Layer layer = image.layers().get(i);
            assertThat(layer.size()).isEqualTo(p.layerBytes().get(i).length);
            assertThat(layer.blob()).isEqualTo(cache.path(layer.digest()));
            assertThat(Files.readAllBytes(layer.blob())).isEqualTo(p.layerBytes().get(i));
            assertThat(hashOf(layer.blob())).isEqualTo(layer.digest());
        }
        assertThat(Files.readAllBytes(cache.path(p.configDigest()))).isEqualTo(p.config());
        assertThat(Files.readAllBytes(cache.path(p.manifestDigest()))).isEqualTo(p.manifest());

        assertThat(registry.requests.get(0).accept()).contains(MediaTypes.OCI_INDEX,
                MediaTypes.DOCKER_MANIFEST_LIST, MediaTypes.OCI_MANIFEST, MediaTypes.DOCKER_MANIFEST);
        assertThat(progress()).contains(
                "pulling " + ref + ": layer 1/2 sha256:" + p.layers().get(0).shortId() + " (9 B)",
                "pulling " + ref + ": layer 2/2 sha256:" + p.layers().get(1).shortId() + " (17 B)",
                "warning: " + ref + " is not pinned by digest; pin it as " + registry.host() + "/test/img@"
                        + p.manifestDigest() + " for reproducible builds");
    }

    @Test
    void pullsByDigestWithoutTagsOrPinWarning() throws Exception {
        Pushed p = push(registry, null, "arm64", "v8", true, bytes("only layer"));

        RegistryClient.Result result = client().resolve(ref("@" + p.manifestDigest()), Arch.AARCH64, false, cache);

        assertThat(result.image().manifestDigest()).isEqualTo(p.manifestDigest());
        assertThat(result.image().manifestMediaType()).isEqualTo(MediaTypes.OCI_MANIFEST);
        assertThat(result.image().tags()).isEmpty();
        assertThat(result.image().platform()).isEqualTo("linux/arm64/v8");
        assertThat(result.repoDigest()).isEqualTo(p.manifestDigest());
        assertThat(progress()).noneMatch(m -> m.startsWith("warning"));
        assertThat(registry.requests.get(0).path()).isEqualTo("/v2/test/img/manifests/" + p.manifestDigest());
    }

    @Test
    void tagAndDigestFetchesTheDigestAndKeepsTheTagForNaming() throws Exception {
        Pushed p = push(registry, "pinned", "arm64", null, true, bytes("x"));
        push(registry, "moved", "arm64", null, true, bytes("y"));

        RegistryClient.Result result = client().resolve(ref(":moved@" + p.manifestDigest()), Arch.AARCH64, false, cache);

        assertThat(result.image().manifestDigest()).isEqualTo(p.manifestDigest());
        assertThat(result.image().tags()).containsExactly(registry.host() + "/test/img:moved");
        assertThat(registry.count("/manifests/moved")).isZero();
    }

    @Test
    void refusesASingleManifestForAnotherArchUnlessAllowed() throws Exception {
        push(registry, "amd", "amd64", null, false, bytes("x"));
        ImageRef ref = ref(":amd");

        BadInputException e = catchThrowableOfType(BadInputException.class,
                () -> client().resolve(ref, Arch.AARCH64, false, cache));
        assertThat(e).hasMessage(ref + " is a linux/amd64 image, not linux/arm64");
        assertThat(e.hint()).isEqualTo(Platforms.ALLOW_MISMATCH_HINT).contains("--allow-arch-mismatch");

        RegistryClient.Result allowed = client().resolve(ref, Arch.AARCH64, true, cache);
        assertThat(allowed.image().architecture()).isEqualTo("amd64");
    }

    // ---- indexes ----

    @Test
    void selectsThePlatformFromAnIndexAndReportsTheIndexAsRepoDigest() throws Exception {
        byte[] shared = bytes("shared base layer");
        Pushed amd = push(registry, null, "amd64", null, true, shared, bytes("amd top"));
        Pushed arm = push(registry, null, "arm64", null, true, shared, bytes("arm top"));
        Pushed arm7 = push(registry, null, "arm", "v7", true, bytes("armv7"));
        String attestation = "{\"mediaType\":\"" + MediaTypes.OCI_MANIFEST + "\",\"digest\":\"" + Digest.of(bytes("att"))
                + "\",\"size\":3,\"platform\":{\"architecture\":\"unknown\",\"os\":\"unknown\"}}";
        Digest index = pushIndex("multi", attestation, indexEntry(amd, "linux", "amd64", null),
                indexEntry(arm7, "linux", "arm", "v7"), indexEntry(arm, "linux", "arm64", "v8"));
        ImageRef ref = ref(":multi");

        RegistryClient.Result armResult = client().resolve(ref, Arch.AARCH64, false, cache);

        assertThat(armResult.indexDigest()).isEqualTo(index);
        assertThat(armResult.repoDigest()).isEqualTo(index);
        assertThat(armResult.pinnedReference()).isEqualTo(registry.host() + "/test/img@" + index);
        assertThat(armResult.image().manifestDigest()).isEqualTo(arm.manifestDigest());
        assertThat(armResult.image().manifestBytes()).isEqualTo(arm.manifest());
        assertThat(armResult.image().configDigest()).isEqualTo(arm.configDigest());
        assertThat(armResult.image().variant()).as("from the index entry").isEqualTo("v8");
        assertThat(armResult.image().layers()).extracting(ResolvedImage.Layer::digest).containsExactlyElementsOf(arm.layers());
        assertThat(cache.contains(index)).isTrue();
        assertThat(progress()).contains("warning: " + ref + " is not pinned by digest; pin it as "
                + registry.host() + "/test/img@" + index + " for reproducible builds");

        events.clear();
        RegistryClient.Result amdResult = client().resolve(ref, Arch.X86_64, false, cache);

        assertThat(amdResult.repoDigest()).isEqualTo(index);
        assertThat(amdResult.image().manifestDigest()).isEqualTo(amd.manifestDigest());
        assertThat(amdResult.image().architecture()).isEqualTo("amd64");
        assertThat(progress()).contains("pulling " + ref + ": layer 1/2 sha256:" + amd.layers().get(0).shortId()
                + " (17 B) cached");
        assertThat(registry.count("/blobs/" + amd.layers().get(0))).as("shared layer downloaded once").isEqualTo(1);
        assertThat(registry.count("/blobs/" + arm7.layers().get(0))).isZero();
    }

    @Test
    void refusesAnIndexWithoutThePlatformNamingWhatItHas() throws Exception {
        Pushed amd = push(registry, null, "amd64", null, true, bytes("x"));
        Pushed arm7 = push(registry, null, "arm", "v7", true, bytes("y"));
        pushIndex("x86only", indexEntry(amd, "linux", "amd64", null), indexEntry(arm7, "linux", "arm", "v7"));
        ImageRef ref = ref(":x86only");

        assertThatThrownBy(() -> client().resolve(ref, Arch.AARCH64, true, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessage(ref + " has no linux/arm64 image (it has: linux/amd64, linux/arm/v7)");
    }

    @Test
    void pinnedPullsComeFromTheCacheOnceDone() throws Exception {
        Pushed arm = push(registry, null, "arm64", null, true, bytes("a"), bytes("b"));
        Digest index = pushIndex("t", indexEntry(arm, "linux", "arm64", null));
        ImageRef pinned = ref("@" + index);
        RegistryClient.Result first = client().resolve(pinned, Arch.AARCH64, false, cache);
        registry.close();

        RegistryClient.Result again = client().resolve(pinned, Arch.AARCH64, false, cache);

        assertThat(again.repoDigest()).isEqualTo(first.repoDigest()).isEqualTo(index);
        assertThat(again.image().manifestDigest()).isEqualTo(arm.manifestDigest());
        assertThat(again.image().configBytes()).isEqualTo(arm.config());
    }

    // ---- verification ----

    @Test
    void detectsATamperedManifestFetchedByDigest() throws Exception {
        Pushed p = push(registry, null, "arm64", null, true, bytes("x"));
        byte[] evil = new String(p.manifest(), StandardCharsets.UTF_8).replace("\"schemaVersion\": 2", "\"schemaVersion\":2")
                .getBytes(StandardCharsets.UTF_8);
        registry.tamperManifest(p.manifestDigest(), evil);

        assertThatThrownBy(() -> client().resolve(ref("@" + p.manifestDigest()), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("digest mismatch")
                .hasMessageContaining(p.manifestDigest().toString())
                .hasMessageContaining(Digest.of(evil).toString());
        assertThat(cache.contains(p.manifestDigest())).isFalse();
        assertThat(cache.contains(Digest.of(evil))).isFalse();
    }

    @Test
    void detectsATamperedPlatformManifestBehindAnIndex() throws Exception {
        Pushed arm = push(registry, null, "arm64", null, true, bytes("x"));
        pushIndex("t", indexEntry(arm, "linux", "arm64", null));
        registry.tamperManifest(arm.manifestDigest(), bytes("{\"schemaVersion\":2,\"layers\":[]}"));

        assertThatThrownBy(() -> client().resolve(ref(":t"), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("linux/arm64 manifest " + arm.manifestDigest() + ": digest mismatch");
    }

    @Test
    void detectsATagManifestThatDisagreesWithItsDigestHeader() throws Exception {
        Pushed p = push(registry, "t", "arm64", null, true, bytes("x"));
        registry.tamperManifest(p.manifestDigest(), bytes("{\"schemaVersion\":2,\"config\":{},\"layers\":[]}"));

        assertThatThrownBy(() -> client().resolve(ref(":t"), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("digest mismatch: the registry says the manifest is " + p.manifestDigest());
    }

    @Test
    void detectsATamperedLayerAndKeepsItOutOfTheCache() throws Exception {
        Pushed p = push(registry, "t", "arm64", null, true, bytes("good layer"));
        registry.tamperBlob(p.layers().get(0), bytes("evil layer"));

        assertThatThrownBy(() -> client().resolve(ref(":t"), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("layer " + p.layers().get(0))
                .hasMessageContaining("digest mismatch");
        assertThat(cache.contains(p.layers().get(0))).isFalse();
    }

    @Test
    void detectsATamperedConfig() throws Exception {
        Pushed p = push(registry, "t", "arm64", null, true, bytes("x"));
        registry.tamperBlob(p.configDigest(), bytes("{\"architecture\":\"arm64\",\"os\":\"linux\"}"));

        assertThatThrownBy(() -> client().resolve(ref(":t"), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("config " + p.configDigest())
                .hasMessageContaining("digest mismatch");
    }

    @Test
    void refusesSchema1() throws Exception {
        registry.putManifest(REPO, "old", bytes("{\"schemaVersion\":1,\"name\":\"test/img\",\"fsLayers\":[]}"),
                "application/vnd.docker.distribution.manifest.v1+prettyjws");

        assertThatThrownBy(() -> client().resolve(ref(":old"), Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageContaining("schema1 manifests are not supported");
    }

    // ---- auth ----

    @Test
    void getsABearerTokenWithBasicCredentialsOnceAndUsesIt() throws Exception {
        registry.tokenUser = USER;
        registry.tokenPassword = PASSWORD;
        Pushed p = push(registry, "t", "arm64", null, true, bytes("a"), bytes("b"));
        Path file = authFileWithPassword(PASSWORD);

        RegistryClient.Result result = client(RegistryAuth.load(file, Map.of(), events::add))
                .resolve(ref(":t"), Arch.AARCH64, false, cache);

        assertThat(result.image().manifestDigest()).isEqualTo(p.manifestDigest());
        List<FakeRegistry.Request> tokenRequests = registry.requests.stream()
                .filter(r -> r.path().equals("/token")).toList();
        assertThat(tokenRequests).hasSize(1);
        assertThat(tokenRequests.get(0).authorization()).isEqualTo("Basic "
                + Base64.getEncoder().encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8)));
        assertThat(tokenRequests.get(0).query())
                .contains("service=fake-registry")
                .contains("scope=repository%3Atest%2Fimg%3Apull");
        List<FakeRegistry.Request> apiRequests = registry.requests.stream()
                .filter(r -> r.path().startsWith("/v2/")).toList();
        assertThat(apiRequests.get(0).authorization()).as("first try is anonymous").isNull();
        assertThat(apiRequests.subList(1, apiRequests.size()))
                .extracting(FakeRegistry.Request::authorization)
                .hasSize(4) // manifest, config, two layers
                .containsOnly("Bearer " + registry.token);
    }

    @Test
    void exchangesAnIdentityTokenByOAuthPost() throws Exception {
        registry.tokenUser = USER;
        registry.tokenPassword = PASSWORD;
        registry.refreshToken = "refresh-xyz";
        push(registry, "t", "arm64", null, true, bytes("a"));
        Path file = authFile("{\"auths\":{\"" + registry.host() + "\":{\"auth\":\"" + Base64.getEncoder()
                .encodeToString(bytes("<token>:")) + "\",\"identitytoken\":\"refresh-xyz\"}}}");

        client(RegistryAuth.load(file, Map.of(), events::add)).resolve(ref(":t"), Arch.AARCH64, false, cache);

        assertThat(registry.tokenForms).singleElement().satisfies(form -> assertThat(form.split("&")).contains(
                "grant_type=refresh_token", "refresh_token=refresh-xyz", "service=fake-registry",
                "scope=repository%3Atest%2Fimg%3Apull", "client_id=vbake"));
        assertThat(registry.requests).filteredOn(r -> r.path().startsWith("/v2/") && r.authorization() != null)
                .extracting(FakeRegistry.Request::authorization).containsOnly("Bearer " + registry.token);
    }

    @Test
    void reusesTheTokenAcrossPullsAndRenewsItWhenRefused() throws Exception {
        registry.anonymousTokens = true;
        push(registry, "a", "arm64", null, true, bytes("a"));
        push(registry, "b", "arm64", null, true, bytes("b"));
        RegistryClient client = client();

        client.resolve(ref(":a"), Arch.AARCH64, false, cache);
        client.resolve(ref(":b"), Arch.AARCH64, false, cache);
        assertThat(registry.count("/token")).isEqualTo(1);

        registry.token = "rotated-token";
        push(registry, "c", "arm64", null, true, bytes("c"));
        client.resolve(ref(":c"), Arch.AARCH64, false, cache);
        assertThat(registry.count("/token")).isEqualTo(2);
        assertThat(registry.requests.get(registry.requests.size() - 1).authorization()).isEqualTo("Bearer rotated-token");
    }

    @Test
    void getsAnAnonymousTokenWithoutCredentials() throws Exception {
        registry.anonymousTokens = true;
        push(registry, "t", "arm64", null, true, bytes("a"));

        client().resolve(ref(":t"), Arch.AARCH64, false, cache);

        assertThat(registry.requests.stream().filter(r -> r.path().equals("/token")))
                .singleElement().extracting(FakeRegistry.Request::authorization).isNull();
    }

    @Test
    void wrongCredentialsAreAccessDeniedNamingTheFileButNotTheSecret() throws Exception {
        registry.tokenUser = USER;
        registry.tokenPassword = PASSWORD;
        push(registry, "t", "arm64", null, true, bytes("a"));
        String wrong = "wr0ng-Secret-Value";
        Path file = authFileWithPassword(wrong);
        ImageRef ref = ref(":t");

        BadInputException e = catchThrowableOfType(BadInputException.class,
                () -> client(RegistryAuth.load(file, Map.of(), events::add)).resolve(ref, Arch.AARCH64, false, cache));

        assertThat(e).hasMessage(ref + ": access denied (credentials from " + file + ")");
        String everything = e.getMessage() + " " + e.hint() + " " + events;
        String encoded = Base64.getEncoder().encodeToString((USER + ":" + wrong).getBytes(StandardCharsets.UTF_8));
        assertThat(everything).doesNotContain(wrong).doesNotContain(encoded).doesNotContain(registry.token);
    }

    @Test
    void noCredentialsIsAccessDeniedSayingSo() throws Exception {
        registry.tokenUser = USER;
        registry.tokenPassword = PASSWORD;
        push(registry, "t", "arm64", null, true, bytes("a"));
        ImageRef ref = ref(":t");

        assertThatThrownBy(() -> client().resolve(ref, Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessage(ref + ": access denied (no credentials)");
    }

    @Test
    void answersABasicChallengeWithTheCredentials() throws Exception {
        String header = "Basic " + Base64.getEncoder().encodeToString((USER + ":" + PASSWORD).getBytes(StandardCharsets.UTF_8));
        registry.basicHeader = header;
        push(registry, "t", "arm64", null, true, bytes("a"));

        client(RegistryAuth.load(authFileWithPassword(PASSWORD), Map.of(), events::add))
                .resolve(ref(":t"), Arch.AARCH64, false, cache);

        assertThat(registry.requests).filteredOn(r -> r.authorization() != null)
                .extracting(FakeRegistry.Request::authorization).containsOnly(header);
    }

    // ---- redirects ----

    @Test
    void followsBlobRedirectsWithoutLeakingAuthorizationToAnotherHost() throws Exception {
        registry.tokenUser = USER;
        registry.tokenPassword = PASSWORD;
        Pushed p = push(registry, "t", "arm64", null, true, bytes("via cdn"), bytes("via mirror path"));
        try (FakeRegistry cdn = new FakeRegistry()) {
            cdn.putBlob(bytes("via cdn"));
            registry.redirectBlob(REPO, p.layers().get(0), "http://" + cdn.host() + "/v2/cdn/blobs/" + p.layers().get(0) + "?sig=x");
            registry.redirectBlob(REPO, p.layers().get(1), "/v2/mirror/blobs/" + p.layers().get(1));

            RegistryClient.Result result = client(RegistryAuth.load(authFileWithPassword(PASSWORD), Map.of(), events::add))
                    .resolve(ref(":t"), Arch.AARCH64, false, cache);

            assertThat(Files.readAllBytes(result.image().layers().get(0).blob())).isEqualTo(bytes("via cdn"));
            assertThat(Files.readAllBytes(result.image().layers().get(1).blob())).isEqualTo(bytes("via mirror path"));
            assertThat(cdn.requests).singleElement().satisfies(r -> {
                assertThat(r.path()).isEqualTo("/v2/cdn/blobs/" + p.layers().get(0));
                assertThat(r.authorization()).isNull();
            });
            assertThat(registry.requests).filteredOn(r -> r.path().startsWith("/v2/mirror/"))
                    .singleElement().extracting(FakeRegistry.Request::authorization)
                    .as("same origin keeps the token").isEqualTo("Bearer " + registry.token);
        }
    }

    @Test
    void refusesAnHttpClientThatFollowsRedirectsItself() {
        HttpClient following = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL).build();

        assertThatThrownBy(() -> new RegistryClient(following, Set.of(), RegistryAuth.none(), events::add))
                .isInstanceOf(IllegalArgumentException.class);
    }

    // ---- failures ----

    @Test
    void missingTagIsNotFound() throws Exception {
        ImageRef ref = ref(":nope");

        assertThatThrownBy(() -> client().resolve(ref, Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith(ref + ": not found in " + registry.host());
    }

    @Test
    void serverErrorsAreFailuresWithTheStatus() throws Exception {
        registry.failWith = 503;

        VbakeException e = catchThrowableOfType(VbakeException.class,
                () -> client().resolve(ref(":t"), Arch.AARCH64, false, cache));

        assertThat(e).isNotInstanceOf(BadInputException.class).hasMessageContaining("503");
        assertThat(e.exitCode()).isEqualTo(1);
    }

    @Test
    void refusedConnectionCannotReachTheRegistry() throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        ImageRef ref = ImageRef.parse("127.0.0.1:" + port + "/a/b:1");

        assertThatThrownBy(() -> client().resolve(ref, Arch.AARCH64, false, cache))
                .isInstanceOf(BadInputException.class)
                .hasMessageStartingWith("cannot reach registry 127.0.0.1:" + port + ": ");
    }

    @Test
    void httpsAgainstAPlainHttpRegistryHintsAtInsecureRegistry() throws Exception {
        // What a plain-http registry does with a TLS ClientHello: a 400 in clear text, then close.
        try (ServerSocket plain = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            Thread answer = new Thread(() -> {
                try (Socket s = plain.accept()) {
                    s.getInputStream().read(new byte[512]);
                    s.getOutputStream().write(bytes("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"));
                } catch (IOException ignored) {
                    // the client hung up first
                }
            });
            answer.setDaemon(true);
            answer.start();
            String host = "127.0.0.1:" + plain.getLocalPort();

            BadInputException e = catchThrowableOfType(BadInputException.class,
                    () -> httpsOnly(Set.of(), Duration.ofSeconds(10)).resolve(ImageRef.parse(host + "/a/b:1"),
                            Arch.AARCH64, false, cache));

            // Usually the handshake fails at once ("TLS failed"); on a loaded machine the JDK may
            // still be waiting when the timeout hits. Either way the hint must name the flag.
            assertThat(e).hasMessageStartingWith("cannot reach registry " + host + ": ");
            assertThat(e.hint()).contains("pass --insecure-registry " + host);
        }
    }

    @Test
    void aTlsHandshakeThatHangsAlsoHintsAtInsecureRegistry() throws Exception {
        BadInputException e = catchThrowableOfType(BadInputException.class,
                () -> httpsOnly(Set.of(), Duration.ofMillis(500)).resolve(ref(":t"), Arch.AARCH64, false, cache));

        assertThat(e).hasMessageStartingWith("cannot reach registry " + registry.host());
        assertThat(e.hint()).contains("--insecure-registry " + registry.host());
    }

    @Test
    void insecureRegistriesAreSpokenToOverPlainHttp() throws Exception {
        push(registry, "t", "arm64", null, true, bytes("a"));

        RegistryClient.Result result = httpsOnly(Set.of(registry.host()), Duration.ofSeconds(10))
                .resolve(ref(":t"), Arch.AARCH64, false, cache);

        assertThat(result.image().architecture()).isEqualTo("arm64");
    }

    /** Loopback registries are not plain http by default, so https failures can be provoked on 127.0.0.1. */
    private RegistryClient httpsOnly(Set<String> insecure, Duration responseTimeout) {
        return new RegistryClient(RegistryClient.defaultHttpClient(), insecure, RegistryAuth.none(), events::add,
                responseTimeout, Duration.ofSeconds(10), false);
    }

    @Test
    void aStalledBlobFailsAfterTheIdleTimeoutAndLeavesNothingCached() throws Exception {
        Pushed p = push(registry, "t", "arm64", null, true, bytes("a layer that will stall halfway"));
        registry.stallBlobsAfter = 5;
        // config is fetched before the layer and would stall too: put it in the cache first
        cache.put(p.config(), "config");
        RegistryClient impatient = new RegistryClient(RegistryClient.defaultHttpClient(), Set.of(), RegistryAuth.none(),
                events::add, Duration.ofSeconds(5), Duration.ofMillis(300), true);
        long started = System.nanoTime();

        VbakeException e = catchThrowableOfType(VbakeException.class,
                () -> impatient.resolve(ref(":t"), Arch.AARCH64, false, cache));

        assertThat(e).isNotInstanceOf(BadInputException.class).hasMessageContaining("stopped sending");
        assertThat(Duration.ofNanos(System.nanoTime() - started)).isLessThan(Duration.ofSeconds(5));
        assertThat(cache.contains(p.layers().get(0))).isFalse();
    }

    // ---- small parts ----

    @Test
    void plainHttpOnlyForInsecureAndLoopbackRegistries() throws Exception {
        RegistryClient c = new RegistryClient(Set.of("myreg:5000", "http://other.example"), RegistryAuth.none(), events::add);

        assertThat(c.baseUri(ImageRef.parse("alpine")).toString()).isEqualTo("https://registry-1.docker.io");
        assertThat(c.baseUri(ImageRef.parse("quay.io/a/b")).toString()).isEqualTo("https://quay.io");
        assertThat(c.baseUri(ImageRef.parse("myreg:5000/a")).toString()).isEqualTo("http://myreg:5000");
        assertThat(c.baseUri(ImageRef.parse("myreg:5001/a")).toString()).isEqualTo("https://myreg:5001");
        assertThat(c.baseUri(ImageRef.parse("other.example:8443/a")).toString()).isEqualTo("http://other.example:8443");
        assertThat(c.baseUri(ImageRef.parse("localhost:5000/a")).toString()).isEqualTo("http://localhost:5000");
        assertThat(c.baseUri(ImageRef.parse("localhost/a")).toString()).isEqualTo("http://localhost");
        assertThat(c.baseUri(ImageRef.parse("127.1.2.3:80/a")).toString()).isEqualTo("http://127.1.2.3:80");
        assertThat(c.baseUri(ImageRef.parse("[::1]:5000/a")).toString()).isEqualTo("http://[::1]:5000");
        assertThat(c.baseUri(ImageRef.parse("128.0.0.1:5000/a")).toString()).isEqualTo("https://128.0.0.1:5000");
    }

    @Test
    void humanSizesAreDecimalLikeDockers() {
        assertThat(RegistryClient.humanSize(0)).isEqualTo("0 B");
        assertThat(RegistryClient.humanSize(999)).isEqualTo("999 B");
        assertThat(RegistryClient.humanSize(1000)).isEqualTo("1.0 kB");
        assertThat(RegistryClient.humanSize(12_345_678)).isEqualTo("12.3 MB");
        assertThat(RegistryClient.humanSize(3_200_000_000L)).isEqualTo("3.2 GB");
    }

    @Test
    void parsesChallengesWithQuotedCommas() {
        RegistryClient.Challenge c = RegistryClient.Challenge.parse(
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:a/b:pull,push\"");

        assertThat(c.scheme()).isEqualTo("bearer");
        assertThat(c.params()).containsExactly(
                Map.entry("realm", "https://auth.docker.io/token"),
                Map.entry("service", "registry.docker.io"),
                Map.entry("scope", "repository:a/b:pull,push"));
        assertThat(RegistryClient.Challenge.pick(List.of("Basic realm=\"x\"", "Bearer realm=\"y\"")).scheme())
                .isEqualTo("bearer");
        assertThat(RegistryClient.Challenge.pick(List.of("Basic realm=\"x\"")).params()).containsEntry("realm", "x");
    }
}
