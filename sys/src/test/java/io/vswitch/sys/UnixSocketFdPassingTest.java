package io.vswitch.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UnixSocketFdPassingTest {
    private static final int REGION = 64 * 1024;

    @TempDir
    Path dir;

    @Test
    void payloadAndEightMemfdsArriveInOneMessageAndMapToTheSameMemory() throws Exception {
        Path path = dir.resolve("pass.sock");
        int before = OpenFds.count();
        try (UnixSocket listener = UnixSocket.listen(path, 1)) {
            CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(listener::accept);
            try (UnixSocket client = UnixSocket.connect(path); UnixSocket server = accepted.get(5, TimeUnit.SECONDS);
                 Arena arena = Arena.ofConfined()) {
                int[] memfds = new int[8];
                MappedMemory[] senderMaps = new MappedMemory[8];
                for (int i = 0; i < 8; i++) {
                    memfds[i] = SharedMemory.memfd("region" + i, REGION, false);
                    senderMaps[i] = SharedMemory.map(memfds[i], REGION, 0);
                    senderMaps[i].segment().set(ValueLayout.JAVA_LONG, 8 * i, 0x1111_0000L + i);
                }
                byte[] payload = new byte[300];
                for (int i = 0; i < payload.length; i++) {
                    payload[i] = (byte) (i * 7);
                }
                MemorySegment out = arena.allocate(payload.length);
                MemorySegment.copy(payload, 0, out, ValueLayout.JAVA_BYTE, 0, payload.length);
                client.send(out, payload.length, memfds, 8);

                MemorySegment in = arena.allocate(payload.length);
                ReceivedFds fds = new ReceivedFds();
                server.receive(in, payload.length, fds);
                assertArrayEquals(payload, in.toArray(ValueLayout.JAVA_BYTE), "identical bytes");
                assertEquals(8, fds.count(), "all eight descriptors in the same message");
                for (int i = 0; i < 8; i++) {
                    int received = fds.peek(i);
                    assertNotEquals(memfds[i], received, "the receiver got its own descriptor");
                    try (MappedMemory receiverMap = SharedMemory.map(received, REGION, 0)) {
                        assertEquals(0x1111_0000L + i, receiverMap.segment().get(ValueLayout.JAVA_LONG, 8 * i),
                                "receiver reads the sender's write through its own mapping");
                        receiverMap.segment().set(ValueLayout.JAVA_INT, REGION - 4, 42 + i);
                        assertEquals(42 + i, senderMaps[i].segment().get(ValueLayout.JAVA_INT, REGION - 4),
                                "and the sender sees the receiver's");
                    }
                }
                fds.closeAll();
                for (int i = 0; i < 8; i++) {
                    senderMaps[i].close();
                    Libc.close(memfds[i]);
                }
            }
        }
        assertEquals(before, OpenFds.count(), "no descriptor leaked");
    }

    @Test
    void moreDescriptorsThanFitTruncatesTheControlMessageAndAllAreClosed() throws Throwable {
        UnixSocket[] pair = UnixSocket.pair();
        try (UnixSocket a = pair[0]; UnixSocket b = pair[1]; Arena arena = Arena.ofConfined()) {
            // Send 8 descriptors twice without reading in between, then read them as one 2-byte message:
            // the kernel cannot merge the two control messages, so the receiver must see MSG_CTRUNC or
            // get the first batch only. To force truncation, send 16 descriptors through raw sendmsg calls.
            int[] fds = new int[8];
            for (int i = 0; i < 8; i++) {
                fds[i] = SharedMemory.memfd("trunc" + i, 4096, false);
            }
            MemorySegment one = arena.allocate(1);
            int beforeReceive = OpenFds.count();
            RawSend.sendWithFds(a.fd(), one, 1, fds, 8, 16);
            ReceivedFds received = new ReceivedFds();
            IOException e = assertThrows(IOException.class, () -> b.receive(arena.allocate(1), 1, received));
            assertTrue(e.getMessage().contains("truncated"), e.getMessage());
            assertEquals(0, received.count());
            assertEquals(beforeReceive, OpenFds.count(), "every descriptor that did arrive was closed");
            for (int fd : fds) {
                Libc.close(fd);
            }
        }
    }

    @Test
    void shortReadsAreReassembledAndEofIsReported() throws Exception {
        UnixSocket[] pair = UnixSocket.pair();
        try (UnixSocket a = pair[0]; UnixSocket b = pair[1]; Arena arena = Arena.ofConfined()) {
            MemorySegment part = arena.allocate(4);
            part.set(ValueLayout.JAVA_INT, 0, 0x01020304);
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                try {
                    a.send(part, 4, null, 0);
                    Thread.sleep(50);
                    a.send(part, 4, null, 0);
                    a.shutdown();
                } catch (Exception ex) {
                    throw new RuntimeException(ex);
                }
            });
            MemorySegment in = arena.allocate(8);
            b.receive(in, 8, new ReceivedFds());
            assertEquals(0x01020304, in.get(ValueLayout.JAVA_INT, 4));
            writer.get(5, TimeUnit.SECONDS);
            assertThrows(EOFException.class, () -> b.receive(in, 8, new ReceivedFds()));
        }
    }

    @Test
    void shutdownWakesABlockedAccept() throws Exception {
        try (UnixSocket listener = UnixSocket.listen(dir.resolve("wake.sock"), 1)) {
            CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(listener::accept);
            Thread.sleep(100);
            listener.shutdown();
            Exception e = assertThrows(Exception.class, () -> accepted.get(5, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().startsWith("accept"), e.getCause().getMessage());
        }
    }
}
