package io.vswitch.vhost.virtio;

import io.vswitch.protocol.VirtioNetHeader;
import io.vswitch.vhost.memory.GuestMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A burst of frames received from a guest, described in place: each frame is a list of pieces (segment,
 * offset, length) inside the source guest's memory, with the virtio-net header already skipped. Nothing
 * is copied until a destination queue copies the pieces into its own buffers, so the cross-guest path
 * copies each byte exactly once. Reused burst after burst: no allocation.
 *
 * <p>The descriptors stay owned by the guest's TX queue until the batch is {@link VirtQueue#completeTx
 * completed}; a frame must not be read after that.
 */
public final class PacketBatch {
    /** Frames whose chain holds more pieces than this are dropped (a legitimate guest uses far fewer). */
    public static final int MAX_PIECES_PER_FRAME = 64;
    private static final ValueLayout.OfShort U16_BE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt U32_BE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong U64_BE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN);
    /** Longs of {@link #vnetWords} per frame: the 12-byte header in 16 bytes, so that its bytes 0..7 are one long. */
    private static final int WORDS_PER_HEADER = 2;

    private final int capacity;
    private int count;
    final int[] head;
    final int[] frameLength;
    final int[] firstPiece;
    final int[] pieceCount;
    int pieces;
    final MemorySegment[] pieceSegment;
    final long[] pieceOffset;
    final int[] pieceLength;
    /** Descriptor heads consumed by the burst but not forwarded (dropped frames), still to be returned. */
    final int[] droppedHead;
    int dropped;
    /**
     * The virtio-net header each frame came with, {@link VirtioNetHeader#SIZE} bytes per frame as the guest
     * wrote them (all zero for frames that were not in a guest ring): what the offload checks read. Stored as
     * {@link #WORDS_PER_HEADER} longs per frame (bytes 0..7, then bytes 8..11 in the low half of the second, in
     * the native order of the little-endian hosts this runs on, as the rings' own header stores assume), so the
     * fast paths store and the forwarding reads them as plain array elements; {@link #vnet} is the same memory
     * as bytes, for a header that arrives in pieces.
     */
    private final long[] vnetWords;
    private final MemorySegment vnet;
    /**
     * A learning bridge's view of each frame: its Ethernet addresses, bytes 0..7 (destination, then the source's
     * first two) big-endian in {@link #addressHead} and bytes 8..11 (the rest of the source) in {@link #addressTail}.
     * With {@link #captureAddresses} on, the rings' fast path reads them next to the virtio-net header, whose cache
     * line they share, while it walks the ring: one more pair of loads on a line already on its way, instead of a
     * second pass over the burst's frames. {@link #addressesCaptured} is false once a frame arrived another way
     * (a chain, an uplink's frame); {@link #readAddresses} then reads them all.
     */
    private final long[] addressHead;
    private final long[] addressTail;
    private boolean captureAddresses;
    private boolean addressesCaptured;

    public PacketBatch(int capacity) {
        if (capacity < 1 || capacity > 1024) {
            throw new IllegalArgumentException("burst capacity must be 1..1024: " + capacity);
        }
        this.capacity = capacity;
        head = new int[capacity];
        frameLength = new int[capacity];
        firstPiece = new int[capacity];
        pieceCount = new int[capacity];
        int maxPieces = capacity * MAX_PIECES_PER_FRAME;
        pieceSegment = new MemorySegment[maxPieces];
        pieceOffset = new long[maxPieces];
        pieceLength = new int[maxPieces];
        droppedHead = new int[capacity];
        vnetWords = new long[capacity * WORDS_PER_HEADER];
        vnet = MemorySegment.ofArray(vnetWords);
        addressHead = new long[capacity];
        addressTail = new long[capacity];
    }

    /** Whether the rings' fast path reads each frame's Ethernet addresses as it takes the frame (a learning bridge). */
    public void captureAddresses(boolean on) {
        captureAddresses = on;
        addressesCaptured = false;
    }

    /**
     * Whether the addresses of every frame of 14 bytes or more (the only ones forwarded) are in {@link #addressHead}
     * and {@link #addressTail}; a shorter frame's entries may be stale.
     */
    public boolean addressesCaptured() {
        return addressesCaptured;
    }

    /** Reads the Ethernet addresses of every frame of 14 bytes or more (those shorter are never forwarded). */
    public void readAddresses() {
        for (int i = 0; i < count; i++) {
            if (frameLength[i] >= 14) {
                addressHead[i] = u64(i, 0);
                addressTail[i] = u32(i, 8);
            }
        }
        addressesCaptured = true;
    }

    /** Bytes 0..7 of frame {@code frame}, big-endian, once {@link #addressesCaptured}; may be stale for a frame shorter than 14. */
    public long addressHead(int frame) {
        return addressHead[frame];
    }

    /** Bytes 8..11 of frame {@code frame}, big-endian and unsigned, once {@link #addressesCaptured}. */
    public long addressTail(int frame) {
        return addressTail[frame];
    }

    public int capacity() {
        return capacity;
    }

    public int count() {
        return count;
    }

    void clear() {
        count = 0;
        pieces = 0;
        dropped = 0;
        addressesCaptured = captureAddresses;
    }

    /**
     * Makes this batch hold one frame that is not in a guest ring: {@code length} bytes at {@code offset} of
     * {@code segment} (a frame the switch sends on a port's behalf, e.g. a RARP announcement).
     */
    public void setSingleFrame(MemorySegment segment, long offset, int length) {
        clear();
        pieceSegment[0] = segment;
        pieceOffset[0] = offset;
        pieceLength[0] = length;
        pieces = 1;
        clearHeader(0);
        commitFrame(-1, length, 0, 1);
    }

    /** Empties the batch for frames that are not in a guest ring (an uplink's), added with {@link #addFrame}. */
    public void reset() {
        clear();
    }

    /**
     * Appends a frame of {@code length} bytes at {@code offset} of {@code segment}, in one piece (a frame an
     * uplink received into its own buffers); false when the batch is full.
     */
    public boolean addFrame(MemorySegment segment, long offset, int length) {
        if (count == capacity) {
            return false;
        }
        int p = pieces++;
        pieceSegment[p] = segment;
        pieceOffset[p] = offset;
        pieceLength[p] = length;
        clearHeader(count);
        commitFrame(-1, length, p, 1);
        return true;
    }

    /** Records {@code length} bytes of the virtio-net header of frame {@code frame}, from byte {@code at} of it on. */
    void captureHeader(int frame, int at, MemorySegment src, long srcOffset, int length) {
        MemorySegment.copy(src, srcOffset, vnet, (long) frame * WORDS_PER_HEADER * Long.BYTES + at, length);
    }

    /**
     * Appends the frame of a one-descriptor TX chain (the rings' fast paths): {@code length} bytes at {@code host}
     * of {@code memory}, virtio-net header first, already validated to lie inside one region and to be longer
     * than the header. The header is captured with two loads, the frame is one piece.
     */
    void addGuestFrame(int id, MemorySegment memory, long host, long length) {
        final int frame = count;
        final int at = frame * WORDS_PER_HEADER;
        vnetWords[at] = memory.get(ValueLayout.JAVA_LONG_UNALIGNED, host);
        vnetWords[at + 1] = memory.get(ValueLayout.JAVA_SHORT_UNALIGNED, host + VirtioNetHeader.CSUM_OFFSET) & 0xFFFFL;
        final int p = pieces++;
        if (pieceSegment[p] != memory) {   // burst after burst the same guest's segment: skip the reference store (GC barrier)
            pieceSegment[p] = memory;
        }
        pieceOffset[p] = host + VirtioNetHeader.SIZE;
        pieceLength[p] = (int) (length - VirtioNetHeader.SIZE);
        if (captureAddresses && length >= VirtioNetHeader.SIZE + 12) {
            addressHead[frame] = memory.get(U64_BE, host + VirtioNetHeader.SIZE);
            addressTail[frame] = Integer.toUnsignedLong(memory.get(U32_BE, host + VirtioNetHeader.SIZE + 8));
        }
        commit(id, (int) (length - VirtioNetHeader.SIZE), p, 1);
    }

    private void clearHeader(int frame) {
        vnetWords[frame * WORDS_PER_HEADER] = 0L;
        vnetWords[frame * WORDS_PER_HEADER + 1] = 0L;
    }

    /**
     * Bytes 0..7 of the frame's virtio-net header as one little-endian long: flags, gso_type, hdr_len, gso_size,
     * csum_start (see {@link VirtioNetHeader}); 0 for a frame without offloads.
     */
    public long headerWord(int frame) {
        return vnetWords[frame * WORDS_PER_HEADER];
    }

    /** The frame's csum_offset (header bytes 8..9). */
    public int csumOffset(int frame) {
        return (int) vnetWords[frame * WORDS_PER_HEADER + 1] & 0xFFFF;
    }

    void commitFrame(int headId, int length, int first, int numPieces) {
        addressesCaptured = false;   // not through addGuestFrame: its addresses were not read
        commit(headId, length, first, numPieces);
    }

    private void commit(int headId, int length, int first, int numPieces) {
        head[count] = headId;
        frameLength[count] = length;
        firstPiece[count] = first;
        pieceCount[count] = numPieces;
        count++;
    }

    /** Frames taken from the ring but dropped as unusable (too long, too short, too many pieces). */
    public int droppedCount() {
        return dropped;
    }

    public int frameLength(int frame) {
        return frameLength[frame];
    }

    /** Byte {@code offset} of frame {@code frame}, wherever in its pieces it lies. */
    public int frameByte(int frame, int offset) {
        int p = firstPiece[frame];
        int end = p + pieceCount[frame];
        int remaining = offset;
        for (; p < end; p++) {
            if (remaining < pieceLength[p]) {
                return pieceSegment[p].get(ValueLayout.JAVA_BYTE, pieceOffset[p] + remaining) & 0xFF;
            }
            remaining -= pieceLength[p];
        }
        throw new IndexOutOfBoundsException("offset " + offset + " beyond frame of " + frameLength[frame] + " bytes");
    }

    /**
     * Six bytes at {@code offset} (a MAC address) as the low 48 bits of a long, big-endian as on the wire.
     * The frame must be at least offset + 6 bytes long.
     */
    public long mac(int frame, int offset) {
        int p = firstPiece[frame];
        if (pieceLength[p] >= offset + 6) {
            MemorySegment s = pieceSegment[p];
            long base = pieceOffset[p] + offset;
            long hi = Short.toUnsignedLong(s.get(U16_BE, base));
            long lo = Integer.toUnsignedLong(s.get(U32_BE, base + 2));
            return (hi << 32) | lo;
        }
        long mac = 0;
        for (int i = 0; i < 6; i++) {
            mac = (mac << 8) | frameByte(frame, offset + i);
        }
        return mac;
    }

    /**
     * Eight bytes at {@code offset} as a big-endian long (bytes 0..7: the destination MAC in the high 48 bits and
     * the source MAC's first two bytes): one load where {@link #mac} takes two per address. The frame must be at
     * least offset + 8 bytes long.
     */
    public long u64(int frame, int offset) {
        int p = firstPiece[frame];
        if (pieceLength[p] >= offset + 8) {
            final MemorySegment s = pieceSegment[p];
            if (!GuestMemory.CHECKED && s == GuestMemory.EVERYTHING) {
                return GuestMemory.EVERYTHING.get(U64_BE, pieceOffset[p] + offset);   // a guest's frame: the constant (GuestMemory.direct)
            }
            return s.get(U64_BE, pieceOffset[p] + offset);
        }
        long value = 0;
        for (int i = 0; i < 8; i++) {
            value = (value << 8) | frameByte(frame, offset + i);
        }
        return value;
    }

    /** The big-endian 32-bit value at {@code offset} of the frame, unsigned; the frame must be at least offset + 4 bytes long. */
    public long u32(int frame, int offset) {
        int p = firstPiece[frame];
        if (pieceLength[p] >= offset + 4) {
            final MemorySegment s = pieceSegment[p];
            if (!GuestMemory.CHECKED && s == GuestMemory.EVERYTHING) {
                return Integer.toUnsignedLong(GuestMemory.EVERYTHING.get(U32_BE, pieceOffset[p] + offset));
            }
            return Integer.toUnsignedLong(s.get(U32_BE, pieceOffset[p] + offset));
        }
        long value = 0;
        for (int i = 0; i < 4; i++) {
            value = (value << 8) | frameByte(frame, offset + i);
        }
        return value;
    }

    /** The big-endian 16-bit value at {@code offset} of the frame (an EtherType, a VLAN tag's TCI). */
    public int u16(int frame, int offset) {
        int p = firstPiece[frame];
        if (pieceLength[p] >= offset + 2) {
            final MemorySegment s = pieceSegment[p];
            if (!GuestMemory.CHECKED && s == GuestMemory.EVERYTHING) {
                return Short.toUnsignedInt(GuestMemory.EVERYTHING.get(U16_BE, pieceOffset[p] + offset));
            }
            return Short.toUnsignedInt(s.get(U16_BE, pieceOffset[p] + offset));
        }
        return (frameByte(frame, offset) << 8) | frameByte(frame, offset + 1);
    }

    /**
     * Appends to the three arrays, from index {@code at}, the pieces that hold bytes {@code [from, from+length)}
     * of the frame; returns how many it appended. Lets a caller splice a frame (strip or insert a VLAN tag)
     * without copying it.
     */
    public int slice(int frame, int from, int length, MemorySegment[] segments, long[] offsets, int[] lengths, int at) {
        int p = firstPiece[frame];
        int end = p + pieceCount[frame];
        int skip = from;
        int left = length;
        int n = 0;
        for (; p < end && left > 0; p++) {
            int len = pieceLength[p];
            if (skip >= len) {
                skip -= len;
                continue;
            }
            int take = Math.min(len - skip, left);
            segments[at + n] = pieceSegment[p];
            offsets[at + n] = pieceOffset[p] + skip;
            lengths[at + n] = take;
            n++;
            left -= take;
            skip = 0;
        }
        return n;
    }

    /** Copies the whole frame into {@code dst} at {@code dstOffset}. */
    public void copyFrame(int frame, MemorySegment dst, long dstOffset) {
        int p = firstPiece[frame];
        int end = p + pieceCount[frame];
        long at = dstOffset;
        for (; p < end; p++) {
            MemorySegment.copy(pieceSegment[p], pieceOffset[p], dst, at, pieceLength[p]);
            at += pieceLength[p];
        }
    }

    /**
     * True when every piece of the burst can still be read: its memory is mapped and the piece lies inside
     * it. For the failure path only (after an access threw), to tell whose memory failed; never per frame.
     */
    public boolean isReadable() {
        return readable(pieceSegment, pieceOffset, pieceLength, 0, pieces);
    }

    /** True when pieces {@code first .. first+count-1} of the three arrays can all still be read (see {@link #isReadable()}). */
    public static boolean readable(MemorySegment[] segments, long[] offsets, int[] lengths, int first, int count) {
        if (first < 0 || count < 0 || first + count > segments.length
                || first + count > offsets.length || first + count > lengths.length) {
            return false;
        }
        for (int p = first; p < first + count; p++) {
            MemorySegment s = segments[p];
            long offset = offsets[p];
            int length = lengths[p];
            if (s == null || !s.scope().isAlive() || offset < 0 || length < 0 || offset > s.byteSize() - length) {
                return false;
            }
        }
        return true;
    }

    int firstPiece(int frame) {
        return firstPiece[frame];
    }

    int pieceCount(int frame) {
        return pieceCount[frame];
    }
}
