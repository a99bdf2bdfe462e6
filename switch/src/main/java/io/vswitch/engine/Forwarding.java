package io.vswitch.engine;

import io.vswitch.vhost.net.offload.OffloadCheck;
import io.vswitch.vhost.net.offload.SoftwareOffload;
import io.vswitch.vhost.virtio.GuestCopies;
import io.vswitch.vhost.virtio.PacketBatch;
import io.vswitch.vhost.virtio.VirtQueue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * L2 forwarding on one worker: where each frame of a burst goes (the cross-connect peer, the learned port, or
 * every port of its VLAN), the VLAN rules of access and trunk ports, and the one copy into a local
 * destination's receive queue or uplink. Frames for another worker's ports go to the {@link Handoff}.
 * Nothing is lost silently: a frame that goes nowhere is counted on its port with its reason.
 */
final class Forwarding {
    static final int ETH_P_8021Q = 0x8100;
    static final int TAG_SIZE = 4;

    private final int workerId;
    private final boolean learning;
    private final MacTable macTable;
    /** This worker's cache of the table (learning mode only). */
    private final LearnCache learnCache;
    private final long agingMillis;
    private final Handoff handoff;
    /** Every port by index (the switch's table; indices are never reused); replaced by a worker command. */
    SwitchPort[] allPorts;
    /** This worker's ports; replaced by a worker command. */
    SwitchPort[] ports = new SwitchPort[0];
    /** The ports of {@link #allPorts} whose queue pairs live on several workers: a flood reaches them pair by pair. */
    private SwitchPort[] spreadPorts;
    /** Multiqueue: set when some port has more than one pair; only then is a frame's flow hashed. */
    private boolean multiQueue;
    // the flow hash of the frame being forwarded (computed on first use), and of a frame from another worker
    private int frameHash;
    private boolean frameHashed;
    private int flatHash;
    /** What the last {@link #forward} took from its source (for the source pair's counters). */
    int forwardedFrames;
    long forwardedBytes;

    // a frame spliced around a VLAN tag: its pieces, and the tag itself
    private final MemorySegment[] spliceSegments = new MemorySegment[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final long[] spliceOffsets = new long[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final int[] spliceLengths = new int[PacketBatch.MAX_PIECES_PER_FRAME + 3];
    private final MemorySegment tag = MemorySegment.ofArray(new byte[TAG_SIZE]);

    // offloads (see io.vswitch.vhost.net.offload): the frame being forwarded, as forward() checked it. A frame
    // whose header asks for CSUM or TSO goes as it is to a guest that negotiated the matching GUEST_* features,
    // and is finished in software (checksum, segmentation) for any other receiver.
    private final OffloadCheck offloadCheck = new OffloadCheck();
    private final SoftwareOffload softwareOffload = new SoftwareOffload();
    /** The copies of the burst being forwarded into guests, done together at the end of {@link #forward}. */
    private final GuestCopies copies = new GuestCopies();
    private int frameOffload = OffloadCheck.PLAIN;
    private long frameHeader;
    private int frameCsumOffset;

    Forwarding(int workerId, boolean learning, MacTable macTable, SwitchPort[] allPorts, Handoff handoff) {
        this.workerId = workerId;
        this.learning = learning;
        this.macTable = macTable;
        this.learnCache = learning ? new LearnCache() : null;
        this.agingMillis = learning ? macTable.agingMillis() : 0;
        this.allPorts = allPorts;
        this.spreadPorts = spreadOf(allPorts);
        this.multiQueue = anyMultiQueue(allPorts);
        this.handoff = handoff;
    }

    /** A command (for the worker thread) installing the switch's grown port table and what derives from it. */
    Runnable portTableCommand(SwitchPort[] table) {
        SwitchPort[] spread = spreadOf(table);
        boolean mq = anyMultiQueue(table);
        return () -> {
            allPorts = table;
            spreadPorts = spread;
            multiQueue = mq;
        };
    }

    private static SwitchPort[] spreadOf(SwitchPort[] table) {
        return java.util.Arrays.stream(table).filter(p -> p != null && p.spread).toArray(SwitchPort[]::new);
    }

    private static boolean anyMultiQueue(SwitchPort[] table) {
        return java.util.Arrays.stream(table).anyMatch(p -> p != null && p.pairs > 1);
    }

    /**
     * Learning: the table's clock (milliseconds), read at the start of a pass that follows an idle one, and else
     * once every {@link #CLOCK_PASSES} busy passes: a clock read costs about 25 ns here, a busy pass of 2 guests
     * takes 2-4 µs, and what the clock times (ageing, a source learned again at most every 500 ms) counts in
     * hundreds of milliseconds and seconds.
     */
    private long passNow;
    static final int CLOCK_PASSES = 32;
    private int clockAge;

    /**
     * At the start of each pass, before any {@link #forward}: the table's generation, and its clock when the
     * previous pass was idle or the last reading is {@link #CLOCK_PASSES} passes old.
     */
    void beginPass(boolean afterIdle) {
        if (learning) {
            if (afterIdle || ++clockAge >= CLOCK_PASSES) {
                passNow = macTable.now();
                clockAge = 0;
            }
            learnCache.sync(macTable.generation());
        }
    }

    /**
     * Forwards the {@code n} frames of {@code b} that {@code src} sent, and counts them on {@code src}. The frames'
     * copies into guests are done before this returns: {@code b}'s buffers may be returned, the queues flushed.
     */
    void forward(SwitchPort src, PacketBatch b, int n) {
        try {
            forwardBurst(src, b, n);
        } catch (RuntimeException | Error e) {
            try {
                copies.drain();   // the frames enqueued before the failure: their buffers will be published
            } catch (RuntimeException second) {
                e.addSuppressed(second);
            }
            throw e;
        }
        copies.drain();
        if (crossConnectQueue != null) {
            // published now rather than at the end of the pass: x86 makes stores visible in program order, so the
            // peer's used index would otherwise wait for the source's used ring (completeTx, next) to reach its
            // line first. Only when both ports have one queue pair (see directQueue): then the peer gets one burst
            // per pass, from its one source, and this publishes (and calls, in interrupt mode) no more often than
            // the pass's end would. bench/RESULTS.md, session 15: the ping-pong's p50 0.80 x, same rounds.
            crossConnectQueue.flushRx();
        }
    }

    /** The cross-connect peer's receive queue the burst enqueues into directly (see directQueue), or null: set first in forwardBurst. */
    private VirtQueue crossConnectQueue;

    private void forwardBurst(SwitchPort src, PacketBatch b, int n) {
        final boolean learning = this.learning;   // a local: the loops below would read the field frame after frame
        long bytes = 0;
        final int maxFrame = src.maxFrame;
        final long now = passNow;
        burstSource = -1;
        burstDestination = -1;
        long burstHead = 0;
        long burstTail = -1;   // never a 32-bit value: the first frame is resolved
        int burstVlan = 0;
        int burstFrameOut = MacTable.MISS;
        int invalid = 0;
        // a plain local guest's queue (see directQueue): cross-connect's peer, for the whole burst, or learning's
        // destination, for the frames that resolve to it; its counts are added when the destination changes
        VirtQueue direct = learning || src.peer == null ? null : directQueue(src, src.peer);
        crossConnectQueue = src.pairs == 1 ? direct : null;   // see forward
        SwitchPort directPort = direct != null ? src.peer : null;
        int directFrames = 0;
        long directBytes = 0;
        if (learning && !b.addressesCaptured()) {
            // the ring's fast path reads them as it takes each frame; frames that came another way are read here,
            // the whole burst in one loop of independent loads (see PacketBatch#captureAddresses)
            b.readAddresses();
        }
        try {   // the frames already enqueued are counted even when a later one fails (its source memory gone)
            for (int i = 0; i < n; i++) {
                int length = b.frameLength(i);
                frameHashed = false;
                if (length < 14) {
                    src.counters.dropInvalid.increment();   // refused as invalid: counted apart, never as rx
                    invalid++;
                    continue;
                }
                long header = b.headerWord(i);
                int offload = OffloadCheck.PLAIN;
                if (header != 0) {   // only guests write one; uplinks' and the switch's own frames have none
                    offload = offloadCheck.check(header, b.csumOffset(i), src.device.features(), b, i, length, maxFrame);
                    if (offload == OffloadCheck.BAD) {
                        src.counters.dropBadOffloadHeader.increment();   // refused like an invalid frame: not rx (atomic: a spread port's shards share it)
                        src.reportBadOffload(offloadCheck.failed());             // housekeeping logs it, not us
                        invalid++;
                        continue;
                    }
                }
                frameOffload = offload;
                frameHeader = header;
                frameCsumOffset = offload == OffloadCheck.PLAIN ? 0 : b.csumOffset(i);
                bytes += length;
                if (length > maxFrame && offload != OffloadCheck.TSO) {   // a TSO frame's segments were checked against it
                    src.counters.dropOverMtu.increment();
                    continue;
                }
                // which VLAN the frame belongs to, and whether its bytes carry the tag
                int vlan = 0;
                boolean tagged = false;
                if (src.trunk != null) {
                    vlan = length >= 18 && b.u16(i, 12) == ETH_P_8021Q ? b.u16(i, 14) & 0xFFF : -1;
                    tagged = true;
                    if (vlan <= 0 || !src.carries(vlan)) {
                        src.counters.dropVlan.increment();   // untagged, or a VLAN the trunk does not carry
                        continue;
                    }
                } else if (src.accessVlan > 0) {
                    if (b.u16(i, 12) == ETH_P_8021Q) {
                        src.counters.dropVlan.increment();   // access ports take untagged frames only
                        continue;
                    }
                    vlan = src.accessVlan;
                }
                int out = MacTable.MISS;
                if (learning) {
                    // bytes 0..7 (destination, the source's first two) and 8..11 (the rest of the source)
                    long head = b.addressHead(i);
                    long tail = b.addressTail(i);
                    if (head == burstHead && tail == burstTail && vlan == burstVlan) {
                        out = burstFrameOut;   // the addresses of the frame before: its decision (learning included) holds
                    } else {
                        out = resolve(src, head >>> 16, ((head & 0xFFFF) << 32) | tail, (long) vlan << 48, now);
                        burstHead = head;
                        burstTail = tail;
                        burstVlan = vlan;
                        burstFrameOut = out;
                        SwitchPort dst = out >= 0 && out != src.index ? allPorts[out] : null;
                        if (dst != directPort) {
                            if (directFrames != 0) {
                                countDirect(directPort, directFrames, directBytes);
                                directFrames = 0;
                                directBytes = 0;
                            }
                            directPort = dst;
                            direct = dst == null ? null : directQueue(src, dst);
                        }
                    }
                } else if (src.peer == null) {
                    src.pendingPortDown++;   // a cross-connect port without a link (yet): counted, not lost
                    continue;
                }
                if (direct != null && offload == OffloadCheck.PLAIN) {
                    while (true) {
                        if (direct.enqueue(b, i, 0L, 0, copies)) {
                            directFrames++;
                            directBytes += length;
                        } else {
                            refused(directPort, direct);
                        }
                        // learning: the frames right after it with the same addresses (one flow's run) go the same
                        // way, without the loop's other steps, while they are plain and of a length it accepts
                        if (!learning || i + 1 >= n || b.addressHead(i + 1) != burstHead
                                || b.addressTail(i + 1) != burstTail) {
                            break;
                        }
                        final int next = b.frameLength(i + 1);
                        if (next < 14 || next > maxFrame || b.headerWord(i + 1) != 0) {
                            break;
                        }
                        i++;
                        length = next;
                        bytes += length;
                    }
                    continue;
                }
                if (!learning) {
                    deliver(src, src.peer, b, i, length, vlan, tagged);
                    continue;
                }
                if (out == MacTable.MISS) {
                    flood(src, b, i, length, vlan, tagged);
                } else if (out != src.index) {
                    deliver(src, allPorts[out], b, i, length, vlan, tagged);
                } else {
                    src.pendingHairpin++;   // its destination lives behind the port it came from: not sent back, counted
                }
            }
        } finally {
            if (directFrames != 0) {
                countDirect(directPort, directFrames, directBytes);
            }
        }
        src.add(src.counters.rxPackets, n - invalid);
        src.add(src.counters.rxBytes, bytes);
        forwardedFrames = n - invalid;
        forwardedBytes = bytes;
    }

    /**
     * The receive queue frames from {@code src} to {@code dst} go to without {@link #deliver}'s decisions, frame
     * after frame: when {@code dst} is a guest port of this worker with one queue pair, running, and neither port
     * has a VLAN (no tag to insert, strip or check), each plain frame is enqueued there and counted once for all.
     * Null otherwise (an uplink, a spread or multiqueue port, another worker's, VLANs, a port not running): the
     * general path. Frames with offloads always take the general path. Measured: {@code bench/RESULTS.md},
     * session 12.
     */
    private VirtQueue directQueue(SwitchPort src, SwitchPort dst) {
        if (src.trunk != null || src.accessVlan > 0 || dst.trunk != null || dst.accessVlan > 0 || dst.spread
                || dst.worker != workerId || dst.uplink != null || dst.pairs != 1 || !dst.seenRunning
                || !dst.device.isRunning()) {
            return null;
        }
        return dst.device.rxQueue();
    }

    /** Adds what {@link #forwardBurst} enqueued into {@code dst}'s one receive queue directly to its pending counts. */
    private static void countDirect(SwitchPort dst, int frames, long bytes) {
        dst.pendingTxPackets += frames;
        dst.pendingTxBytes += bytes;
        dst.pendingQueueTxPackets[0] += frames;
        dst.pendingQueueTxBytes[0] += bytes;
    }

    /** Counts on {@code dst} why its receive queue {@code rx} refused a frame. */
    private static void refused(SwitchPort dst, VirtQueue rx) {
        if (rx.isBroken()) {
            dst.pendingQueueFault++;   // the guest's receive queue is faulted until the frontend sets it up again
        } else if (rx.refusal == VirtQueue.REFUSED_TOO_SMALL) {
            dst.pendingRxTooSmall++;   // the guest posted buffers too small for the frame (no MRG_RXBUF)
        } else {
            dst.pendingRxRingFull++;
        }
    }

    // within one burst (one source port, one clock reading): the source last learned or confirmed, and the
    // destination last resolved (a miss too: the burst's frames to an unknown MAC flood without asking again)
    private long burstSource;
    private long burstDestination;
    private int burstOut;

    /**
     * Learning: records that {@code srcMac} was seen on {@code src} (unless cached as seen lately) and returns the
     * port {@code dstMac} was learned on, or {@link MacTable#MISS}; {@code vlanKey} is the VLAN in bits 48..59.
     */
    private int resolve(SwitchPort src, long dstMac, long srcMac, long vlanKey, long now) {
        long srcKey = srcMac | vlanKey;
        if ((srcMac & 0x0100_0000_0000L) == 0 && srcKey != burstSource) {
            burstSource = srcKey;
            if (!learnCache.sourceFresh(srcKey, src.index, now)) {
                int learned = macTable.learn(srcKey, src.index, now);
                if (learned == MacTable.LEARNED_NEW) {
                    src.counters.macsLearned.increment();
                    burstDestination = -1;   // it may be the destination this burst resolved as unknown
                } else if (learned == MacTable.LEARNED_MOVE) {
                    src.counters.macMoves.increment();
                    learnCache.clear();   // our own move: what we remember of other ports may be stale too
                    burstDestination = -1;
                }
                if (learned != MacTable.LEARNED_LIMITED) {
                    learnCache.sourceLearned(srcKey, src.index, now);
                }   // else: not learned, asked again at the next burst
            }
        }
        long dstKey = dstMac | vlanKey;
        if ((dstMac & 0x0100_0000_0000L) != 0) {
            return MacTable.MISS;
        }
        if (dstKey == burstDestination) {
            return burstOut;
        }
        long entry = learnCache.destination(dstKey, now, agingMillis);
        if (entry == 0) {
            entry = macTable.lookupEntry(dstKey, now);
            if (entry != 0) {
                learnCache.destinationFound(dstKey, entry);
            }
        }
        burstDestination = dstKey;
        burstOut = entry == 0 ? MacTable.MISS : MacTable.portOf(entry);
        return burstOut;
    }

    /** The flow hash of frame {@code frame} of {@code b}, the one being forwarded (computed once, when first needed). */
    private int hashOf(PacketBatch b, int frame) {
        if (!frameHashed) {
            frameHash = FlowHash.of(b, frame, b.frameLength(frame));
            frameHashed = true;
        }
        return frameHash;
    }

    private void flood(SwitchPort src, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        final SwitchPort[] local = ports;
        for (SwitchPort dst : local) {
            if (dst.index != src.index && !dst.spread) {
                deliver(src, dst, b, frame, length, vlan, tagged);
            }
        }
        // a port whose pairs live on several workers gets the frame on the pair its flow picks, from here
        for (SwitchPort dst : spreadPorts) {
            if (dst.index != src.index) {
                deliver(src, dst, b, frame, length, vlan, tagged);
            }
        }
        if (handoff != null) {
            int hash = multiQueue ? hashOf(b, frame) : 0;
            for (int w = 0; w < handoff.workers(); w++) {
                if (handoff.connectedTo(w)) {
                    stage(w, src, HandoffHeader.FLOOD, HandoffHeader.NO_PAIR, hash, b, frame, length, vlan, tagged);
                }
            }
        }
    }

    private void deliver(SwitchPort src, SwitchPort dst, PacketBatch b, int frame, int length, int vlan, boolean tagged) {
        if (dst == null || !dst.carries(vlan)) {
            return;
        }
        int pair = HandoffHeader.NO_PAIR;
        if (dst.spread) {
            // the pair (and with it the worker) is picked here; its worker checks it is still in use
            pair = FlowHash.pick(hashOf(b, frame), dst.device.rxMask());
            if (pair < 0) {
                dst.counters.dropPortDown.increment();   // not running: no pair takes frames (another worker's port)
                return;
            }
            dst = dst.shardOfPair[pair];
        }
        if (dst.worker != workerId) {
            SwitchPort[] members = dst.fanout;
            if (members != null && members[workerId] != null) {   // served here too (PACKET_FANOUT): out of our own socket
                frameHash = multiQueue ? hashOf(b, frame) : 0;
                deliverLocal(members[workerId], b, frame, null, 0, length, vlan, tagged, pair);
                return;
            }
            stage(dst.worker, src, dst.index, pair, multiQueue ? hashOf(b, frame) : 0, b, frame, length, vlan, tagged);
            return;
        }
        frameHash = multiQueue ? hashOf(b, frame) : 0;
        deliverLocal(dst, b, frame, null, 0, length, vlan, tagged, pair);
    }

    /**
     * Hands frame {@code frame} of {@code b} to {@code worker}, with the receive pair the sender picked
     * ({@link HandoffHeader#NO_PAIR}: none) and its flow hash. Pool buffers are MTU-sized and carry no virtio-net
     * header: a frame with an offload is finished in software first and handed over as plain frames.
     */
    private void stage(int worker, SwitchPort src, int dstIndex, int pair, int hash, PacketBatch b, int frame,
                       int length, int vlan, boolean tagged) {
        if (b != null && frameOffload != OffloadCheck.PLAIN) {
            int n = softwareOffload.prepare(b, frame, length, frameOffload, frameHeader, frameCsumOffset, offloadCheck);
            for (int k = 0; k < n; k++) {
                int segment = softwareOffload.segment(k);
                handoff.stageFlat(worker, allPorts, src, dstIndex, pair, hash, null, 0, softwareOffload.output(), segment,
                        vlan, tagged);
            }
            return;
        }
        handoff.stageFlat(worker, allPorts, src, dstIndex, pair, hash, b, frame, null, length, vlan, tagged);
    }

    /**
     * A frame worker {@code from} handed over: to port {@code dst} (on receive pair {@code pair} when the sender
     * picked one), or to every port of this worker when it floods, except a fanout port that worker {@code from}
     * also serves (it sent the flood out of its own socket); {@code hash} is its flow hash.
     */
    void deliverHandedOver(int from, MemorySegment memory, long offset, int length, int dst, int vlan, boolean tagged,
                           int pair, int hash) {
        flatHash = hash;
        frameOffload = OffloadCheck.PLAIN;   // hand-offs are plain frames (see stage)
        if (dst >= 0) {
            SwitchPort target = allPorts[dst];
            if (pair >= 0 && target.spread) {
                target = target.shardOfPair[pair];   // the sender picked one of this worker's pairs
            }
            deliverBuffer(target, memory, offset, length, vlan, tagged, pair);
        } else {
            for (SwitchPort port : ports) {
                // the sender reached spread ports pair by pair, and a fanout port it also serves itself
                if (!port.spread && (port.fanout == null || port.fanout[from] == null)) {
                    deliverBuffer(port, memory, offset, length, vlan, tagged, HandoffHeader.NO_PAIR);
                }
            }
        }
    }

    private void deliverBuffer(SwitchPort dst, MemorySegment memory, long offset, int length, int vlan, boolean tagged,
                               int pair) {
        if (dst.carries(vlan)) {
            deliverLocal(dst, null, 0, memory, offset, length, vlan, tagged, pair);
        }
    }

    /**
     * Copies a frame into a local port's guest: frame {@code frame} of {@code b}, or when {@code b} is null
     * the {@code length} bytes at {@code flatOffset} of {@code flat} (a buffer from another worker). A tag is
     * inserted toward a trunk and stripped toward an access port on the way, without an extra copy.
     */
    private void deliverLocal(SwitchPort dst, PacketBatch b, int frame, MemorySegment flat, long flatOffset,
                              int length, int vlan, boolean tagged, int pair) {
        if (dst.uplink != null) {
            if (b != null && frameOffload != OffloadCheck.PLAIN) {
                deliverFinished(dst, b, frame, length, vlan, tagged, HandoffHeader.NO_PAIR);   // uplinks send plain frames
                return;
            }
            deliverUplink(dst, b, frame, flat, flatOffset, length, vlan, tagged);
            return;
        }
        if (!dst.seenRunning || !dst.device.isRunning()) {
            dst.pendingPortDown++;
            return;
        }
        VirtQueue rx;
        if (dst.pairs == 1) {
            rx = dst.device.rxQueue();
            pair = 0;
        } else {
            if (pair < 0) {   // not picked by the sender: the flow picks among the pairs in use (all this worker's)
                pair = FlowHash.pick(b != null ? frameHash : flatHash, dst.seenRxMask);
            }
            if (pair < 0 || (dst.seenRxMask & (1 << pair)) == 0) {
                dst.pendingPortDown++;   // the pair picked is no longer in use (the guest changed its queues)
                return;
            }
            rx = dst.device.rxQueue(pair);
        }
        boolean insert = dst.trunk != null && !tagged;
        boolean strip = dst.trunk == null && tagged;
        long header = 0;
        int csumOffset = 0;
        if (b != null && frameOffload != OffloadCheck.PLAIN) {
            if (!OffloadCheck.receiverTakes(dst.device.features(), frameHeader)) {
                deliverFinished(dst, b, frame, length, vlan, tagged, pair);
                return;
            }
            // the guest takes it as it is: one frame, one copy, the header carried over (moved with the tag)
            header = OffloadCheck.forReceiver(frameHeader, insert ? TAG_SIZE : strip ? -TAG_SIZE : 0);
            csumOffset = frameCsumOffset;
        }
        boolean delivered;
        int outLength = length;
        if (!insert && !strip) {
            // a burst's frame: its copy may wait for the end of forward(); a flat frame (handed over, or cut in
            // software into a buffer reused for the next segment) is copied at once
            delivered = b != null ? rx.enqueue(b, frame, header, csumOffset, copies) : rx.enqueue(flat, flatOffset, length);
        } else {
            int skip = strip ? TAG_SIZE : 0;
            int n = piecesOf(b, frame, flat, flatOffset, 0, 12, 0);
            if (insert) {
                n += tagPiece(vlan, n);
            }
            n += piecesOf(b, frame, flat, flatOffset, 12 + skip, length - 12 - skip, n);
            outLength = insert ? length + TAG_SIZE : length - TAG_SIZE;
            delivered = rx.enqueue(spliceSegments, spliceOffsets, spliceLengths, 0, n, outLength, header, csumOffset);
        }
        if (delivered) {
            dst.pendingTxPackets++;
            dst.pendingTxBytes += outLength;
            dst.pendingQueueTxPackets[pair]++;
            dst.pendingQueueTxBytes[pair] += outLength;
        } else {
            refused(dst, rx);
        }
    }

    /**
     * The software fallback: the frame's checksum completed, or the frame cut into MSS-sized segments, each
     * delivered as a plain frame (tag inserted or stripped as for any frame).
     */
    private void deliverFinished(SwitchPort dst, PacketBatch b, int frame, int length, int vlan, boolean tagged, int pair) {
        int n = softwareOffload.prepare(b, frame, length, frameOffload, frameHeader, frameCsumOffset, offloadCheck);
        for (int k = 0; k < n; k++) {
            int segment = softwareOffload.segment(k);
            deliverLocal(dst, null, 0, softwareOffload.output(), 0, segment, vlan, tagged, pair);
        }
    }

    /** Like {@link #deliverLocal} toward an uplink, which copies the frame into its own burst (drops it counts itself). */
    private void deliverUplink(SwitchPort dst, PacketBatch b, int frame, MemorySegment flat, long flatOffset,
                               int length, int vlan, boolean tagged) {
        boolean insert = dst.trunk != null && !tagged;
        boolean strip = dst.trunk == null && tagged;
        int skip = strip ? TAG_SIZE : 0;
        int n = piecesOf(b, frame, flat, flatOffset, 0, 12, 0);
        if (insert) {
            n += tagPiece(vlan, n);
        }
        n += piecesOf(b, frame, flat, flatOffset, 12 + skip, length - 12 - skip, n);
        int outLength = insert ? length + TAG_SIZE : strip ? length - TAG_SIZE : length;
        if (dst.uplink.transmit(spliceSegments, spliceOffsets, spliceLengths, n, outLength)) {
            dst.pendingTxPackets++;
            dst.pendingTxBytes += outLength;
        }
    }

    /** Puts the pieces holding bytes {@code [from, from+length)} of the frame at index {@code at} of the splice arrays. */
    private int piecesOf(PacketBatch b, int frame, MemorySegment flat, long flatOffset, int from, int length, int at) {
        if (b != null) {
            return b.slice(frame, from, length, spliceSegments, spliceOffsets, spliceLengths, at);
        }
        spliceSegments[at] = flat;
        spliceOffsets[at] = flatOffset + from;
        spliceLengths[at] = length;
        return 1;
    }

    /** Puts an 802.1Q tag for {@code vlan} at index {@code at} of the splice arrays; returns 1. */
    private int tagPiece(int vlan, int at) {
        tag.set(ValueLayout.JAVA_BYTE, 0, (byte) (ETH_P_8021Q >>> 8));
        tag.set(ValueLayout.JAVA_BYTE, 1, (byte) ETH_P_8021Q);
        tag.set(ValueLayout.JAVA_BYTE, 2, (byte) (vlan >>> 8));
        tag.set(ValueLayout.JAVA_BYTE, 3, (byte) vlan);
        spliceSegments[at] = tag;
        spliceOffsets[at] = 0;
        spliceLengths[at] = TAG_SIZE;
        return 1;
    }
}
