package org.vbake.session;

import java.time.Duration;
import java.util.List;
import org.vbake.api.Event;
import org.vbake.api.EventListener;
import org.vbake.api.GuestException;
import org.vbake.api.VbakeException;

/**
 * Readiness as a list of probes (lima's {@code requirements.go}): each step of getting a guest up
 * has its own deadline and a hint for when it does not come; a failure names the step, the hint
 * and the log to read, and the steps' timings go out as phases.
 */
final class Readiness {

    /** One step that must succeed within its deadline. */
    record Probe(String name, Duration deadline, String hint, Step step) {
    }

    /** Does the step; may poll until {@code deadlineNanos} (System.nanoTime) and must not run past it. */
    @FunctionalInterface
    interface Step {
        void run(long deadlineNanos) throws Exception;
    }

    /** Thrown by a step that ran out of time; {@link #await} turns it into the probe's failure. */
    static final class NotYet extends Exception {
        NotYet(String message) {
            super(message);
        }
    }

    /** How a failed probe becomes the exception the caller throws (a guest failure naming the log). */
    @FunctionalInterface
    interface Failure {
        GuestException of(String message, Throwable cause);
    }

    private Readiness() {
    }

    /** Runs the probes in order. */
    static void await(List<Probe> probes, EventListener events, Failure failure)
            throws VbakeException, InterruptedException {
        for (Probe p : probes) {
            long t0 = System.nanoTime();
            try {
                p.step().run(t0 + p.deadline().toNanos());
            } catch (VbakeException | InterruptedException e) {
                throw e;
            } catch (NotYet e) {
                throw failure.of(p.name() + ": not within " + p.deadline().toSeconds() + " s (" + e.getMessage()
                        + "); " + p.hint(), e);
            } catch (Exception e) {
                throw failure.of(p.name() + ": " + e.getMessage() + "; " + p.hint(), e);
            }
            events.on(new Event.Phase(p.name(), Duration.ofNanos(System.nanoTime() - t0)));
        }
    }

    /** Sleeps a moment while polling, or says the step is late. */
    static void pause(long deadlineNanos, String what) throws NotYet, InterruptedException {
        if (System.nanoTime() > deadlineNanos) {
            throw new NotYet(what);
        }
        Thread.sleep(20);
    }
}
