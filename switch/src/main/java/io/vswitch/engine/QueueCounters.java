package io.vswitch.engine;

import org.agrona.concurrent.status.AtomicCounter;

/**
 * The counters of one queue pair of a multiqueue port, in the counters file as {@code queue PORT:PAIR COUNTER}
 * ({@code vswitch stats} prints them under the port table; Prometheus has them with a {@code queue} label).
 * {@code rx} is what the switch took from the pair's transmit queue, {@code tx} what it put into the pair's
 * receive queue. Each is written by the one worker that owns the pair, so a release store suffices.
 */
final class QueueCounters implements AutoCloseable {
    static final String SCOPE = "queue";
    final AtomicCounter rxPackets;
    final AtomicCounter rxBytes;
    final AtomicCounter txPackets;
    final AtomicCounter txBytes;

    QueueCounters(CountersFile file, String port, int pair) {
        String name = port + ":" + pair;
        rxPackets = file.newCounter(SCOPE, name, "rx_packets");
        rxBytes = file.newCounter(SCOPE, name, "rx_bytes");
        txPackets = file.newCounter(SCOPE, name, "tx_packets");
        txBytes = file.newCounter(SCOPE, name, "tx_bytes");
    }

    /** One set per pair for a port of {@code pairs} pairs, or null for a single-queue port (its port counters say it all). */
    static QueueCounters[] forPort(CountersFile file, String port, int pairs) {
        if (pairs <= 1) {
            return null;
        }
        QueueCounters[] all = new QueueCounters[pairs];
        for (int p = 0; p < pairs; p++) {
            all[p] = new QueueCounters(file, port, p);
        }
        return all;
    }

    @Override
    public void close() {
        rxPackets.close();
        rxBytes.close();
        txPackets.close();
        txBytes.close();
    }
}
