package io.vswitch.engine;

import io.vswitch.config.PortConfig;
import io.vswitch.vhost.VhostUserPort;
import io.vswitch.vhost.net.Quiescence;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Wiring of multiqueue ports: which worker owns which queue pair, the shards of a port whose pairs live on
 * several workers (see {@link SwitchPort}), and the grace period such a device waits for (every owner's).
 */
final class MultiQueue {
    private MultiQueue() {
    }

    /**
     * The data-plane view of vhost-user port {@code pc}: one {@link SwitchPort} owning every pair when they all
     * live on one worker, else one shard per worker (the first, the one returned, on pair 0's worker) sharing
     * one {@code shardOfPair} table.
     */
    static SwitchPort newPort(int index, PortConfig pc, VhostUserPort vhost, PortCounters counters,
                              QueueCounters[] queueCounters, int access, List<Integer> trunk) {
        Map<Integer, Integer> owned = new LinkedHashMap<>();
        for (int pair = 0; pair < pc.queues(); pair++) {
            owned.merge(pc.queueWorker(pair), 1 << pair, (a, b) -> a | b);
        }
        int first = pc.queueWorker(0);
        SwitchPort primary = new SwitchPort(index, pc.name(), vhost, null, first, pc.mtu(), counters, access, trunk,
                queueCounters, owned.get(first), null);
        if (owned.size() == 1) {
            return primary;
        }
        Map<Integer, SwitchPort> byWorker = new LinkedHashMap<>();
        byWorker.put(first, primary);
        SwitchPort[] byPair = new SwitchPort[pc.queues()];
        for (int pair = 0; pair < pc.queues(); pair++) {
            int w = pc.queueWorker(pair);
            byPair[pair] = byWorker.computeIfAbsent(w, k -> SwitchPort.shard(primary, k, owned.get(k)));
        }
        for (SwitchPort shard : byWorker.values()) {
            shard.shardOfPair = byPair;
            shard.spread = true;
        }
        return primary;
    }

    /** Waits for every worker that owns one of {@code port}'s pairs. */
    static Quiescence quiescence(SwitchPort port, List<Worker> workers) {
        List<SwitchPort> shards = port.shards();
        if (shards.size() == 1) {
            return workers.get(port.worker).epoch();
        }
        Quiescence[] all = shards.stream().map(s -> (Quiescence) workers.get(s.worker).epoch()).toArray(Quiescence[]::new);
        return () -> {
            for (Quiescence q : all) {
                q.await();
            }
        };
    }
}
