package io.vswitch.bench;

import io.vswitch.engine.CountersFile;
import io.vswitch.engine.PortCounters;
import io.vswitch.engine.SwitchPort;
import io.vswitch.engine.Worker;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.VirtioNetDevice;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.function.IntUnaryOperator;
import java.util.stream.Stream;

/**
 * The in-process guests of {@link SwitchBenchmark} and {@link WorkerScalingBenchmark}: {@code n} memfd guests
 * ({@link GuestRam}) with allocation-free drivers ({@link QueueDriver}), each behind a real
 * {@link VirtioNetDevice} set up through the control methods a vhost-user session calls (features, memory, ring
 * size and addresses, kick "none"), without a socket, and wrapped in a {@link SwitchPort}. Guest {@code i}
 * sends 64-byte frames from its hosts to the same hosts behind guest {@code i ^ 1} (its pair); cross-connect
 * pairs are linked. What a guest driver does between two passes is {@link #refill}; {@link #problems} is the
 * end-of-trial check that the benchmark measured what it claims.
 */
final class SyntheticGuests implements AutoCloseable {
    static final int BURST = 32;
    static final int QUEUE_SIZE = 256;
    static final int FRAME = 64;
    static final int BUFFER = 2048;
    static final long RAM = 4L << 20;

    final Path dir;
    final CountersFile counters;
    final SwitchPort[] ports;
    final GuestRam[] rams;
    final QueueDriver[] tx;
    final QueueDriver[] rx;

    /**
     * {@code n} guests (an even number), {@code hosts} MACs behind each, port {@code i} assigned to worker
     * {@code workerOf(i)}; cross-connect pairs 0-1, 2-3, ... are linked unless {@code learning}.
     */
    SyntheticGuests(String name, int n, int hosts, boolean learning, long features, IntUnaryOperator workerOf)
            throws IOException {
        this(name, n, hosts, learning, features, workerOf, BUFFER);
    }

    /** As above, each guest's buffers {@code stride} bytes apart (at least {@link #BUFFER}; see SwitchBenchmark's {@code stride}). */
    SyntheticGuests(String name, int n, int hosts, boolean learning, long features, IntUnaryOperator workerOf, int stride)
            throws IOException {
        if (n < 2 || n % 2 != 0) {
            throw new IllegalArgumentException("ports must be an even number >= 2: " + n);
        }
        if (hosts < 1 || hosts > QUEUE_SIZE) {
            throw new IllegalArgumentException("hosts must be in 1.." + QUEUE_SIZE + ": " + hosts);
        }
        dir = Files.createTempDirectory(name);
        counters = CountersFile.create(dir.resolve(CountersFile.FILE_NAME), 64 + n * 24 + 16);
        ports = new SwitchPort[n];
        rams = new GuestRam[n];
        tx = new QueueDriver[n];
        rx = new QueueDriver[n];
        for (int i = 0; i < n; i++) {
            String guest = "vm" + i;
            GuestRam ram = new GuestRam(name + "-" + guest, RAM);
            rams[i] = ram;
            QueueDriver r = new QueueDriver(ram, QUEUE_SIZE);
            QueueDriver t = new QueueDriver(ram, QUEUE_SIZE);
            r.rxBuffers(BUFFER, stride, false);
            t.txBuffers(FRAME, BUFFER, stride, false);
            for (int head = 0; head < QUEUE_SIZE; head++) {
                t.writeEthernet(head, mac(i ^ 1, head % hosts), mac(i, head % hosts), 0x0800);
            }
            rx[i] = r;
            tx[i] = t;

            VhostUserPort vhost = new VhostUserPort(guest, dir.resolve(guest + ".sock"), VhostUserPort.Role.SERVER);
            VirtioNetDevice device = vhost.device();
            check(device.setFeatures(features));
            device.setMemory(ram.memory);
            ram.memoryHandedOver();
            QueueDriver[] drivers = {r, t};
            for (int q = 0; q < VirtioNetDevice.QUEUES; q++) {
                check(device.setVringNum(q, QUEUE_SIZE));
                check(device.setVringAddr(q, drivers[q].descAddr(), drivers[q].usedAddr(), drivers[q].availAddr()));
                check(device.setVringBase(q, 0));
                check(device.setVringKick(q, null));
            }
            if (!device.isRunning()) {
                throw new IllegalStateException(guest + " did not start");
            }
            ports[i] = new SwitchPort(i, guest, vhost, workerOf.applyAsInt(i), 1500, new PortCounters(counters, guest));
        }
        if (!learning) {
            for (int i = 0; i < n; i += 2) {
                ports[i].peer = ports[i + 1];
                ports[i + 1].peer = ports[i];
            }
        }
    }

    /** Host {@code host} behind guest {@code port}: a locally administered unicast MAC. */
    static long mac(int port, int host) {
        return 0x02_00_00_00_00_00L | ((long) host << 16) | (port + 1);
    }

    static void check(String problem) {
        if (problem != null) {
            throw new IllegalStateException(problem);
        }
    }

    /** Fills every receive ring, lets each worker take its ports and checks that every link came up. */
    void start(Worker... workers) {
        for (QueueDriver r : rx) {
            r.post(QUEUE_SIZE);
        }
        for (Worker w : workers) {
            w.doWork();   // takes the ports, brings their links up
        }
        for (SwitchPort port : ports) {
            if (!port.seenRunning) {
                throw new IllegalStateException(port + " is not up in its worker");
            }
        }
    }

    /** One pass of guests {@code tx[i], rx[i]}: each posts a burst on TX and gives back the RX buffers filled; then the worker's pass. */
    static int pass(QueueDriver[] tx, QueueDriver[] rx, Worker worker) {
        for (int i = 0; i < tx.length; i++) {
            tx[i].post(BURST);
            int returned = rx[i].reap();
            if (returned > 0) {
                rx[i].post(returned);
            }
        }
        return worker.doWork();
    }

    /** Why the trial did not measure what it claims (drops, a broken device, TX buffers kept, a silent port), or null. */
    String problems() {
        StringBuilder problems = new StringBuilder();
        for (int i = 0; i < ports.length; i++) {
            SwitchPort p = ports[i];
            PortCounters c = p.counters;
            long drops = c.dropRxRingFull.get() + c.dropNoBuffers.get() + c.dropPortDown.get()
                    + c.dropInvalid.get() + c.dropOverMtu.get();
            if (drops != 0 || p.device.isBroken()) {
                problems.append(String.format("%s: %d drops (ring full %d, port down %d), broken %b; ", p,
                        drops, c.dropRxRingFull.get(), c.dropPortDown.get(), p.device.isBroken()));
            }
            tx[i].reap();
            if (tx[i].outstanding() != 0) {
                problems.append(p).append(": ").append(tx[i].outstanding()).append(" TX buffers not returned; ");
            }
            if (c.rxPackets.get() == 0 || c.txPackets.get() == 0) {
                problems.append(p).append(": nothing forwarded; ");
            }
        }
        return problems.isEmpty() ? null : "the benchmark did not measure what it claims: " + problems;
    }

    /** Unmaps the devices' views of guest memory and the guests, and removes the directory. Workers first: their onClose. */
    @Override
    public void close() throws IOException {
        for (SwitchPort p : ports) {
            p.device.reset();
        }
        for (GuestRam ram : rams) {
            ram.close();
        }
        counters.close();
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
        }
    }
}
