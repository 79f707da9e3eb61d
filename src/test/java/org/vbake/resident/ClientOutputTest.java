package org.vbake.resident;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.vbake.agent.Frame;
import org.vbake.agent.FrameCodec;
import org.vbake.agent.FrameType;

class ClientOutputTest {

    /** A client that takes nothing until {@link #resume}. */
    static final class StalledClient extends OutputStream {
        final ByteArrayOutputStream got = new ByteArrayOutputStream();
        final CountDownLatch resume = new CountDownLatch(1);

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            try {
                resume.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            synchronized (got) {
                got.write(b, off, len);
            }
        }

        List<Frame> frames() throws IOException {
            byte[] bytes;
            synchronized (got) {
                bytes = got.toByteArray();
            }
            DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes));
            List<Frame> frames = new ArrayList<>();
            while (in.available() > 0) {
                frames.add(FrameCodec.read(in));
            }
            return frames;
        }
    }

    private static Frame out(int ch, String text) {
        return new Frame(FrameType.STDOUT, ch, text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void aStalledClientDoesNotHoldUpTheCallerAndGetsItsFramesInOrderLater() throws Exception {
        StalledClient client = new StalledClient();
        List<String> written = new CopyOnWriteArrayList<>();
        ClientOutput output = new ClientOutput(client, client, 1 << 20, e -> { });
        long t0 = System.nanoTime();
        for (int i = 0; i < 50; i++) {
            String text = "line " + i + "\n";
            assertThat(output.offer(out(7, text), () -> written.add(text))).isTrue();
        }
        assertThat(System.nanoTime() - t0).as("offer never waits for the client").isLessThan(TimeUnit.SECONDS.toNanos(2));
        Thread.sleep(200);
        assertThat(written).as("nothing is written while the client stalls").isEmpty();
        assertThat(output.queuedBytes()).isPositive();

        client.resume.countDown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (written.size() < 50 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        List<Frame> frames = client.frames();
        assertThat(frames).hasSize(50);
        for (int i = 0; i < 50; i++) {
            assertThat(frames.get(i)).isEqualTo(out(7, "line " + i + "\n"));
            assertThat(written.get(i)).isEqualTo("line " + i + "\n");
        }
        assertThat(output.queuedBytes()).isZero();
        output.close();
    }

    @Test
    void pastTheLimitOfferRefuses() {
        StalledClient client = new StalledClient();
        ClientOutput output = new ClientOutput(client, client, 4096, e -> { });
        byte[] k = new byte[1000];
        int accepted = 0;
        while (output.offer(new Frame(FrameType.STDERR, 1, k), null)) {
            accepted++;
            assertThat(accepted).isLessThan(10);
        }
        assertThat(accepted).isBetween(3, 4);
        output.close();
        assertThat(output.offer(new Frame(FrameType.STDERR, 1, new byte[1]), null)).as("closed").isFalse();
        client.resume.countDown();
    }

    @Test
    void aFailedWriteIsReportedOnceAndEndsTheOutput() throws Exception {
        AtomicInteger failures = new AtomicInteger();
        CountDownLatch failed = new CountDownLatch(1);
        OutputStream broken = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("Broken pipe");
            }
        };
        ClientOutput output = new ClientOutput(broken, broken, 1 << 20, e -> {
            assertThat(e).hasMessage("Broken pipe");
            failures.incrementAndGet();
            failed.countDown();
        });
        AtomicInteger afterWrites = new AtomicInteger();
        assertThat(output.offer(out(3, "a"), afterWrites::incrementAndGet)).isTrue();
        assertThat(failed.await(10, TimeUnit.SECONDS)).isTrue();
        assertThat(output.offer(out(3, "b"), afterWrites::incrementAndGet)).isFalse();
        Thread.sleep(100);
        assertThat(failures).hasValue(1);
        assertThat(afterWrites).hasValue(0);
    }
}
