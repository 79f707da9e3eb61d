package org.vbake.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.vbake.cli.Main;

/**
 * Runs vdkr, vpdmn or vbake inside the test JVM. When a command fails and names a guest log, the
 * log's last lines are added to its stderr, so an assertion message (and so a CI report) shows
 * what the guest said before the temporary state dir is gone.
 */
final class InProcessCli {

    record Result(int code, String out, String err) {
    }

    private static final Pattern SEE_LOG = Pattern.compile("see (/\\S+\\.log)\\s*$", Pattern.MULTILINE);
    private static final int TAIL = 40;

    private InProcessCli() {
    }

    static Result run(String prog, List<String> argv) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int code = Main.run(prog, argv.toArray(String[]::new), null, out, err, new HashMap<>(System.getenv()), false);
        String stderr = err.toString(StandardCharsets.UTF_8);
        return new Result(code, out.toString(StandardCharsets.UTF_8), code == 0 ? stderr : withLogTail(stderr));
    }

    /** {@code stderr} followed by the last lines of every log it names ("see FILE.log"). */
    static String withLogTail(String stderr) {
        StringBuilder sb = new StringBuilder(stderr);
        Matcher m = SEE_LOG.matcher(stderr);
        while (m.find()) {
            Path log = Path.of(m.group(1));
            try {
                List<String> lines = new String(Files.readAllBytes(log), StandardCharsets.UTF_8).lines().toList();
                sb.append("--- last ").append(Math.min(TAIL, lines.size())).append(" lines of ").append(log).append('\n');
                for (String l : lines.subList(Math.max(0, lines.size() - TAIL), lines.size())) {
                    sb.append(l).append('\n');
                }
            } catch (IOException e) {
                sb.append("--- cannot read ").append(log).append(": ").append(e.getMessage()).append('\n');
            }
        }
        return sb.toString();
    }
}
