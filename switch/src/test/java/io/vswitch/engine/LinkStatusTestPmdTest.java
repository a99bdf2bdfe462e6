package io.vswitch.engine;

import io.vswitch.config.ConfigLoader;
import io.vswitch.testing.TestPmd;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Link status seen by DPDK's virtio-user (VIRTIO_NET_F_STATUS): up while the switch serves the port, down once
 * the port goes away (the switch stops and closes the connection). QEMU guests: see SwitchRestartTest.
 */
class LinkStatusTestPmdTest {
    private static final Duration CMD = Duration.ofSeconds(30);

    @TempDir
    Path dir;

    @Test
    @Timeout(300)
    void testpmdSeesThePortGoDown() throws Exception {
        TestPmd.require();
        String yaml = """
                switch:
                  mode: learning
                  notify: interrupt
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"));
        Switch sw = Switch.start(ConfigLoader.parse(yaml, "link.yaml"));
        boolean closed = false;
        try (TestPmd pmd = TestPmd.start("pmd-link", dir, List.of("-l", "0,1", "--no-pci", "--no-huge", "-m", "512",
                "--vdev", "net_virtio_user0,path=" + dir.resolve("a.sock")), List.of("-i", "--total-num-mbufs=2048"))) {
            awaitLink(pmd, "up");
            sw.close();
            closed = true;
            awaitLink(pmd, "down");
        } finally {
            if (!closed) {
                sw.close();
            }
        }
    }

    private static void awaitLink(TestPmd pmd, String state) throws InterruptedException {
        long deadline = System.nanoTime() + CMD.toNanos();
        String info;
        while (!(info = pmd.command("show port info 0", CMD)).contains("Link status: " + state)) {
            assertTrue(System.nanoTime() < deadline, "testpmd port 0 never showed link " + state + ":\n" + info);
            Thread.sleep(200);   // polling testpmd
        }
        System.out.println("testpmd: Link status: " + state);
    }
}
