package io.vswitch.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** One test per kind of mistake, each pinning the exact message a user sees. */
class ConfigErrorsTest {

    private static String errorOf(String yaml) {
        return assertThrows(ConfigException.class, () -> ConfigLoader.parse(yaml, "topo.yaml")).getMessage();
    }

    @Test
    void missingPortSocket() {
        assertEquals("topo.yaml:4: ports[1].socket: missing", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                """));
    }

    @Test
    void missingPortName() {
        assertEquals("topo.yaml:2: ports[0].name: missing", errorOf("""
                ports:
                  - socket: /tmp/vswitch/vm1.sock
                """));
    }

    @Test
    void keyWithoutValue() {
        assertEquals("topo.yaml:3: ports[0].socket: has no value", errorOf("""
                ports:
                  - name: vm1
                    socket:
                """));
    }

    @Test
    void missingPorts() {
        assertEquals("topo.yaml:1: ports: missing", errorOf("""
                switch:
                  mode: learning
                """));
    }

    @Test
    void emptyPortsList() {
        assertEquals("topo.yaml:2: ports: at least one port is required", errorOf("""
                switch: {mode: learning}
                ports: []
                """));
    }

    @Test
    void emptyFile() {
        assertEquals("topo.yaml:1: the file is empty; a topology needs at least a list of ports", errorOf("# nothing\n"));
    }

    @Test
    void unknownKeyWithSuggestion() {
        assertEquals("topo.yaml:3: switch.wokers: unknown key (did you mean 'workers'?)", errorOf("""
                switch:
                  mode: learning
                  wokers: 2
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void unknownKeyWithoutSuggestion() {
        assertEquals("topo.yaml:4: ports[0].colour: unknown key (expected one of name, socket, mode, notify, worker,"
                + " mac-limit, vlan, trunk, mtu, queues, workers, socket-mode, socket-group, offloads, type, local, remote, vni, interface)", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    colour: blue
                """));
    }

    @Test
    void unknownTopLevelKey() {
        assertEquals("topo.yaml:1: port: unknown key (did you mean 'ports'?)\n"
                + "topo.yaml:1: ports: missing", errorOf("""
                port:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void duplicateKey() {
        assertEquals("topo.yaml:4: ports[0].socket: duplicate key (first given on line 3)", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    socket: /tmp/vswitch/vm2.sock
                """));
    }

    @Test
    void duplicateSocketPath() {
        assertEquals("topo.yaml:7: ports[2].socket: '/tmp/a.sock' is already used by ports[0]", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/a.sock
                  - name: vm2
                    socket: /tmp/b.sock
                  - name: vm3
                    socket: /tmp/a.sock
                """));
    }

    @Test
    void duplicateSocketPathSpelledDifferently() {
        assertEquals("topo.yaml:5: ports[1].socket: '/tmp/x/../a.sock' is already used by ports[0]", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/./a.sock
                  - name: vm2
                    socket: /tmp/x/../a.sock
                """));
    }

    @Test
    void duplicatePortName() {
        assertEquals("topo.yaml:4: ports[1].name: 'vm1' is already used by ports[0]", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm1
                    socket: /tmp/vswitch/vm2.sock
                """));
    }

    @Test
    void invalidPortName() {
        assertEquals("topo.yaml:2: ports[0].name: 'vm 1' is not a valid name (1 to 32 of A-Z a-z 0-9 _ . -)", errorOf("""
                ports:
                  - name: vm 1
                    socket: /tmp/vswitch/vm1.sock
                """));
    }

    @Test
    void socketPathTooLong() {
        String path = "/tmp/" + "d".repeat(100) + "/vm1.sock";
        assertEquals("topo.yaml:3: ports[0].socket: '" + path + "' is 114 bytes long; Unix socket paths are limited to 107",
                errorOf("""
                        ports:
                          - name: vm1
                            socket: %s
                        """.formatted(path)));
    }

    @Test
    void linkNamingUnknownPort() {
        assertEquals("""
                topo.yaml:6: ports[1]: port 'vm2' is not in any link (cross-connect mode needs every port in exactly one)
                topo.yaml:9: links[0][1]: no port named 'vm9'""", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                    socket: /tmp/vswitch/vm2.sock
                links:
                  - [vm1, vm9]
                """));
    }

    @Test
    void badEnum() {
        assertEquals("topo.yaml:2: switch.mode: 'bridge' is not one of learning, cross-connect", errorOf("""
                switch:
                  mode: bridge
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void badEnumWithSuggestion() {
        assertEquals("topo.yaml:4: ports[0].mode: 'sever' is not one of server, client (did you mean 'server'?)", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    mode: sever
                """));
    }

    @Test
    void wrongTypeIntegerGivenWord() {
        assertEquals("topo.yaml:2: switch.workers: expected an integer, got 'two'", errorOf("""
                switch:
                  workers: two
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void wrongTypeIntegerGivenQuotedNumber() {
        assertEquals("topo.yaml:2: switch.workers: expected an integer, got \"2\"", errorOf("""
                switch:
                  workers: "2"
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void wrongTypeListGivenMapping() {
        assertEquals("topo.yaml:1: ports: expected a list, got a mapping", errorOf("""
                ports:
                  name: vm1
                  socket: /tmp/vswitch/vm1.sock
                """));
    }

    @Test
    void wrongTypeStringGivenList() {
        assertEquals("topo.yaml:3: ports[0].socket: expected a string, got a list", errorOf("""
                ports:
                  - name: vm1
                    socket: [/tmp/a.sock]
                """));
    }

    @Test
    void housekeepingCpusAreCheckedLikeCpus() {
        assertEquals("topo.yaml:2: switch.housekeeping-cpus: must name at least one CPU (leave it out to run unpinned)", errorOf("""
                switch:
                  housekeeping-cpus: []
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
        assertEquals("topo.yaml:2: switch.housekeeping-cpus[0]: expected an integer, got 'x'", errorOf("""
                switch:
                  housekeeping-cpus: [x]
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void wrongTypeInList() {
        assertEquals("topo.yaml:2: switch.cpus[1]: expected an integer, got 'x'", errorOf("""
                switch:
                  cpus: [1, x]
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void outOfRange() {
        assertEquals("topo.yaml:2: switch.burst: 300 is out of range 1..256", errorOf("""
                switch:
                  burst: 300
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void metricsPortOutOfRange() {
        assertEquals("topo.yaml:3: switch.metrics: '70000' is not a port: expected 0..65535 (0 picks a free one)",
                errorOf("""
                switch:
                  mode: learning
                  metrics: 127.0.0.1:70000
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void metricsWithoutPortOrHost() {
        assertEquals("topo.yaml:2: switch.metrics: 'localhost' has no port (HOST:PORT, e.g. 127.0.0.1:9469)", errorOf("""
                switch:
                  metrics: localhost
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
        assertEquals("topo.yaml:2: switch.metrics: ':9469' has no host: use 127.0.0.1 for this machine only, "
                + "0.0.0.0 for every interface", errorOf("""
                switch:
                  metrics: ":9469"
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void metricsBadHost() {
        assertEquals("topo.yaml:2: switch.metrics: 'my host' is not a host name or address (HOST:PORT, e.g. 127.0.0.1:9469)",
                errorOf("""
                switch:
                  metrics: my host:9469
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
        assertEquals("topo.yaml:2: switch.metrics: expected a string, got a list", errorOf("""
                switch:
                  metrics: [127.0.0.1, 9469]
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                """));
    }

    @Test
    void vlanOutOfRange() {
        assertEquals("topo.yaml:4: ports[0].vlan: 4095 is out of range 1..4094", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    vlan: 4095
                """));
    }

    @Test
    void workerBeyondWorkers() {
        assertEquals("topo.yaml:6: ports[0].worker: worker 2 does not exist: switch.workers is 2,"
                + " so workers are numbered 0..1", errorOf("""
                switch:
                  workers: 2
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    worker: 2
                """));
    }

    @Test
    void vlanAndTrunkTogether() {
        assertEquals("topo.yaml:5: ports[0].trunk: cannot be combined with vlan: a port is either an access port"
                + " or a trunk", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    vlan: 10
                    trunk: [10, 20]
                """));
    }

    @Test
    void badSocketMode() {
        assertEquals("topo.yaml:4: ports[0].socket-mode: 'rw-rw----' is not an octal permission mode like \"0660\"",
                errorOf("""
                        ports:
                          - name: vm1
                            socket: /tmp/vswitch/vm1.sock
                            socket-mode: rw-rw----
                        """));
    }

    @Test
    void syntaxError() {
        assertEquals("topo.yaml:3: syntax error: mapping values are not allowed here", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/a.sock: x
                """));
    }

    @Test
    void syntaxErrorWithContext() {
        assertEquals("topo.yaml:4: syntax error: expected <block end>, but found '<block sequence start>'"
                + " (while parsing a block collection started on line 2)", errorOf("""
                ports:
                  - name: vm1
                    socket: /tmp/a.sock
                   - name: vm2
                """));
    }

    @Test
    void linksInLearningMode() {
        assertEquals("topo.yaml:8: links: only allowed in cross-connect mode (switch.mode is learning)", errorOf("""
                switch:
                  mode: learning
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                    socket: /tmp/vswitch/vm2.sock
                links:
                  - [vm1, vm2]
                """));
    }

    @Test
    void portInTwoLinks() {
        assertEquals("topo.yaml:13: links[1][1]: port 'vm1' is already linked in links[0]", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                    socket: /tmp/vswitch/vm2.sock
                  - name: vm3
                    socket: /tmp/vswitch/vm3.sock
                links:
                  - [vm1, vm2]
                  - [vm3,
                     vm1]
                """));
    }

    @Test
    void linkToItself() {
        assertEquals("topo.yaml:7: links[0]: links port 'vm1' to itself", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                links:
                  - [vm1, vm1]
                """));
    }

    @Test
    void crossConnectPortInNoLink() {
        assertEquals("topo.yaml:8: ports[2]: port 'vm3' is not in any link (cross-connect mode needs every port in"
                + " exactly one)", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                    socket: /tmp/vswitch/vm2.sock
                  - name: vm3
                    socket: /tmp/vswitch/vm3.sock
                links:
                  - [vm1, vm2]
                """));
    }

    @Test
    void linkNotAPair() {
        assertEquals("""
                topo.yaml:4: ports[0]: port 'vm1' is not in any link (cross-connect mode needs every port in exactly one)
                topo.yaml:6: links[0]: expected a pair of port names like [vm1, vm2], got 3 items""", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                links: [[vm1, vm1, vm1]]
                """));
    }

    @Test
    void syntaxErrorSecondDocument() {
        assertEquals("topo.yaml:2: syntax error: expected a single document in the stream, but found another document",
                errorOf("""
                        ports: []
                        ---
                        ports: []
                        """));
    }

    @Test
    void misspelledModeDoesNotAlsoRejectTheLinks() {
        assertEquals("topo.yaml:2: switch.mode: 'cross_connect' is not one of learning, cross-connect"
                + " (did you mean 'cross-connect'?)", errorOf("""
                switch:
                  mode: cross_connect
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock}
                  - {name: vm2, socket: /tmp/vswitch/vm2.sock}
                links:
                  - [vm1, vm2]
                """));
    }

    @Test
    void badWorkerCountDoesNotAlsoRejectPortWorkers() {
        assertEquals("topo.yaml:2: switch.workers: 0 is out of range 1..256", errorOf("""
                switch:
                  workers: 0
                ports:
                  - {name: vm1, socket: /tmp/vswitch/vm1.sock, worker: 3}
                """));
    }

    @Test
    void linkToAnIncompletePortOnlyReportsThePort() {
        assertEquals("topo.yaml:6: ports[1].socket: missing", errorOf("""
                switch:
                  mode: cross-connect
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                  - name: vm2
                links:
                  - [vm1, vm2]
                """));
    }

    @Test
    void allErrorsAreReportedInFileOrder() {
        ConfigException e = assertThrows(ConfigException.class, () -> ConfigLoader.parse("""
                switch:
                  mode: bridge
                  burst: 0
                ports:
                  - name: vm1
                    socket: /tmp/vswitch/vm1.sock
                    mtu: 10
                  - name: vm1
                """, "topo.yaml"));
        assertEquals("""
                topo.yaml:2: switch.mode: 'bridge' is not one of learning, cross-connect
                topo.yaml:3: switch.burst: 0 is out of range 1..256
                topo.yaml:7: ports[0].mtu: 10 is out of range 68..9000
                topo.yaml:8: ports[1].socket: missing""", e.getMessage());
        assertEquals(4, e.errors().size());
        assertEquals(new ConfigError("topo.yaml", 8, "ports[1].socket", "missing"), e.errors().get(3));
    }
}
