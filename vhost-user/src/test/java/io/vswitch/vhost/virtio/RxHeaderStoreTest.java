package io.vswitch.vhost.virtio;

import io.vswitch.protocol.VirtioNetHeader;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link VirtQueue#storeRxHeader}, the receive fast paths' virtio-net header (both rings): when the header has a
 * line of its own it is stored only where it differs (a read-only buffer that already holds it is not written,
 * one that does not is), and when the frame begins on the header's line it is stored as it is, without a look
 * (a store into a read-only buffer is tried, and refused). Either way the buffer ends up holding the header:
 * the 8-byte word, csum_offset and num_buffers 1.
 */
class RxHeaderStoreTest {
    private static final long HEADER = 0x0022_0036_0042_0301L;   // flags, gso_type, hdr_len, gso_size, csum_start
    private static final int CSUM_OFFSET = 16;
    /** testpmd's virtio-user: the header at the end of a line, the frame on the next. */
    private static final long OWN_LINE = 128 - VirtioNetHeader.SIZE;
    /** Linux's virtio-net: the header at a buffer's start, the frame right after it on the same line. */
    private static final long SHARED_LINE = 128;

    @Test
    void headerOnItsOwnLineIsStoredOnlyWhereItDiffers() {
        MemorySegment buffer = MemorySegment.ofArray(new byte[256]);
        VirtQueue.storeRxHeader(buffer, OWN_LINE, HEADER, CSUM_OFFSET);
        assertHeader(buffer, OWN_LINE);
        // the same header again: nothing to store, so a buffer that cannot be written is fine
        VirtQueue.storeRxHeader(buffer.asReadOnly(), OWN_LINE, HEADER, CSUM_OFFSET);
        // a different one is stored
        assertWrites(() -> VirtQueue.storeRxHeader(buffer.asReadOnly(), OWN_LINE, HEADER ^ 1, CSUM_OFFSET));
        assertWrites(() -> VirtQueue.storeRxHeader(buffer.asReadOnly(), OWN_LINE, HEADER, CSUM_OFFSET + 1));
        VirtQueue.storeRxHeader(buffer, OWN_LINE, 0, 0);
        assertEquals(0, buffer.get(ValueLayout.JAVA_LONG_UNALIGNED, OWN_LINE));
        assertEquals(1 << 16, buffer.get(ValueLayout.JAVA_INT_UNALIGNED, OWN_LINE + 8));
    }

    @Test
    void headerSharingTheFramesLineIsStoredWithoutALook() {
        MemorySegment buffer = MemorySegment.ofArray(new byte[256]);
        VirtQueue.storeRxHeader(buffer, SHARED_LINE, HEADER, CSUM_OFFSET);
        assertHeader(buffer, SHARED_LINE);
        // the same header again is still stored: the frame's copy takes the line anyway
        assertWrites(() -> VirtQueue.storeRxHeader(buffer.asReadOnly(), SHARED_LINE, HEADER, CSUM_OFFSET));
        // one byte into a line: header and frame's first byte still share it
        VirtQueue.storeRxHeader(buffer, SHARED_LINE + 1, HEADER, CSUM_OFFSET);
        assertHeader(buffer, SHARED_LINE + 1);
    }

    /** The call tried to store into the read-only buffer (FFM: IllegalArgumentException, "read-only segment"). */
    private static void assertWrites(org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains("read-only"), e.getMessage());
    }

    private static void assertHeader(MemorySegment buffer, long at) {
        assertEquals(HEADER, buffer.get(ValueLayout.JAVA_LONG_UNALIGNED, at));
        assertEquals(CSUM_OFFSET, buffer.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 8));
        assertEquals(1, buffer.get(ValueLayout.JAVA_SHORT_UNALIGNED, at + 10), "num_buffers");
    }
}
