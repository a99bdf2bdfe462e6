package io.vswitch.config;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@code queues} and {@code workers} of a port: ranges, the pair-to-worker map, and each mistake's located message. */
class MultiQueueConfigTest {

    private static String errorOf(String yaml) {
        return assertThrows(ConfigException.class, () -> ConfigLoader.parse(yaml, "topo.yaml")).getMessage();
    }

    private static PortConfig port(String portLines) {
        return ConfigLoader.parse("""
                switch: {workers: 3}
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                """ + portLines, "topo.yaml").ports().getFirst();
    }

    @Test
    void queuesDefaultToOneOnThePortsWorker() {
        PortConfig p = port("    worker: 2\n");
        assertEquals(1, p.queues());
        assertEquals(List.of(), p.queueWorkers());
        assertEquals(2, p.queueWorker(0));
        assertEquals(List.of(2), p.allQueueWorkers());
    }

    @Test
    void allPairsOnOneWorkerWithoutAList() {
        PortConfig p = port("    queues: 4\n    worker: 1\n");
        assertEquals(4, p.queues());
        assertEquals(List.of(1), p.allQueueWorkers());
    }

    @Test
    void anExplicitListMapsPairsRoundRobin() {
        PortConfig p = port("    queues: 4\n    workers: [2, 0]\n");
        assertEquals(List.of(2, 0, 2, 0), List.of(p.queueWorker(0), p.queueWorker(1), p.queueWorker(2), p.queueWorker(3)));
        assertEquals(2, p.worker(), "the port's worker is pair 0's");
        assertEquals(List.of(2, 0), p.allQueueWorkers());
    }

    @Test
    void autoSpreadsOverEveryWorkerFromThePortsWorker() {
        PortConfig p = port("    queues: 4\n    worker: 1\n    workers: auto\n");
        assertEquals(List.of(1, 2, 0), p.queueWorkers());
        assertEquals(List.of(1, 2, 0, 1), List.of(p.queueWorker(0), p.queueWorker(1), p.queueWorker(2), p.queueWorker(3)));
        assertEquals(List.of(0, 1), port("    queues: 2\n    workers: auto\n").queueWorkers());
    }

    @Test
    void theListSurvivesTheTopologyWriter() {
        SwitchConfig c = ConfigLoader.parse("""
                switch: {workers: 2}
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock, queues: 2, workers: [1, 0]}
                  - {name: vm2, socket: /tmp/vswitch/vm2.sock, queues: 16}
                """, "topo.yaml");
        SwitchConfig again = ConfigLoader.parse(TopologyWriter.write(c), "written.yaml");
        assertEquals(c.ports(), again.ports());
    }

    @Test
    void queuesOutOfRange() {
        assertEquals("topo.yaml:4: ports[0].queues: 17 is out of range 1..16", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 17
                """));
        assertEquals("topo.yaml:4: ports[0].queues: 0 is out of range 1..16", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 0
                """));
    }

    @Test
    void workersNamingAWorkerThatDoesNotExist() {
        assertEquals("topo.yaml:6: ports[0].workers[1]: worker 2 does not exist: switch.workers is 2, so workers are numbered 0..1", errorOf("""
                switch: {workers: 2}
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 2
                    workers: [0, 2]
                """));
    }

    @Test
    void moreWorkersThanPairs() {
        assertEquals("topo.yaml:6: ports[0].workers: 2 workers for 1 queue pair(s): at most one worker per queue pair"
                + " (raise queues)", errorOf("""
                switch: {workers: 2}
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 1
                    workers: [0, 1]
                """));
    }

    @Test
    void workerAndWorkersTogether() {
        assertEquals("topo.yaml:7: ports[0].workers: give either worker (every queue pair on one worker) or workers"
                + " (a list), not both", errorOf("""
                switch: {workers: 2}
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 2
                    worker: 1
                    workers: [0, 1]
                """));
    }

    @Test
    void workersNeitherAListNorAuto() {
        assertEquals("topo.yaml:5: ports[0].workers: must be a list of worker indices, e.g. [0, 1], or auto", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    queues: 2
                    workers: all
                """));
    }

    @Test
    void workersOnAVxlanPort() {
        // an afpacket port takes 'workers' (PACKET_FANOUT: one socket per worker); a vxlan port does not
        assertEquals("topo.yaml:7: ports[0].workers: not a key of type vxlan", errorOf("""
                ports:
                  - name: up
                    type: vxlan
                    local: 192.0.2.1
                    remote: 192.0.2.2
                    vni: 1
                    workers: [0]
                """));
    }
}
