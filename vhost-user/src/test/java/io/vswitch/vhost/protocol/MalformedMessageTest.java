package io.vswitch.vhost.protocol;

import io.vswitch.protocol.Features;
import io.vswitch.protocol.VhostUserMessage;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.sys.EventFd;
import io.vswitch.sys.Libc;
import io.vswitch.sys.OpenFds;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.sys.SharedMemory;
import io.vswitch.sys.UnixSocket;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.RawSendmsg;
import io.vswitch.testing.TestFrontend;
import io.vswitch.testing.TestFrontend.Region;
import io.vswitch.vhost.virtio.PacketBatch;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static io.vswitch.protocol.VhostUserMessage.FLAG_NEED_REPLY;
import static io.vswitch.protocol.VhostUserMessage.VERSION;
import static io.vswitch.vhost.fixtures.PortFixture.copy;
import static io.vswitch.testing.Frames.frame;
import static io.vswitch.testing.Frames.segment;
import static io.vswitch.vhost.fixtures.PortFixture.await;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.RX;
import static io.vswitch.testing.TestFrontend.TX;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static io.vswitch.testing.TestFrontend.u64;
import static io.vswitch.testing.TestFrontend.vringState;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Messages a hostile frontend can send. What can be framed but is wrong is refused (nacked with REPLY_ACK)
 * and the connection stays usable; what cannot be framed ends the connection and the port takes the next
 * one. Descriptors that came with a refused message are closed, mappings of refused memory undone, and once
 * the frontend is gone the port holds nothing of it.
 */
@Timeout(20)
class MalformedMessageTest {
    @TempDir
    Path dir;

    private PortFixture fx;
    private TestFrontend fe;
    private VirtioNetDevice device;
    private final List<Integer> ownFds = new ArrayList<>();

    @BeforeEach
    void start() throws Exception {
        fx = new PortFixture(dir);
        fe = fx.connectAndSetUp(new TestFrontend.Options());
        device = fx.device();
        assertTrue(device.isRunning());
    }

    @AfterEach
    void stop() {
        closeOwnFds();
        if (fe != null) {
            fx.disconnectAndAssertReleased(fe);
        }
        if (fx != null) {
            fx.close();
        }
    }

    // ---------------------------------------------------------------- refused, connection stays

    @Test
    void wrongPayloadSizesAreNacked() throws Exception {
        assertNack(fe.sendWithAck(VhostUserRequest.SET_VRING_NUM.code(), new byte[4]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_VRING_NUM.code(), new byte[12]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_FEATURES.code(), new byte[0]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_VRING_ADDR.code(), new byte[8]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_VRING_ENABLE.code(), new byte[16]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_MEM_TABLE.code(), new byte[4]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_OWNER.code(), new byte[8]));
        assertEquals(7, fx.port().counters().refusedMessages);
        assertStillServing();
    }

    @Test
    void unknownRequestCodesAreNacked() throws Exception {
        for (int code : new int[] {0, 26, 33, 41, 63, 64, 99, 1000, -1}) {
            assertNack(fe.sendWithAck(code, new byte[8]));
        }
        // known to the protocol but not served by this backend
        assertNack(fe.sendWithAck(VhostUserRequest.IOTLB_MSG.code(), new byte[8]));
        assertNack(fe.sendWithAck(VhostUserRequest.SET_CONFIG.code(), new byte[8]));
        assertStillServing();
    }

    @Test
    void valuesOutOfRangeAreNacked() throws Exception {
        assertNack(fe.setVringNum(RX, 0));
        assertNack(fe.setVringNum(RX, 100));
        assertNack(fe.setVringNum(RX, 65536));
        assertNack(fe.setVringNum(2, 256));
        assertNack(fe.setVringBase(-1, 0));
        assertNack(fe.setVringEnable(7, true));
        assertNack(fe.setFeatures(fe.options().features() | (1L << 63)));
        // a legacy driver (no VERSION_1) would expect a 10-byte header: refused, not served wrong frames
        assertNack(fe.setFeatures(fe.options().features() & ~Features.bit(Features.VIRTIO_F_VERSION_1)));
        assertNack(fe.setProtocolFeatures(1L << 40));
        assertNack(fe.setVringAddr(3, fe.descUserAddr(RX), fe.usedUserAddr(RX), fe.availUserAddr(RX)));
        TestFrontend.Reply reply = fe.ask(VhostUserRequest.GET_VRING_BASE, vringState(9, 0));
        assertEquals(VhostUserMessage.VRING_STATE_SIZE, reply.size(), "answered, so the frontend is not left hanging");
        assertTrue(device.isRunning(), "the running rings were left alone");
        assertStillServing();
    }

    @Test
    void memoryTableWithNoRegionsIsNacked() throws Exception {
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(0, List.of()), dupMemfd());
        assertTrue(device.isRunning(), "old memory table still in use");
        assertStillServing();
    }

    @Test
    void memoryTableWithMoreThanEightRegionsIsNacked() throws Exception {
        List<Region> regions = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            regions.add(new Region(GUEST_PHYS_BASE + i * 0x10_0000L, 4096, USER_BASE + i * 0x10_0000L, 0));
        }
        int[] fds = new int[8];
        for (int i = 0; i < 8; i++) {
            fds[i] = dupMemfd();
        }
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(9, regions), fds);
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(-1, regions.subList(0, 1)), fds[0]);
        assertStillServing();
    }

    @Test
    void memoryTableWhoseRegionCountDisagreesWithThePayloadIsNacked() throws Exception {
        Region r = fe.standardRegion();
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(2, List.of(r)), dupMemfd(), dupMemfd());
        assertStillServing();
    }

    @Test
    void memoryTableWithMoreDescriptorsThanRegionsIsNacked() throws Exception {
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(1, List.of(fe.standardRegion())),
                dupMemfd(), dupMemfd());
        assertTrue(device.isRunning(), "refused before anything was mapped");
        assertStillServing();
    }

    @Test
    void memoryTableWithFewerDescriptorsThanRegionsIsNacked() throws Exception {
        Region a = new Region(GUEST_PHYS_BASE, 0x10_0000, USER_BASE, 4096);
        Region b = new Region(GUEST_PHYS_BASE + 0x10_0000, 0x10_0000, USER_BASE + 0x10_0000, 4096 + 0x10_0000);
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(2, List.of(a, b)), dupMemfd());
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(1, List.of(a)));
        assertTrue(device.isRunning());
        assertStillServing();
    }

    @Test
    void regionLargerThanItsFileIsNackedAndStopsTheDevice() throws Exception {
        Region tooBig = new Region(GUEST_PHYS_BASE, fe.options().memorySize * 2, USER_BASE, fe.options().mmapOffset);
        assertRefusedMemory(tooBig, dupMemfd());
    }

    @Test
    void regionReachingPastItsFileThroughTheOffsetIsNacked() throws Exception {
        Region pastEnd = new Region(GUEST_PHYS_BASE, fe.options().memorySize, USER_BASE, fe.options().mmapOffset + 4096);
        assertRefusedMemory(pastEnd, dupMemfd());
    }

    @Test
    void regionWhoseMmapOffsetOverflowsIsNacked() throws Exception {
        assertRefusedMemory(new Region(GUEST_PHYS_BASE, 0x10_0000, USER_BASE, Long.MAX_VALUE - 4095), dupMemfd());
        assertRefusedMemory(new Region(GUEST_PHYS_BASE, 0x10_0000, USER_BASE, -4096L), dupMemfd());
    }

    @Test
    void regionOfSizeZeroOrWrappingAddressesIsNacked() throws Exception {
        assertRefusedMemory(new Region(GUEST_PHYS_BASE, 0, USER_BASE, 0), dupMemfd());
        assertRefusedMemory(new Region(-4096L, 0x10_0000, USER_BASE, 0), dupMemfd());
        assertRefusedMemory(new Region(GUEST_PHYS_BASE, 0x10_0000, -4096L, 0), dupMemfd());
        assertRefusedMemory(new Region(GUEST_PHYS_BASE, -4096L, USER_BASE, 0), dupMemfd());
    }

    @Test
    void eventfdInsteadOfAMemoryFileIsNacked() throws Exception {
        try (EventFd notMemory = EventFd.create()) {
            assertRefusedMemory(fe.standardRegion(), notMemory.fd());
        }
    }

    @Test
    void socketInsteadOfAMemoryFileIsNacked() throws Exception {
        UnixSocket[] pair = UnixSocket.pair();
        try {
            assertRefusedMemory(fe.standardRegion(), pair[0].fd());
        } finally {
            pair[0].close();
            pair[1].close();
        }
    }

    @Test
    void overlappingRegionsAreNackedAndLeaveNoMapping() throws Exception {
        int before = PortFixture.mappings(fe.memoryName());
        assertEquals(2, before, "the frontend's mapping and the port's");
        Region a = new Region(GUEST_PHYS_BASE, 0x10_0000, USER_BASE, 4096);
        Region guestOverlap = new Region(GUEST_PHYS_BASE + 0x8_0000, 0x10_0000, USER_BASE + 0x10_0000, 4096);
        Region userOverlap = new Region(GUEST_PHYS_BASE + 0x10_0000, 0x10_0000, USER_BASE + 0x8_0000, 4096);
        for (Region second : new Region[] {guestOverlap, userOverlap}) {
            int c = OpenFds.count();
            int[] fds = {dupMemfd(), dupMemfd()};
            assertNack(fe.setMemTable(List.of(a, second), fds));
            await(() -> OpenFds.count() == c + 2, "the port closed both descriptors");
            await(() -> PortFixture.mappings(fe.memoryName()) == before,
                    "both regions mapped for the refused table were unmapped again");
        }
        assertRecoversWithAGoodMemoryTable();
    }

    @Test
    void addedRegionOverlappingAnExistingOneIsNackedAndLeavesNoMapping() throws Exception {
        assertTrue(device.hasProtocolFeature(Features.PROTOCOL_F_REPLY_ACK));
        int before = PortFixture.mappings(fe.memoryName());
        int c = OpenFds.count();
        int fd = dupMemfd();
        byte[] payload = TestFrontend.le(VhostUserMessage.MEM_REG_SIZE).putLong(0)
                .putLong(GUEST_PHYS_BASE + 0x1000).putLong(0x1000).putLong(USER_BASE + 0x10_0000_0000L).putLong(4096)
                .array();
        assertNack(fe.send(VhostUserRequest.ADD_MEM_REG, payload, fd));
        await(() -> OpenFds.count() == c + 1, "the port closed the region's descriptor");
        await(() -> PortFixture.mappings(fe.memoryName()) == before, "the refused region was unmapped again");
        assertEquals(1, device.memory().regionCount());
        assertTrue(device.isRunning(), "the memory in use was left alone");
        assertStillServing();
    }

    @Test
    void addAndRemoveRegionWhileRunning() throws Exception {
        int extra = SharedMemory.memfd("vtest-extra-" + ProcessHandle.current().pid(), 0x1_0000, false);
        ownFds.add(extra);
        byte[] region = TestFrontend.le(VhostUserMessage.MEM_REG_SIZE).putLong(0)
                .putLong(0x1_0000_0000L).putLong(0x1_0000).putLong(USER_BASE + 0x1_0000_0000L).putLong(0).array();
        TestFrontend.expectOk(fe.send(VhostUserRequest.ADD_MEM_REG, region, extra), "ADD_MEM_REG");
        assertEquals(2, device.memory().regionCount());
        assertTrue(device.isRunning());
        String extraName = "vtest-extra-" + ProcessHandle.current().pid();
        assertEquals(1, PortFixture.mappings(extraName));
        TestFrontend.expectOk(fe.send(VhostUserRequest.REM_MEM_REG, region), "REM_MEM_REG");
        assertEquals(1, device.memory().regionCount());
        assertEquals(0, PortFixture.mappings(extraName), "the removed region is unmapped");
        assertNack(fe.send(VhostUserRequest.REM_MEM_REG, region));
        assertTrue(device.isRunning());
        assertStillServing();
    }

    @Test
    void descriptorsOnAMessageThatTakesNoneAreClosed() throws Exception {
        try (EventFd e = EventFd.create()) {
            assertNackClosesFds(VhostUserRequest.SET_OWNER, new byte[0], e.fd());
            assertNackClosesFds(VhostUserRequest.SET_VRING_NUM, vringState(RX, 256), e.fd(), dupMemfd());
            assertNackClosesFds(VhostUserRequest.SET_FEATURES, u64(fe.options().features()), fe.memfd());
            int c = OpenFds.count();
            TestFrontend.Reply reply = fe.ask(VhostUserRequest.GET_FEATURES, new byte[0], e.fd());
            assertEquals(0, reply.u64(0), "a refused GET is answered with zero, not left hanging");
            await(() -> OpenFds.count() == c, "the descriptor sent with GET_FEATURES was closed");
        }
        assertTrue(device.isRunning());
        assertStillServing();
    }

    @Test
    void vringFdMessagesWithTheWrongDescriptorsAreNackedAndClosed() throws Exception {
        try (EventFd a = EventFd.create(); EventFd b = EventFd.create()) {
            assertNackClosesFds(VhostUserRequest.SET_VRING_CALL, u64(RX), a.fd(), b.fd());
            assertNackClosesFds(VhostUserRequest.SET_VRING_KICK, u64(TX | VhostUserMessage.VRING_NOFD_MASK), a.fd());
            assertNackClosesFds(VhostUserRequest.SET_VRING_CALL, u64(5), a.fd());
            assertNackClosesFds(VhostUserRequest.SET_VRING_ERR, u64(2), a.fd());
            assertNackClosesFds(VhostUserRequest.SET_LOG_BASE, new byte[16], dupMemfd());   // a log of 0 bytes
            // a log larger than the file that should hold it
            byte[] tooLarge = java.nio.ByteBuffer.allocate(16).order(java.nio.ByteOrder.LITTLE_ENDIAN)
                    .putLong(1L << 30).putLong(0).array();
            assertNackClosesFds(VhostUserRequest.SET_LOG_BASE, tooLarge, dupMemfd());
            // a memory file where an eventfd belongs: refused, not adopted as a doorbell
            assertNackClosesFds(VhostUserRequest.SET_VRING_CALL, u64(RX), dupMemfd());
            assertNackClosesFds(VhostUserRequest.SET_VRING_KICK, u64(TX), dupMemfd());
        }
        assertNack(fe.send(VhostUserRequest.SET_VRING_KICK, u64(TX)));   // no descriptor and no "no fd" flag
        assertTrue(device.isRunning(), "nothing refused touched the running rings");
        assertStillServing();
    }

    // ---------------------------------------------------------------- connection ended

    @Test
    void payloadLargerThanTheLimitClosesTheConnection() throws Exception {
        fe.sendRaw(VhostUserRequest.SET_FEATURES.code(), VERSION | FLAG_NEED_REPLY, VhostUserMessage.MAX_PAYLOAD + 1, new byte[0]);
        assertConnectionClosedAndPortRecovers();
        assertEquals(1, fx.port().counters().protocolErrors);
    }

    @Test
    void negativePayloadSizeClosesTheConnection() throws Exception {
        fe.sendRaw(VhostUserRequest.SET_FEATURES.code(), VERSION | FLAG_NEED_REPLY, -8, new byte[0]);
        assertConnectionClosedAndPortRecovers();
        assertEquals(1, fx.port().counters().protocolErrors);
    }

    @Test
    void badVersionClosesTheConnection() throws Exception {
        fe.sendRaw(VhostUserRequest.GET_FEATURES.code(), 0x2, 0, new byte[0]);
        assertConnectionClosedAndPortRecovers();
        assertEquals(1, fx.port().counters().protocolErrors);
    }

    @Test
    void versionZeroClosesTheConnection() throws Exception {
        fe.sendRaw(VhostUserRequest.SET_OWNER.code(), FLAG_NEED_REPLY, 0, new byte[0]);
        assertConnectionClosedAndPortRecovers();
        assertEquals(1, fx.port().counters().protocolErrors);
    }

    @Test
    void moreThanEightDescriptorsInOneMessageCloseTheConnection() throws Exception {
        byte[] header = TestFrontend.le(VhostUserMessage.HEADER_SIZE)
                .putInt(VhostUserRequest.SET_OWNER.code()).putInt(VERSION).putInt(0).array();
        int[] fds = new int[12];
        for (int i = 0; i < fds.length; i++) {
            fds[i] = dupMemfd();
        }
        RawSendmsg.send(fe.socket().fd(), header, fds);
        assertConnectionClosedAndPortRecovers();
    }

    @Test
    void frontendVanishingInTheMiddleOfAMessageResetsThePort() throws Exception {
        fe.sendRaw(VhostUserRequest.SET_MEM_TABLE.code(), VERSION, 40, new byte[] {1, 0, 0, 0}, dupMemfd());
        Thread.sleep(20);
        closeOwnFds();
        fx.disconnectAndAssertReleased(fe);
        fe = fx.connectAndSetUp(new TestFrontend.Options());
        assertTrue(device.isRunning());
    }

    // ---------------------------------------------------------------- helpers

    /** A new descriptor for the frontend's memfd (closed after the test), so every attached fd is distinct. */
    private int dupMemfd() {
        int fd = TestFrontend.dup(fe.memfd());
        ownFds.add(fd);
        return fd;
    }

    /** Closes the test's own extra descriptors, before comparing the fd count with the port's baseline. */
    private void closeOwnFds() {
        for (int fd : ownFds) {
            Libc.closeQuietly(fd);
        }
        ownFds.clear();
    }

    private static void assertNack(long ack) {
        assertNotEquals(0, ack, "refused with a non-zero ack");
    }

    /** Sends the request with these descriptors; it must be nacked and the port must close its copies. */
    private void assertNackClosesFds(VhostUserRequest request, byte[] payload, int... fds) throws IOException {
        int before = OpenFds.count();
        long refusedBefore = fx.port().counters().refusedMessages;
        assertNack(fe.send(request, payload, fds));
        await(() -> OpenFds.count() == before, "the port closed the " + fds.length + " descriptor(s) of a refused "
                + request + " (have " + OpenFds.count() + ", want " + before + ")");
        assertEquals(refusedBefore + 1, fx.port().counters().refusedMessages);
    }

    /** A memory table the port must refuse when it maps it: nacked, fd closed, nothing mapped, device stopped. */
    private void assertRefusedMemory(Region region, int fd) throws IOException {
        int mappings = PortFixture.mappings(fe.memoryName());
        assertNackClosesFds(VhostUserRequest.SET_MEM_TABLE, TestFrontend.memTable(1, List.of(region)), fd);
        assertEquals(mappings, PortFixture.mappings(fe.memoryName()), "nothing new mapped");
        assertFalse(device.isRunning(), "the device stops when the frontend's memory cannot be used");
        assertTrue(device.isBroken());
        assertRecoversWithAGoodMemoryTable();
    }

    private void assertRecoversWithAGoodMemoryTable() throws IOException {
        TestFrontend.expectOk(fe.setMemTable(), "SET_MEM_TABLE");
        assertTrue(device.isRunning(), "running again on a usable memory table");
        assertFalse(device.isBroken());
        assertEquals(1, device.memory().regionCount());
        assertEquals(2, PortFixture.mappings(fe.memoryName()), "the old table's mapping was replaced, not kept");
        assertStillServing();
    }

    /** The connection still works: a round trip, and a frame each way on the rings set up at the start. */
    private void assertStillServing() throws IOException {
        assertEquals(Features.DEVICE_FEATURES, fe.getFeatures());
        if (!device.isRunning()) {
            return;
        }
        PacketBatch batch = new PacketBatch(4);
        byte[] out = frame(80, 42);
        fe.transmit(out);
        assertEquals(1, device.txQueue().dequeueBurst(batch));
        assertArrayEquals(out, copy(batch, 0));
        device.txQueue().completeTx(batch);
        assertEquals(1, fe.txCompleted().size());
        byte[] in = frame(90, 43);
        fe.postRxBuffers(1, 2048);
        assertTrue(device.rxQueue().enqueue(segment(in), 0, in.length));
        device.rxQueue().flushRx();
        assertArrayEquals(in, fe.receive().get(0).data());
    }

    /** The port closed the connection, released everything, and serves the next frontend. */
    private void assertConnectionClosedAndPortRecovers() throws IOException {
        assertTrue(fe.closedByPeer(5000), "the port closed the connection");
        closeOwnFds();
        fx.disconnectAndAssertReleased(fe);
        assertEquals(1, fx.port().counters().disconnects);
        fe = fx.connectAndSetUp(new TestFrontend.Options());
        assertTrue(device.isRunning(), "a new frontend is served");
        assertStillServing();
    }
}
