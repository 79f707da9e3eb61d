package org.vbake.bake;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLParser;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.vbake.api.BadInputException;

/**
 * A YAML (or JSON) file parsed into a small tree that remembers the line of every key and value
 * (Jackson's tree model forgets them), so that the readers of bake manifests and compose files
 * can say {@code file:line: field: what is wrong}. Scalars keep their text exactly as written.
 */
final class YamlTree {

    private YamlTree() {
    }

    sealed interface Node permits MapNode, ListNode, Scalar {
        /** 1-based line where the value starts. */
        int line();
    }

    record Entry(String key, int keyLine, Node value) {
    }

    record MapNode(int line, Map<String, Entry> entries) implements Node {
    }

    record ListNode(int line, List<Node> items) implements Node {
    }

    /** A scalar's text exactly as written ({@code no}, {@code 010}); null for YAML's null. */
    record Scalar(int line, String text) implements Node {
    }

    /**
     * Parses {@code file}: {@code .yaml}/{@code .yml} as YAML, {@code .json} as JSON when allowed.
     *
     * @param what     the file in messages ("manifest", "compose file")
     * @param article  the same with its article, for the naming rule ("a bake manifest")
     */
    static Node parse(Path file, String what, String article, boolean json) throws BadInputException, IOException {
        if (Files.isDirectory(file)) {
            throw new BadInputException(file + ": is a directory, not a " + what + " file",
                    "name the " + what + " inside it, e.g. " + file.resolve(what.equals("manifest") ? "images.yaml"
                            : "compose.yaml"));
        }
        if (!Files.exists(file)) {
            throw new BadInputException(file + ": no such file");
        }
        String fileName = file.getFileName() == null ? "" : file.getFileName().toString().toLowerCase(Locale.ROOT);
        JsonFactory factory;
        if (json && fileName.endsWith(".json")) {
            factory = new JsonFactory();
        } else if (fileName.endsWith(".yaml") || fileName.endsWith(".yml")) {
            factory = new YAMLFactory();
        } else {
            throw new BadInputException(file + ": " + article + " must be named *.yaml, *.yml" + (json ? " or *.json"
                    : ""));
        }
        String syntax = factory instanceof YAMLFactory ? "YAML" : "JSON";
        try (InputStream in = Files.newInputStream(file); JsonParser parser = factory.createParser(in)) {
            JsonToken first = parser.nextToken();
            if (first == null) {
                throw error(file, 1, "", "the " + what + " is empty");
            }
            Node root = node(file, parser, "");
            if (parser.nextToken() != null) {
                throw error(file, line(parser), "", "only one " + syntax + " document is allowed");
            }
            return root;
        } catch (NoSuchFileException e) {
            throw new BadInputException(file + ": no such file");
        } catch (JsonProcessingException e) {
            throw syntaxError(file, e, syntax);
        }
    }

    static String child(String path, String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    static BadInputException error(Path file, int line, String path, String message) {
        return new BadInputException(file + ":" + line + ": " + (path.isEmpty() ? "" : path + ": ") + message);
    }

    /** Reads the value at the parser's current token, and everything inside it. */
    private static Node node(Path file, JsonParser parser, String path) throws IOException, BadInputException {
        int line = line(parser);
        switch (parser.currentToken()) {
            case START_OBJECT: {
                Map<String, Entry> entries = new LinkedHashMap<>();
                while (parser.nextToken() == JsonToken.FIELD_NAME) {
                    String key = parser.currentName();
                    int keyLine = line(parser);
                    parser.nextToken();
                    Entry entry = new Entry(key, keyLine, node(file, parser, child(path, key)));
                    if (entries.putIfAbsent(key, entry) != null) {
                        throw error(file, keyLine, child(path, key), "duplicate key");
                    }
                }
                return new MapNode(line, entries);
            }
            case START_ARRAY: {
                List<Node> items = new ArrayList<>();
                while (parser.nextToken() != JsonToken.END_ARRAY) {
                    items.add(node(file, parser, path + "[" + items.size() + "]"));
                }
                return new ListNode(line, items);
            }
            case VALUE_NULL:
                return new Scalar(line, null);
            default:
                if (parser instanceof YAMLParser yaml && yaml.isCurrentAlias()) {
                    // Jackson hands an alias over as its anchor's name, which would be read as the value.
                    throw error(file, line, path, "YAML aliases (*" + yaml.getText() + ") are not supported; "
                            + "write the value out");
                }
                return new Scalar(line, parser.getText());
        }
    }

    private static int line(JsonParser parser) {
        return parser.currentTokenLocation().getLineNr();
    }

    private static BadInputException syntaxError(Path file, JsonProcessingException e, String syntax) {
        int line;
        String message;
        if (e.getCause() instanceof org.yaml.snakeyaml.error.MarkedYAMLException yaml && yaml.getProblemMark() != null) {
            // snakeyaml knows where the problem is; Jackson's location is sometimes where the enclosing block began.
            line = yaml.getProblemMark().getLine() + 1;
            message = (yaml.getContext() != null ? yaml.getContext() + ": " : "") + yaml.getProblem();
        } else {
            JsonLocation location = e.getLocation();
            line = location != null && location.getLineNr() > 0 ? location.getLineNr() : 1;
            message = e.getOriginalMessage();
        }
        String oneLine = message == null ? "unreadable" : message.strip().lines().findFirst().orElse("").strip();
        return new BadInputException(file + ":" + line + ": invalid " + syntax + ": " + oneLine);
    }
}
