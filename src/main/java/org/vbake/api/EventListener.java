package org.vbake.api;

/** Receives {@link Event}s; must be cheap and thread-safe. */
@FunctionalInterface
public interface EventListener {
    EventListener NONE = e -> { };

    void on(Event event);
}
