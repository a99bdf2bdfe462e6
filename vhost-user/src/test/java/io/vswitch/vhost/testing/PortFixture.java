package io.vswitch.vhost.testing;

import io.vswitch.testing.OpenFds;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.vhost.virtio.PacketBatch;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * A {@link VhostUserPort} in server role on a socket in a temporary directory, plus the checks every test
 * ends with: once the frontend is gone the port is back where it started (no descriptor, no mapping left).
 */
public final class PortFixture implements AutoCloseable {
    private static boolean warmedUp;

    private final VhostUserPort port;
    private final Path path;
    private final int baselineFds;

    public PortFixture(Path dir) throws IOException {
        this(dir, 1);
    }

    /** A port whose device serves {@code queuePairs} queue pairs. */
    public PortFixture(Path dir, int queuePairs) throws IOException {
        warmUp(dir);
        path = dir.resolve("port.sock");
        port = new VhostUserPort("p0", path, VhostUserPort.Role.SERVER, queuePairs).start();
        baselineFds = OpenFds.count();
    }

    /**
     * Runs one complete session before the first fd baseline is taken, so that classes and jar files the
     * JVM opens lazily are already open and do not count as leaks.
     */
    public static synchronized void warmUp(Path dir) throws IOException {
        if (warmedUp) {
            return;
        }
        warmedUp = true;
        Path warm = dir.resolve("warm-up.sock");
        try (VhostUserPort p = new VhostUserPort("warm", warm, VhostUserPort.Role.SERVER).start()) {
            try (TestFrontend fe = TestFrontend.connect(warm).setUp()) {
                PacketBatch batch = new PacketBatch(4);
                fe.transmit(new byte[64]);
                p.device().txQueue().dequeueBurst(batch);
                p.device().txQueue().completeTx(batch);
                fe.txCompleted();
                fe.postRxBuffers(1, 2048);
                p.device().rxQueue().enqueue(MemorySegment.ofArray(new byte[64]), 0, 64);
                p.device().rxQueue().flushRx();
                fe.receive();
                fe.sendWithAck(99, new byte[0]);
                fe.getVringBase(0);
            }
            await(() -> !p.isConnected() && p.device().memory().regionCount() == 0, "warm-up port reset");
            OpenFds.count();
            mappings("none");
        }
        Files.deleteIfExists(warm);
    }

    public VhostUserPort port() {
        return port;
    }

    public VirtioNetDevice device() {
        return port.device();
    }

    public Path path() {
        return path;
    }

    public int baselineFds() {
        return baselineFds;
    }

    public TestFrontend connect(TestFrontend.Options options) {
        return TestFrontend.connect(path, options);
    }

    public TestFrontend connect() {
        return connect(new TestFrontend.Options());
    }

    /** Connects and runs the whole set-up sequence; the device is running afterwards. */
    public TestFrontend connectAndSetUp(TestFrontend.Options options) {
        TestFrontend fe = connect(options);
        try {
            fe.setUp();
        } catch (IOException e) {
            fe.close();
            throw new UncheckedIOException(e);
        }
        return fe;
    }

    public TestFrontend connectAndSetUp() {
        return connectAndSetUp(new TestFrontend.Options());
    }

    /**
     * Closes the frontend and asserts that the port released everything it gave: device reset (not running,
     * no memory), descriptors back to the baseline, no mapping of its memfd left in this process.
     */
    public void disconnectAndAssertReleased(TestFrontend fe) {
        String memName = fe.memoryName();
        fe.close();
        assertReleased(memName);
    }

    public void assertReleased(String... memNames) {
        VirtioNetDevice device = port.device();
        await(() -> !port.isConnected() && device.memory().regionCount() == 0 && !device.isRunning()
                && OpenFds.count() == baselineFds && mappingsOf(memNames) == 0, "port released the frontend");
        assertFalse(device.isRunning(), "device stopped");
        assertEquals(0, device.memory().regionCount(), "guest memory unmapped");
        assertEquals(baselineFds, OpenFds.count(), "descriptors back to the baseline");
        assertEquals(0, mappingsOf(memNames), "no mapping of the frontend's memory left");
    }

    private static int mappingsOf(String... names) {
        int n = 0;
        for (String name : names) {
            n += mappings(name);
        }
        return n;
    }

    /** How many mappings of the memfd called {@code name} this process has (/proc/self/maps). */
    public static int mappings(String name) {
        try {
            List<String> lines = Files.readAllLines(Path.of("/proc/self/maps"));
            String needle = "/memfd:" + name + " ";
            int n = 0;
            for (String line : lines) {
                if ((line + " ").contains(needle)) {
                    n++;
                }
            }
            return n;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Waits up to 5 s for {@code condition}; fails with {@code what} otherwise. */
    public static void await(BooleanSupplier condition, String what) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting: " + what);
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting: " + what);
            }
        }
    }

    @Override
    public void close() {
        port.close();
    }
}
