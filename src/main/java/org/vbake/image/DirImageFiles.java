package org.vbake.image;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import java.util.LinkedHashSet;
import org.vbake.api.BadInputException;

/** An image layout unpacked in a directory. */
final class DirImageFiles implements ImageFiles {

    private final Path root;
    private final String source;

    DirImageFiles(Path root, String source) {
        this.root = root.toAbsolutePath().normalize();
        this.source = source;
    }

    @Override
    public String source() {
        return source;
    }

    @Override
    public String canonical(String name) {
        Path p = root.resolve(name).normalize();
        return p.startsWith(root) && Files.isRegularFile(p) ? root.relativize(p).toString() : null;
    }

    @Override
    public long size(String canonicalName) throws IOException {
        return Files.size(root.resolve(canonicalName));
    }

    @Override
    public void stream(Collection<String> canonicalNames, EntryHandler handler) throws IOException, BadInputException {
        for (String name : new LinkedHashSet<>(canonicalNames)) {
            try (InputStream in = Files.newInputStream(root.resolve(name))) {
                handler.accept(name, in);
            }
        }
    }
}
