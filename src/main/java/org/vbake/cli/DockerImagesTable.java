package org.vbake.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code docker images} rendered on the host from the engine's {@code GET /images/json}, as
 * docker 26's CLI prints it (default table, {@code -q}, {@code -a}, {@code --no-trunc}). Starting
 * the docker CLI in the guest costs most of a second under TCG; this is what lets {@code vdkr
 * images} on a resident guest answer in a fraction of that. Any other option goes to the real CLI.
 */
final class DockerImagesTable {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String NONE = "<none>";
    private static final String[] DECIMAL_UNITS = {"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};

    /** What the command line asks for, when the fast path can serve it. */
    record Options(boolean all, boolean quiet, boolean noTrunc) {
        /** The options of {@code images ARGS}, or null when only the real CLI can answer. */
        static Options parse(List<String> args) {
            boolean all = false;
            boolean quiet = false;
            boolean noTrunc = false;
            for (String a : args) {
                switch (a) {
                    case "-a", "--all" -> all = true;
                    case "-q", "--quiet" -> quiet = true;
                    case "--no-trunc" -> noTrunc = true;
                    case "-aq", "-qa" -> {
                        all = true;
                        quiet = true;
                    }
                    default -> {
                        return null;
                    }
                }
            }
            return new Options(all, quiet, noTrunc);
        }

        String apiPath() {
            return "/images/json" + (all ? "?all=1" : "");
        }
    }

    private record Row(String repo, String tag, String id, long created, long size) {
    }

    private DockerImagesTable() {
    }

    /** The CLI's output for the API's JSON, at {@code nowMillis}. */
    static String render(byte[] apiJson, Options options, long nowMillis) throws IOException {
        List<Row> rows = rows(JSON.readTree(apiJson), options);
        StringBuilder out = new StringBuilder();
        if (options.quiet()) {
            for (Row r : rows) {
                out.append(r.id()).append('\n');
            }
            return out.toString();
        }
        List<String[]> cells = new ArrayList<>();
        cells.add(new String[] {"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
        for (Row r : rows) {
            cells.add(new String[] {r.repo(), r.tag(), r.id(), createdSince(r.created(), nowMillis), size(r.size())});
        }
        // Go's tabwriter as the CLI sets it up: minimum width 10, padding 3; the last cell is free.
        int[] width = new int[4];
        for (String[] c : cells) {
            for (int i = 0; i < 4; i++) {
                width[i] = Math.max(width[i], Math.max(10, c[i].length() + 3));
            }
        }
        for (String[] c : cells) {
            for (int i = 0; i < 4; i++) {
                out.append(c[i]).append(" ".repeat(width[i] - c[i].length()));
            }
            out.append(c[4]).append('\n');
        }
        return out.toString();
    }

    /**
     * One row per repository:tag, then one per repository known only by digest, else one of none.
     * Repositories come in the engine's RepoTags order. docker's CLI walks a Go map at this point,
     * so its order between two repositories of one image changes from call to call; ours does not.
     */
    private static List<Row> rows(JsonNode images, Options options) {
        List<Row> rows = new ArrayList<>();
        for (JsonNode img : images) {
            String id = img.path("Id").asText();
            String shownId = options.noTrunc() ? id : truncate(id);
            long created = img.path("Created").asLong();
            long size = img.path("Size").asLong();
            Map<String, List<String>> tagsByRepo = new LinkedHashMap<>();
            for (JsonNode t : img.path("RepoTags")) {
                String ref = t.asText();
                int colon = ref.lastIndexOf(':');
                if (ref.contains("<") || colon < 0 || colon < ref.lastIndexOf('/')) {
                    continue;   // "<none>:<none>" of older engines, or no tag: not a row
                }
                tagsByRepo.computeIfAbsent(ref.substring(0, colon), k -> new ArrayList<>()).add(ref.substring(colon + 1));
            }
            Set<String> digestRepos = new LinkedHashSet<>();
            for (JsonNode d : img.path("RepoDigests")) {
                String ref = d.asText();
                int at = ref.indexOf('@');
                if (at > 0 && !ref.contains("<")) {
                    digestRepos.add(ref.substring(0, at));
                }
            }
            tagsByRepo.forEach((repo, tags) -> {
                digestRepos.remove(repo);
                for (String tag : tags) {
                    rows.add(new Row(repo, tag, shownId, created, size));
                }
            });
            for (String repo : digestRepos) {
                rows.add(new Row(repo, NONE, shownId, created, size));
            }
            if (tagsByRepo.isEmpty() && digestRepos.isEmpty()) {
                rows.add(new Row(NONE, NONE, shownId, created, size));
            }
        }
        return rows;
    }

    private static String truncate(String id) {
        String hex = id.startsWith("sha256:") ? id.substring(7) : id;
        return hex.length() > 12 ? hex.substring(0, 12) : hex;
    }

    /** go-units HumanDuration plus " ago". */
    static String createdSince(long createdSeconds, long nowMillis) {
        long millis = nowMillis - createdSeconds * 1000;
        long seconds = millis / 1000;
        String d;
        if (seconds < 1) {
            d = "Less than a second";
        } else if (seconds == 1) {
            d = "1 second";
        } else if (seconds < 60) {
            d = seconds + " seconds";
        } else if (seconds / 60 == 1) {
            d = "About a minute";
        } else if (seconds / 60 < 60) {
            d = seconds / 60 + " minutes";
        } else {
            long hours = Math.round(millis / 3_600_000.0);   // rounded, as Duration.Round(time.Hour)
            if (hours == 1) {
                d = "About an hour";
            } else if (hours < 48) {
                d = hours + " hours";
            } else if (hours < 24 * 7 * 2) {
                d = hours / 24 + " days";
            } else if (hours < 24 * 30 * 2) {
                d = hours / 24 / 7 + " weeks";
            } else if (hours < 24 * 365 * 2) {
                d = hours / 24 / 30 + " months";
            } else {
                d = millis / 3_600_000 / 24 / 365 + " years";
            }
        }
        return d + " ago";
    }

    /** go-units HumanSizeWithPrecision(size, 3): decimal units, Go's %.3g. */
    static String size(long bytes) {
        double v = bytes;
        int unit = 0;
        while (v >= 1000 && unit < DECIMAL_UNITS.length - 1) {
            v /= 1000;
            unit++;
        }
        return goG3(v) + DECIMAL_UNITS[unit];
    }

    /** Go's {@code %.3g}: three significant digits, no trailing zeros, e+NN when the exponent is ≥ 3. */
    static String goG3(double v) {
        if (v == 0) {
            return "0";
        }
        BigDecimal r = new BigDecimal(v).round(new MathContext(3, RoundingMode.HALF_EVEN));
        int exponent = r.precision() - r.scale() - 1;
        if (exponent >= 3 || exponent < -4) {
            BigDecimal mantissa = r.movePointLeft(exponent).stripTrailingZeros();
            return mantissa.toPlainString() + "e" + (exponent < 0 ? "-" : "+") + String.format("%02d", Math.abs(exponent));
        }
        return r.stripTrailingZeros().toPlainString();
    }
}
