package org.vbake.image.registry;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;

/**
 * Registry credentials from the files {@code podman login} and {@code docker login} write, looked
 * up the way they look them up. Only what is written in the files is used: credential helpers
 * ({@code credHelpers}, {@code credsStore}) are not run; a registry configured only through one is
 * pulled anonymously after a warning. Secrets never appear in messages or {@link #toString()}.
 */
public final class RegistryAuth {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Set<String> DOCKER_HUB_ALIASES =
            Set.of("docker.io", "index.docker.io", "registry-1.docker.io");

    private final List<AuthFile> files;
    private final EventListener events;
    private final Set<String> warned = ConcurrentHashMap.newKeySet();

    private RegistryAuth(List<AuthFile> files, EventListener events) {
        this.files = List.copyOf(files);
        this.events = events;
    }

    /** No credentials at all: every pull is anonymous. */
    public static RegistryAuth none() {
        return new RegistryAuth(List.of(), EventListener.NONE);
    }

    /**
     * Reads, in this order (the first file with an entry for a registry wins): {@code explicitFile}
     * (the {@code --authfile} flag, may be null), {@code $REGISTRY_AUTH_FILE},
     * {@code $XDG_RUNTIME_DIR/containers/auth.json},
     * {@code ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json}, and docker's
     * {@code config.json} in {@code $DOCKER_CONFIG}, or in {@code $HOME/.docker} when that is unset
     * (as docker does). The first two must exist when named; the defaults are skipped when absent.
     * Any file that exists must be well-formed.
     *
     * @param env the process environment ({@code System.getenv()} in production)
     */
    public static RegistryAuth load(Path explicitFile, Map<String, String> env, EventListener events)
            throws BadInputException {
        List<AuthFile> files = new ArrayList<>();
        if (explicitFile != null) {
            files.add(readRequired(explicitFile, "--authfile"));
        }
        String fromEnv = nonBlank(env.get("REGISTRY_AUTH_FILE"));
        if (fromEnv != null) {
            files.add(readRequired(Path.of(fromEnv), "REGISTRY_AUTH_FILE"));
        }
        String home = nonBlank(env.get("HOME"));
        String runtimeDir = nonBlank(env.get("XDG_RUNTIME_DIR"));
        if (runtimeDir != null) {
            readOptional(Path.of(runtimeDir, "containers", "auth.json"), files);
        }
        String configHome = nonBlank(env.get("XDG_CONFIG_HOME"));
        if (configHome != null) {
            readOptional(Path.of(configHome, "containers", "auth.json"), files);
        } else if (home != null) {
            readOptional(Path.of(home, ".config", "containers", "auth.json"), files);
        }
        String dockerConfig = nonBlank(env.get("DOCKER_CONFIG"));
        if (dockerConfig != null) {
            readOptional(Path.of(dockerConfig, "config.json"), files);
        } else if (home != null) {
            readOptional(Path.of(home, ".docker", "config.json"), files);
        }
        return new RegistryAuth(deduplicate(files), events);
    }

    /** The files read, in lookup order. */
    public List<Path> files() {
        return files.stream().map(AuthFile::path).toList();
    }

    /**
     * Credentials for a repository on a registry ({@code docker.io} or any of its aliases,
     * {@code quay.io}, {@code 127.0.0.1:5000}), or null to pull anonymously. A key naming a
     * namespace ({@code quay.io/org}) is preferred over the bare registry within a file.
     */
    Credentials lookup(String registry, String repository) {
        String host = canonicalHost(registry);
        List<String> candidates = new ArrayList<>();
        String path = repository;
        while (path != null && !path.isEmpty()) {
            candidates.add(host + "/" + path);
            int slash = path.lastIndexOf('/');
            path = slash < 0 ? null : path.substring(0, slash);
        }
        candidates.add(host);

        String helperFile = null;
        for (AuthFile file : files) {
            for (String key : candidates) {
                if (file.helperKeys().contains(key)) {
                    if (helperFile == null) {
                        helperFile = file.path() + " (credHelpers)";
                    }
                    break;
                }
                Entry entry = file.auths().get(key);
                if (entry == null) {
                    continue;
                }
                if (entry.credentials() != null) {
                    return entry.credentials();
                }
                if (file.credsStore() != null && helperFile == null) {
                    helperFile = file.path() + " (credsStore)";
                }
            }
        }
        if (helperFile != null && warned.add(host)) {
            events.on(new Event.Progress("warning: credentials for " + host + " are kept by a credential helper ("
                    + helperFile + "), which vbake does not run; pulling anonymously. To use them, "
                    + "write them to a file with 'podman login --authfile FILE " + host + "' and pass --authfile FILE"));
        }
        return null;
    }

    @Override
    public String toString() {
        return "RegistryAuth" + files();
    }

    /** Just these credentials for {@code host} (to check them before they are stored). */
    public static RegistryAuth of(String host, String username, String password) {
        Path none = Path.of("(login)");
        AuthFile f = new AuthFile(none, Map.of(canonicalHost(host), new Entry(new Credentials(username, password,
                null, none))), Set.of(), null);
        return new RegistryAuth(List.of(f), EventListener.NONE);
    }

    /**
     * Where {@code login} writes for this tool, as docker and podman do: an explicit file (the
     * flag, then {@code $REGISTRY_AUTH_FILE}); else docker's {@code config.json} (in
     * {@code $DOCKER_CONFIG} or {@code ~/.docker}) for vdkr, and podman's persistent
     * {@code ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json} for vpdmn. The pulls read all of them.
     */
    public static Path loginFile(Path explicitFile, Map<String, String> env, boolean docker) {
        if (explicitFile != null) {
            return explicitFile;
        }
        String fromEnv = nonBlank(env.get("REGISTRY_AUTH_FILE"));
        if (fromEnv != null) {
            return Path.of(fromEnv);
        }
        String home = env.getOrDefault("HOME", System.getProperty("user.home"));
        if (docker) {
            String dockerConfig = nonBlank(env.get("DOCKER_CONFIG"));
            return (dockerConfig != null ? Path.of(dockerConfig) : Path.of(home, ".docker")).resolve("config.json");
        }
        String configHome = nonBlank(env.get("XDG_CONFIG_HOME"));
        return (configHome != null ? Path.of(configHome) : Path.of(home, ".config")).resolve("containers")
                .resolve("auth.json");
    }

    /**
     * Writes (or replaces) {@code host}'s entry in {@code file}, keeping everything else in it;
     * the file is 0600 and written whole under a new name first. Returns the file.
     */
    public static Path store(Path file, String host, String username, String password) throws BadInputException {
        ObjectNode root = readForUpdate(file);
        ObjectNode auths = root.has("auths") && root.get("auths").isObject() ? (ObjectNode) root.get("auths")
                : root.putObject("auths");
        auths.putObject(canonicalHost(host)).put("auth", Base64.getEncoder().encodeToString(
                (username + ":" + password).getBytes(StandardCharsets.UTF_8)));
        writePrivate(file, root);
        return file;
    }

    /** Removes {@code host}'s entry from {@code file}; false when it had none. */
    public static boolean remove(Path file, String host) throws BadInputException {
        if (!Files.isRegularFile(file)) {
            return false;
        }
        ObjectNode root = readForUpdate(file);
        JsonNode auths = root.get("auths");
        String key = canonicalHost(host);
        boolean removed = false;
        if (auths instanceof ObjectNode o) {
            List<String> keys = new ArrayList<>();
            o.fieldNames().forEachRemaining(keys::add);
            for (String k : keys) {
                if (normaliseKey(k).equals(key)) {
                    o.remove(k);
                    removed = true;
                }
            }
        }
        if (removed) {
            writePrivate(file, root);
        }
        return removed;
    }

    private static ObjectNode readForUpdate(Path file) throws BadInputException {
        if (!Files.exists(file)) {
            return JSON.createObjectNode();
        }
        try {
            JsonNode n = JSON.readTree(Files.readAllBytes(file));
            if (n == null || n.isMissingNode()) {
                return JSON.createObjectNode();
            }
            if (!(n instanceof ObjectNode o)) {
                throw malformed(file, "the top level is not a JSON object");
            }
            return o;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw malformed(file, "not valid JSON");
        } catch (IOException e) {
            throw new BadInputException("cannot read auth file " + file + ": " + e.getClass().getSimpleName());
        }
    }

    private static void writePrivate(Path file, ObjectNode root) throws BadInputException {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".new");
            Files.deleteIfExists(tmp);
            Files.createFile(tmp, java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                    java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
            Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root));
            Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new BadInputException("cannot write auth file " + file + ": " + e.getMessage());
        }
    }

    /** Docker Hub has several names in auth files; all of them mean docker.io. */
    static String canonicalHost(String host) {
        String h = host.toLowerCase(Locale.ROOT);
        return DOCKER_HUB_ALIASES.contains(h) ? ImageRef.DOCKER_HUB : h;
    }

    /**
     * {@code https://index.docker.io/v1/} becomes {@code docker.io}; a key without a scheme keeps
     * its path ({@code quay.io/org}), as podman reads it.
     */
    static String normaliseKey(String key) {
        String k = key.trim();
        boolean hadScheme = false;
        for (String scheme : new String[] {"https://", "http://"}) {
            if (k.regionMatches(true, 0, scheme, 0, scheme.length())) {
                k = k.substring(scheme.length());
                hadScheme = true;
            }
        }
        int slash = k.indexOf('/');
        String host = slash < 0 ? k : k.substring(0, slash);
        String path = slash < 0 || hadScheme ? "" : k.substring(slash + 1);
        while (path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        host = canonicalHost(host);
        return path.isEmpty() ? host : host + "/" + path;
    }

    /** A file the user named ({@code origin}: the flag or variable that named it): it must be an auth file. */
    private static AuthFile readRequired(Path file, String origin) throws BadInputException {
        if (Files.isDirectory(file)) {
            throw new BadInputException(origin + " names " + file + ", which is a directory, not an auth file");
        }
        if (!Files.exists(file)) {
            throw new BadInputException(origin + " names " + file + ", which does not exist");
        }
        if (!Files.isRegularFile(file)) {
            throw new BadInputException(origin + " names " + file + ", which is not a regular file");
        }
        try {
            if (Files.size(file) == 0) {
                throw new BadInputException(origin + " names " + file + ", which is empty",
                        "an auth file is JSON: {\"auths\": {\"HOST\": {\"auth\": \"base64(user:password)\"}}}");
            }
        } catch (IOException e) {
            throw new BadInputException("cannot read auth file " + file + ": " + e.getClass().getSimpleName());
        }
        return parse(file);
    }

    private static void readOptional(Path file, List<AuthFile> into) throws BadInputException {
        if (Files.isRegularFile(file)) {
            into.add(parse(file));
        }
    }

    private static List<AuthFile> deduplicate(List<AuthFile> files) {
        Map<Path, AuthFile> byPath = new LinkedHashMap<>();
        for (AuthFile f : files) {
            byPath.putIfAbsent(f.path().toAbsolutePath().normalize(), f);
        }
        return List.copyOf(byPath.values());
    }

    /** Error messages name the file and a position, never content: the content is secret. */
    static AuthFile parse(Path file) throws BadInputException {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(file));
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw malformed(file, "not valid JSON"
                    + (at != null ? " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")" : ""));
        } catch (IOException e) {
            throw new BadInputException("cannot read auth file " + file + ": " + e.getClass().getSimpleName());
        }
        if (root == null || !root.isObject()) {
            throw malformed(file, "the top level is not a JSON object");
        }
        Map<String, Entry> auths = new LinkedHashMap<>();
        JsonNode authsNode = root.path("auths");
        if (!authsNode.isMissingNode() && !authsNode.isNull()) {
            if (!authsNode.isObject()) {
                throw malformed(file, "\"auths\" is not an object");
            }
            for (Map.Entry<String, JsonNode> e : authsNode.properties()) {
                String key = normaliseKey(e.getKey());
                auths.putIfAbsent(key, entry(file, key, e.getValue()));
            }
        }
        Set<String> helperKeys = new HashSet<>();
        JsonNode helpers = root.path("credHelpers");
        if (helpers.isObject()) {
            helpers.properties().forEach(e -> helperKeys.add(normaliseKey(e.getKey())));
        }
        String credsStore = nonBlank(root.path("credsStore").asText(null));
        return new AuthFile(file, auths, Set.copyOf(helperKeys), credsStore);
    }

    private static Entry entry(Path file, String key, JsonNode node) throws BadInputException {
        if (!node.isObject()) {
            throw malformed(file, "the entry for " + key + " is not an object");
        }
        String identityToken = nonBlank(node.path("identitytoken").asText(null));
        String auth = nonBlank(node.path("auth").asText(null));
        String username = nonBlank(node.path("username").asText(null));
        String password = node.path("password").asText(null);
        if (auth != null) {
            String decoded;
            try {
                decoded = new String(Base64.getDecoder().decode(auth.trim()), StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                throw malformed(file, "the \"auth\" of " + key + " is not base64");
            }
            int colon = decoded.indexOf(':');
            if (colon < 0) {
                throw malformed(file, "the \"auth\" of " + key + " is not base64 of user:password");
            }
            username = decoded.substring(0, colon);
            password = decoded.substring(colon + 1);
        }
        if (identityToken != null) {
            return new Entry(new Credentials(username, null, identityToken, file));
        }
        if (username != null && password != null) {
            return new Entry(new Credentials(username, password, null, file));
        }
        return new Entry(null);
    }

    private static BadInputException malformed(Path file, String why) {
        return new BadInputException("auth file " + file + " is malformed: " + why,
                "fix or remove it, or log in again with 'podman login' / 'docker login'");
    }

    private static String nonBlank(String s) {
        return s == null || s.isBlank() ? null : s;
    }

    record AuthFile(Path path, Map<String, Entry> auths, Set<String> helperKeys, String credsStore) {
    }

    /** An {@code auths} entry; {@code credentials} is null when it is a placeholder for a helper. */
    record Entry(Credentials credentials) {
    }

    /**
     * A user and password, or an identity token (an OAuth2 refresh token, which docker stores
     * after logging in with one). {@code source} is the file they came from, for messages.
     */
    static final class Credentials {
        private final String username;
        private final String password;
        private final String identityToken;
        private final Path source;

        Credentials(String username, String password, String identityToken, Path source) {
            this.username = username;
            this.password = password;
            this.identityToken = identityToken;
            this.source = source;
        }

        Path source() {
            return source;
        }

        String identityToken() {
            return identityToken;
        }

        boolean hasPassword() {
            return username != null && password != null;
        }

        /** The value of an {@code Authorization} header, null without a password. */
        String basicHeader() {
            if (!hasPassword()) {
                return null;
            }
            return "Basic " + Base64.getEncoder()
                    .encodeToString((username + ":" + password).getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public String toString() {
            return "Credentials[from " + source + "]";
        }
    }
}
