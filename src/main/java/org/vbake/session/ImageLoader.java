package org.vbake.session;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.Digest;
import org.vbake.image.DockerArchiveWriter;
import org.vbake.image.LayerScan;
import org.vbake.image.OciLayoutWriter;
import org.vbake.image.ResolvedImage;
import org.vbake.image.registry.ImageRef;
import org.vbake.runtime.ContainerRuntime;
import org.vbake.storage.InputDisk;

/**
 * Puts host-resolved images into the guest's engine so that it holds them exactly as a pull
 * would have left them: same image ID (the config bytes are passed through untouched), the
 * requested tags, and the upstream manifest digest as RepoDigest.
 *
 * <p>docker gets a {@code docker save}-format archive with the layers already decompressed on
 * the host (no gunzip under TCG); its RepoDigests are written into the reference store before
 * dockerd starts, because no docker API can add one. podman pulls from an OCI layout holding the
 * original manifest, so its stored manifest digest is the upstream one.
 */
public final class ImageLoader {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One image staged on the input disk. */
    public record Staged(ResolvedImage image, List<String> tags, String guestPath, Digest repoDigest) {
    }

    private final ContainerRuntime runtime;
    private final EventListener events;
    private final LayerScan.Rules rules;

    /**
     * @param rules what every layer must satisfy before it is staged (see {@link LayerScan});
     *              {@link #rules} makes them for a host directory
     */
    public ImageLoader(ContainerRuntime runtime, EventListener events, LayerScan.Rules rules) {
        this.runtime = runtime;
        this.events = events;
        this.rules = rules;
    }

    /** The layer rules for this runtime, with content landing on the filesystem of {@code hostDir}. */
    public static LayerScan.Rules rules(ContainerRuntime runtime, Path hostDir, Map<String, String> env)
            throws BadInputException, IOException {
        return LayerScan.rules(hostDir, env, runtime.layersUnpackedAlone());
    }

    /**
     * Refuses, before any boot, an image the engine could not hold: deeper than it allows, or a
     * layer that breaks a rule of {@link LayerScan}. Returns each layer's uncompressed size.
     */
    public Map<Digest, Long> check(ResolvedImage image) throws IOException, BadInputException {
        checkDepth(image);
        Map<Digest, Long> sizes = new LinkedHashMap<>();
        long t0 = System.nanoTime();
        for (ResolvedImage.Layer layer : image.layers()) {
            if (!sizes.containsKey(layer.diffId())) {
                sizes.put(layer.diffId(), LayerScan.scan(layer, image.source() + ": layer " + layer.digest(), rules));
            }
        }
        events.on(new Event.Phase("checked the layers of " + image.source(),
                java.time.Duration.ofNanos(System.nanoTime() - t0)));
        return sizes;
    }

    /** Refuses an image deeper than the engine allows (docker's 125 layers), without reading a layer. */
    public void checkDepth(ResolvedImage image) throws BadInputException {
        int max = runtime.maxLayers();
        if (image.layers().size() > max) {
            throw new BadInputException(image.source() + " has " + image.layers().size() + " layers; "
                    + runtime.kind().id() + " holds at most " + max, "flatten the image (fewer layers) first");
        }
    }

    /** The rules {@link #check} applies. */
    public LayerScan.Rules rules() {
        return rules;
    }

    /**
     * Writes {@code image} onto the input disk in the form this runtime loads fastest.
     *
     * @param tags       full references ({@code docker.io/library/alpine:3.20}) to give it
     * @param repoDigest the digest users pull it by ({@code name@digest}), or null
     */
    public Staged stage(ResolvedImage image, List<String> tags, Digest repoDigest, InputDisk disk, String name)
            throws IOException, VbakeException {
        Map<Digest, Long> sizes = check(image);
        long t0 = System.nanoTime();
        String guestPath;
        if (runtime.imageTransfer() == ContainerRuntime.ImageTransfer.DOCKER_ARCHIVE) {
            List<String> local = new ArrayList<>();
            for (String t : tags) {
                local.add(runtime.localName(t));
            }
            ResolvedImage tagged = image.withTags(local);
            long bytes = sizes.values().stream().mapToLong(Long::longValue).sum();
            disk.ensureRoom(bytes, image.source());
            disk.write(name + ".tar", out -> DockerArchiveWriter.write(tagged, out, sizes));
            guestPath = disk.guestPath(name + ".tar");
        } else {
            OciLayoutWriter.write(image, disk.file(name), null);
            guestPath = disk.guestPath(name);
        }
        events.on(new Event.Phase("staged " + image.source(),
                java.time.Duration.ofNanos(System.nanoTime() - t0)));
        return new Staged(image, tags, guestPath, repoDigest);
    }

    /**
     * docker only, before the engine starts: records {@code name@digest} for each staged image
     * that has a repository and a digest, in dockerd's reference store.
     */
    public void addRepoDigests(GuestSession session, List<Staged> staged) throws VbakeException, InterruptedException {
        if (!needsRepoDigests(staged)) {
            return;
        }
        List<Staged> withDigest = staged.stream()
                .filter(s -> s.repoDigest() != null && s.image().repository() != null).toList();
        String path = runtime.storagePath() + "/image/" + runtime.driver() + "/repositories.json";
        String current = session.check(List.of("/bin/sh", "-c", "cat \"$1\" 2>/dev/null || true", "sh", path),
                "read the reference store");
        ObjectNode root;
        try {
            root = current.isBlank() ? JSON.createObjectNode() : (ObjectNode) JSON.readTree(current);
        } catch (IOException | ClassCastException e) {
            throw new VbakeException(1, "the engine's reference store " + path + " is not valid JSON", null, null);
        }
        ObjectNode repos = root.has("Repositories") ? (ObjectNode) root.get("Repositories")
                : root.putObject("Repositories");
        for (Staged s : withDigest) {
            String repo = runtime.localName(ImageRef.parse(s.image().repository()).name());
            ObjectNode refs = repos.has(repo) ? (ObjectNode) repos.get(repo) : repos.putObject(repo);
            refs.put(repo + "@" + s.repoDigest(), s.image().configDigest().toString());
        }
        try {
            // dockerd makes image/ and image/DRIVER/ 0700 when it starts; made first here, they get
            // the same mode (writeFile's mkdir -p would make them 0755).
            session.check(List.of("/bin/sh", "-c", "umask 077 && mkdir -p \"$(dirname \"$1\")\"", "sh", path),
                    "make the reference store's directory");
            // 0600 as dockerd writes it: a bake that only reads the store must leave the same bytes.
            session.writeFile(path, JSON.writeValueAsBytes(root), "600");
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Whether {@link #addRepoDigests} has anything to write (docker, and an image with a repo digest). */
    public boolean needsRepoDigests(List<Staged> staged) {
        return runtime.imageTransfer() == ContainerRuntime.ImageTransfer.DOCKER_ARCHIVE
                && staged.stream().anyMatch(s -> s.repoDigest() != null && s.image().repository() != null);
    }

    /** Loads one staged image into the running engine and gives it its tags. Returns the image ID. */
    public String load(GuestSession session, Staged s) throws VbakeException, InterruptedException {
        String what = "load " + s.image().source();
        if (runtime.imageTransfer() == ContainerRuntime.ImageTransfer.DOCKER_ARCHIVE) {
            session.engine(List.of("load", "-q", "-i", s.guestPath()), what);
        } else {
            // podman 4 names an image pulled from a layout after the path it was pulled from, and
            // keeps that name in its names-history for good: pulled through a fixed path, the
            // history is the same whether the layout came on an input disk or through the agent,
            // and in every bake.
            String fixed = ContainerRuntime.LAYOUT_PULL_DIR + "/" + s.guestPath().substring(s.guestPath().lastIndexOf('/') + 1);
            session.check(List.of("/bin/sh", "-c", "mkdir -p \"$1\" && ln -sfn \"$2\" \"$3\"", "sh", ContainerRuntime.LAYOUT_PULL_DIR,
                    s.guestPath(), fixed), what);
            String out = session.engine(List.of("pull", "-q", "oci:" + fixed), what);
            String[] lines = out.strip().split("\n");
            String id = lines[lines.length - 1].strip();
            if (!s.image().configDigest().hex().equals(id)) {
                throw new VbakeException(1, "podman stored " + s.image().source() + " as " + id + ", expected "
                        + s.image().configDigest().hex(), null, null);
            }
            // podman names an image pulled from a layout after the layout's path; the user's
            // names replace that one.
            session.engine(List.of("untag", id), what);
            List<String> names = new ArrayList<>(s.tags());
            if (names.isEmpty() && s.image().repository() != null && s.repoDigest() != null) {
                // A name is needed for RepoDigests; a digest-only pull has no tag, so one is derived.
                names.add(s.image().repository() + ":sha256-" + s.repoDigest().shortId());
            }
            for (String t : names) {
                session.engine(List.of("tag", id, t), what);
            }
        }
        events.on(new Event.Progress("loaded " + s.image().source() + " as "
                + (s.tags().isEmpty() ? s.image().configDigest().shortId() : String.join(", ", s.tags()))
                + " (" + s.image().platform() + ", image ID " + s.image().configDigest() + ")"));
        return s.image().configDigest().toString();
    }

    /** Normalises a user-given name to a full tagged reference ({@code x} → {@code docker.io/library/x:latest}). */
    public static String fullTag(String name) throws BadInputException {
        ImageRef ref = ImageRef.parse(name);
        if (ref.digest() != null && ref.tag() == null) {
            throw new BadInputException("cannot name an image by digest: " + name, "give a name:tag");
        }
        return ref.name() + ":" + (ref.tag() != null ? ref.tag() : "latest");
    }
}
