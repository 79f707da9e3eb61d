package org.vbake.bake;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.VbakeException;
import org.vbake.image.Digest;
import org.vbake.image.registry.ImageRef;
import org.vbake.image.registry.RegistryClient;
import org.vbake.instance.Trees;

/**
 * The bake cache shared through an OCI registry ({@code --cache-registry HOST/REPO}), for build
 * hosts that share their bakes: a bake's output directory is an OCI artifact (one layer per
 * file, its name as the title) tagged {@code vbake-KEY}, KEY being {@link BakeCache}'s content key.
 * A bake looks the key up before it works and downloads the files on a hit, each checked against
 * its digest and then against the bake's own marker; it pushes its output after a miss. A
 * registry that cannot be reached, or an artifact that does not check out, only warns: the bake
 * goes on without it.
 */
final class RegistryBakeCache {

    static final String ARTIFACT_TYPE = "application/vnd.vbake.bake.v1";
    private static final String FILE_TYPE = "application/octet-stream";

    private final RegistryClient client;
    private final String repository;
    private final EventListener events;

    RegistryBakeCache(RegistryClient client, String repository, EventListener events) {
        this.client = client;
        this.repository = repository;
        this.events = events;
    }

    /** {@code HOST[:PORT]/REPO}, checked. */
    static String checkRepository(String value) throws BadInputException {
        ImageRef ref;
        try {
            ref = ImageRef.parse(value + ":probe");
        } catch (BadInputException e) {
            throw new BadInputException("--cache-registry " + value + ": not a registry repository ("
                    + e.getMessage() + ")", "give HOST[:PORT]/REPOSITORY, e.g. registry.example.com/vbake/cache");
        }
        if (value.contains("@") || !value.contains("/") || value.substring(value.lastIndexOf('/')).contains(":")) {
            throw new BadInputException("--cache-registry " + value + ": give HOST[:PORT]/REPOSITORY, without a tag");
        }
        return ref.name();
    }

    private ImageRef ref(String key) throws BadInputException {
        return ImageRef.parse(repository + ":vbake-" + key);
    }

    /** Downloads the bake for {@code key} into {@code work} (empty); false on a miss or any trouble (said why). */
    boolean download(String key, Path work) throws InterruptedException {
        long t0 = System.nanoTime();
        ImageRef ref;
        List<RegistryClient.ArtifactFile> files;
        try {
            ref = ref(key);
            files = client.fetchArtifact(ref, ARTIFACT_TYPE);
        } catch (VbakeException e) {
            events.on(new Event.Progress("warning: the bake cache " + repository + " cannot be read ("
                    + e.getMessage() + "); baking"));
            return false;
        }
        if (files == null) {
            events.on(new Event.Debug("bake cache " + repository + ": no bake for this key yet"));
            return false;
        }
        try {
            for (RegistryClient.ArtifactFile f : files) {
                Path target = work.resolve(f.name()).normalize();
                if (!target.startsWith(work)) {
                    throw new BadInputException("a file outside the output (" + f.name() + ")");
                }
                Files.createDirectories(target.getParent());
                client.fetchBlob(ref, f, target);
            }
            if (!BakeCache.upToDate(work, key)) {
                throw new BadInputException("its files do not match its marker");
            }
        } catch (VbakeException | IOException e) {
            events.on(new Event.Progress("warning: the bake cache " + repository + " holds a copy of this bake that "
                    + "does not check out (" + e.getMessage() + "); baking"));
            clear(work);
            return false;
        }
        events.on(new Event.Progress(String.format(java.util.Locale.ROOT, "downloaded this bake from the bake cache "
                + "%s in %.1f s", repository, (System.nanoTime() - t0) / 1e9)));
        return true;
    }

    /** Pushes the bake in {@code out} under {@code key}; a failure only warns. */
    void upload(String key, Path out) throws InterruptedException {
        try {
            List<RegistryClient.ArtifactFile> files = new ArrayList<>();
            Map<String, Path> paths = new LinkedHashMap<>();
            List<Path> all;
            try (Stream<Path> s = Files.walk(out)) {
                all = s.filter(Files::isRegularFile).sorted().toList();
            }
            for (Path p : all) {
                String name = out.relativize(p).toString().replace('\\', '/');
                Digest d;
                try (InputStream in = Files.newInputStream(p)) {
                    d = Digest.of(in);
                }
                files.add(new RegistryClient.ArtifactFile(name, d, Files.size(p), FILE_TYPE));
                paths.put(name, p);
            }
            client.pushArtifact(ref(key), ARTIFACT_TYPE, files, paths);
            events.on(new Event.Progress("pushed this bake to the bake cache " + repository));
        } catch (VbakeException | IOException e) {
            events.on(new Event.Progress("warning: cannot push this bake to the bake cache " + repository + " ("
                    + e.getMessage() + ")"));
        }
    }

    private static void clear(Path dir) {
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.toList()) {
                Trees.deleteTree(p);
            }
        } catch (IOException e) {
            // the work directory is removed at the end of the bake anyway
        }
    }
}
