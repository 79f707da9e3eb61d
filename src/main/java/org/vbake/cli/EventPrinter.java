package org.vbake.cli;

import java.io.PrintStream;
import java.util.Locale;
import org.vbake.api.Event;
import org.vbake.api.EventListener;

/** Renders library events as plain lines on stderr: progress always, phases and detail with --debug. */
final class EventPrinter implements EventListener {

    private final String prog;
    private final PrintStream err;
    private final boolean debug;

    EventPrinter(String prog, PrintStream err, boolean debug) {
        this.prog = prog;
        this.err = err;
        this.debug = debug;
    }

    @Override
    public void on(Event event) {
        if (event instanceof Event.Progress p) {
            err.println(prog + ": " + p.message());
        } else if (event instanceof Event.Phase p && debug) {
            err.println(prog + ": [phase] " + p.name() + ": "
                    + String.format(Locale.ROOT, "%.2f s", p.took().toNanos() / 1e9));
        } else if (event instanceof Event.Debug d && debug) {
            err.println(prog + ": [debug] " + d.message());
        }
        err.flush();
    }
}
