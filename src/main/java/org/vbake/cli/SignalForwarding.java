package org.vbake.cli;

import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * Ctrl-C (SIGINT) and SIGTERM go to the guest command instead of killing the JVM outright, so the
 * guest still powers off cleanly and the state disk stays consistent.
 */
final class SignalForwarding {

    private static SignalHandler previousInt;
    private static SignalHandler previousTerm;

    private SignalForwarding() {
    }

    static synchronized void install(Runnable onSignal) {
        SignalHandler handler = sig -> onSignal.run();
        previousInt = Signal.handle(new Signal("INT"), handler);
        previousTerm = Signal.handle(new Signal("TERM"), handler);
    }

    static synchronized void reset() {
        if (previousInt != null) {
            Signal.handle(new Signal("INT"), previousInt);
            Signal.handle(new Signal("TERM"), previousTerm);
            previousInt = null;
            previousTerm = null;
        }
    }
}
