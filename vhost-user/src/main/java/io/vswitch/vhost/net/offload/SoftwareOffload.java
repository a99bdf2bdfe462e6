package io.vswitch.vhost.net.offload;

import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;

import java.lang.foreign.MemorySegment;

import static io.vswitch.vhost.net.offload.OffloadCheck.csumStart;

/**
 * The software fallback for a receiver that needs plain frames (a guest that did not negotiate the GUEST_*
 * offloads, an uplink, a port on another worker): copies the frame once into a scratch buffer and finishes
 * there what the sender left to the device, the partial checksum ({@link OffloadCheck#CSUM}) or the
 * segmentation ({@link OffloadCheck#TSO}). One per worker; its two buffers are allocated once, nothing per frame.
 *
 * <p>Use: {@link #prepare} once per frame and receiver, then {@link #segment}(k) for k below what it returned;
 * each segment is {@link #output()}'s first bytes until the next call.
 */
public final class SoftwareOffload {
    private final MemorySegment original = MemorySegment.ofArray(new byte[VirtQueue.MAX_FRAME]);
    private final MemorySegment out = MemorySegment.ofArray(new byte[VirtQueue.MAX_FRAME]);
    private MemorySegment output = original;
    private int kind;
    private int length;
    private OffloadCheck info;

    /**
     * Copies frame {@code frame} of {@code b} (accepted by {@code check} as {@code kind}, with header word
     * {@code word} and {@code csumOffset}) and returns how many plain frames it makes. Reads the sender's
     * memory: throws what that read throws.
     */
    public int prepare(PacketBatch b, int frame, int length, int kind, long word, int csumOffset, OffloadCheck check) {
        b.copyFrame(frame, original, 0);
        this.kind = kind;
        this.length = length;
        this.info = check;
        if (kind == OffloadCheck.TSO) {
            return TcpSegmenter.count(length - check.payloadOffset(), check.mss());
        }
        Checksum.complete(original, 0, csumStart(word), csumOffset, length);
        return 1;
    }

    /** Builds plain frame {@code k} in {@link #output()} and returns its length. */
    public int segment(int k) {
        if (kind != OffloadCheck.TSO) {
            output = original;
            return length;
        }
        output = out;
        return TcpSegmenter.segment(original, length, info.l3Offset(), info.isIpv6(), info.l4Offset(),
                info.payloadOffset(), info.mss(), k, out);
    }

    /** Where the last {@link #segment} put its frame (at offset 0). */
    public MemorySegment output() {
        return output;
    }
}
