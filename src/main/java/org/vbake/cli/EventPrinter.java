package org.vbake.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.PrintStream;
import java.util.Locale;
import org.vbake.api.BadInputException;
import org.vbake.api.Event;
import org.vbake.api.EventListener;

/**
 * Renders library events on stderr. {@code plain}: one line per progress event (phases and detail
 * with --debug), right for recipe logs. {@code json}: one JSON object per event, for tools.
 * {@code tty}: progress overwrites one status line, for a terminal.
 */
final class EventPrinter implements EventListener {

    /** How progress is shown. */
    enum Mode {
        PLAIN, JSON, TTY;

        static Mode parse(String s) throws BadInputException {
            if (s == null || s.equals("auto")) {
                return System.console() != null ? TTY : PLAIN;
            }
            switch (s) {
                case "plain":
                    return PLAIN;
                case "json":
                    return JSON;
                case "tty":
                    return TTY;
                default:
                    throw new BadInputException("--progress: '" + s + "' is not one of plain, json, tty, auto");
            }
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String prog;
    private final PrintStream err;
    private final boolean debug;
    private final Mode mode;
    private final long start = System.nanoTime();
    private boolean statusShown;

    EventPrinter(String prog, PrintStream err, boolean debug) {
        this(prog, err, debug, Mode.PLAIN);
    }

    EventPrinter(String prog, PrintStream err, boolean debug, Mode mode) {
        this.prog = prog;
        this.err = err;
        this.debug = debug;
        this.mode = mode;
    }

    @Override
    public synchronized void on(Event event) {
        switch (mode) {
            case JSON:
                json(event);
                break;
            case TTY:
                tty(event);
                break;
            default:
                plain(event);
        }
        err.flush();
    }

    private void plain(Event event) {
        if (event instanceof Event.Progress p) {
            err.println(prog + ": " + p.message());
        } else if (event instanceof Event.Phase p && debug) {
            err.println(prog + ": [phase] " + p.name() + ": " + seconds(p.took().toNanos()));
        } else if (event instanceof Event.Debug d && debug) {
            err.println(prog + ": [debug] " + d.message());
        }
    }

    private void json(Event event) {
        ObjectNode o = JSON.createObjectNode();
        o.put("t", Math.round((System.nanoTime() - start) / 1e6) / 1000.0);
        if (event instanceof Event.Progress p) {
            o.put("event", "progress").put("message", p.message());
        } else if (event instanceof Event.Phase p) {
            o.put("event", "phase").put("name", p.name()).put("seconds", p.took().toMillis() / 1000.0);
        } else if (event instanceof Event.Debug d) {
            if (!debug) {
                return;
            }
            o.put("event", "debug").put("message", d.message());
        }
        err.println(o);
    }

    private void tty(Event event) {
        if (event instanceof Event.Progress p) {
            String line = "[" + seconds(System.nanoTime() - start) + "] " + p.message();
            if (p.message().startsWith("warning") || p.message().startsWith("wrote")) {
                clearStatus();
                err.println(prog + ": " + p.message());
                return;
            }
            // One status line, rewritten in place; cut to a plain terminal width.
            String shown = line.length() > 100 ? line.substring(0, 97) + "..." : line;
            err.print("\r\033[K" + shown);
            statusShown = true;
        } else if (debug) {
            clearStatus();
            plain(event);
        }
    }

    /** Ends the status line before anything else is printed. */
    synchronized void clearStatus() {
        if (statusShown) {
            err.print("\r\033[K");
            statusShown = false;
            err.flush();
        }
    }

    private static String seconds(long nanos) {
        return String.format(Locale.ROOT, "%.2f s", nanos / 1e9);
    }
}
