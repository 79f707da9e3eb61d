package org.vbake.resident;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The daemon's admission rule: commands run side by side until one client needs the guest alone. */
class GateTest {

    private final ResidentDaemon.Gate gate = new ResidentDaemon.Gate();
    private final Object a = "client A";
    private final Object b = "client B";

    @Test
    void exclusiveWaitsForOthersRunningCommandsAndHoldsBackNewOnes() throws Exception {
        gate.enter(b);
        CompletableFuture<Void> exclusive = CompletableFuture.runAsync(() -> interruptibly(() -> gate.acquire(a)));
        Thread.sleep(200);
        assertThat(exclusive).as("B still runs a command").isNotDone();

        gate.exit(b);
        exclusive.get(5, TimeUnit.SECONDS);
        assertThat(gate.holds(a)).isTrue();

        CompletableFuture<Void> blocked = CompletableFuture.runAsync(() -> interruptibly(() -> gate.enter(b)));
        gate.enter(a);   // the holder's own commands go ahead
        Thread.sleep(200);
        assertThat(blocked).isNotDone();
        gate.exit(a);
        gate.release(a);
        blocked.get(5, TimeUnit.SECONDS);
        assertThat(gate.commands()).isEqualTo(1);
    }

    @Test
    void commandsOfSeveralClientsRunTogether() throws Exception {
        gate.enter(a);
        gate.enter(b);
        gate.enter(b);
        assertThat(gate.commands()).isEqualTo(3);
        gate.exit(b);
        gate.exit(a);
        assertThat(gate.commands()).isEqualTo(1);
    }

    private interface Blocking {
        void run() throws InterruptedException;
    }

    private static void interruptibly(Blocking b) {
        try {
            b.run();
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
