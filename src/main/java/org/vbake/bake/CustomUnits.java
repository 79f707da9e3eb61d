package org.vbake.bake;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.vbake.api.BadInputException;
import org.vbake.api.RuntimeKind;
import org.vbake.bake.BakeManifest.Image;
import org.vbake.image.Digest;
import org.vbake.runtime.ContainerRuntime;

/**
 * Units the user wrote for an image ({@code unit:}, meta-virtualization's CONTAINER_SERVICE_FILE):
 * installed as they are, instead of the one vbake would generate, after checking that they run
 * the image they are given for: a docker {@code .service} must name it in an {@code ExecStart},
 * a podman {@code .container} in {@code Image=}, by one of its names or its ID. A unit that
 * would start another image is refused with the file and line named.
 */
final class CustomUnits {

    private CustomUnits() {
    }

    /** The unit's bytes, checked against the image's names and ID. */
    static byte[] read(Image entry, RuntimeKind runtime, ContainerRuntime rt, List<String> names, Digest imageId)
            throws BadInputException {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(entry.unit());
        } catch (IOException e) {
            throw new BadInputException(entry.describe() + ": cannot read its unit " + entry.unit() + ": "
                    + e.getMessage());
        }
        Set<String> accepted = new LinkedHashSet<>();
        for (String n : names) {
            accepted.add(n);
            if (runtime == RuntimeKind.DOCKER) {
                accepted.add(rt.localName(n));
            }
        }
        accepted.add(imageId.toString());
        accepted.add(imageId.hex());
        accepted.add(imageId.hex().substring(0, 12));
        String text = new String(bytes, StandardCharsets.UTF_8);
        List<String> lines = text.lines().toList();
        String key = runtime == RuntimeKind.DOCKER ? "ExecStart" : "Image";
        List<Integer> found = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            StringBuilder value = new StringBuilder();
            if (!startsWithKey(line, key)) {
                continue;
            }
            found.add(i + 1);
            value.append(line.substring(line.indexOf('=') + 1));
            // systemd continues a value on the next line after a trailing backslash.
            int j = i;
            while (value.toString().endsWith("\\") && j + 1 < lines.size()) {
                value.setLength(value.length() - 1);
                value.append(' ').append(lines.get(++j).strip());
            }
            for (String word : value.toString().strip().split("\\s+")) {
                String w = word.replaceAll("^[\"']|[\"']$", "");
                if (accepted.contains(w)) {
                    return bytes;
                }
            }
        }
        String where = entry.unit() + (found.isEmpty() ? "" : ":" + found.get(0));
        String shown = names.isEmpty() ? imageId.toString() : String.join(", ", names) + " or " + imageId.shortId();
        throw new BadInputException(entry.describe() + ": unit " + where + (found.isEmpty()
                ? " has no " + key + (runtime == RuntimeKind.DOCKER ? "=" : "= in [Container]")
                : ": " + key + " runs none of the image's names") + " (" + shown + ")",
                "the unit must start this image by one of its names or its ID");
    }

    private static boolean startsWithKey(String line, String key) {
        if (!line.startsWith(key)) {
            return false;
        }
        String rest = line.substring(key.length()).stripLeading();
        return rest.startsWith("=");
    }
}
