package org.vbake.api;

import java.time.Duration;

/**
 * What the library reports while it works. It never prints; the CLI decides how to show these
 * (plain lines, timings under --debug).
 */
public sealed interface Event {

    /** A step of long work the user should see (image build, boot). */
    record Progress(String message) implements Event {
    }

    /** A phase finished; shown with --debug and used by the benchmark. */
    record Phase(String name, Duration took) implements Event {
    }

    /** Detail for --debug: argv, log paths, versions. */
    record Debug(String message) implements Event {
    }
}
