package io.vswitch.bench;

import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.FixedRecvByteBufAllocator;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.socket.DatagramPacket;
import io.netty.channel.unix.SegmentedDatagramPacket;
import io.netty.util.ReferenceCountUtil;
import org.agrona.concurrent.OneToOneConcurrentArrayQueue;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code VxlanBenchmark}'s operation with the UDP I/O over Netty's epoll transport instead of FFM
 * {@code recvmmsg}/{@code sendmmsg}, as a vswitch worker would have to use it: the worker thread (the benchmark
 * thread) cannot own a Netty channel (a channel is driven by its event loop's thread), so it hands frames over
 * through lock-free SPSC queues, and one Netty event-loop thread serves both channels:
 *
 * <ul>
 *   <li>transmit: the worker copies each 64-byte frame behind the VXLAN header into a pooled direct
 *       {@code ByteBuf}, wraps it in a {@code DatagramPacket} (plain) or the burst into one
 *       {@code SegmentedDatagramPacket} of 72-byte segments ({@code gso}: UDP_SEGMENT), queues it, and wakes the
 *       event loop once per burst, which writes the queue and flushes ({@code sendmmsg} for several packets);</li>
 *   <li>receive: the channel reads with {@code recvmmsg} ({@code MAX_DATAGRAM_PAYLOAD_SIZE} 2048 in a 64 KiB read buffer: up to 32 per call; {@code gso} also
 *       sets {@code UDP_GRO}, Netty splits the coalesced buffer into one {@code DatagramPacket} per datagram),
 *       checks flags, VNI and sender on the event loop as the FFM path does, and queues the packet to the
 *       worker, which reads the destination MAC (its forwarding decision) and releases it.</li>
 * </ul>
 *
 * Read {@code frames} (frames encapsulated and decapsulated per second) and {@code cpuNs} (process CPU
 * nanoseconds per second of wall time: 1e9 = one core busy): CPU per frame = cpuNs / frames. {@code lost}
 * counts frames that did not come back within 50 ms of their burst (should be 0).
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
// JVM flags: jvm.options, added to every fork by BenchMain (as jvmArgsAppend, which would replace an
// annotation's jvmArgsAppend: the benchmark's own property goes in jvmArgsPrepend)
@Fork(value = 1, jvmArgsPrepend = "-Dio.netty.leakDetection.level=disabled")
@State(Scope.Thread)
public class NettyVxlanBenchmark {
    static final int BURST = 32;
    static final int FRAME = 64;
    static final int VNI = 42;
    static final int HEADER = 8;

    @Param({"plain", "gso"})
    public String mode;

    private EventLoopGroup loop;
    private Channel a;
    private Channel b;
    private InetSocketAddress addressA;
    private InetSocketAddress addressB;
    private final byte[] frame = new byte[FRAME];
    private final OneToOneConcurrentArrayQueue<Object> toSend = new OneToOneConcurrentArrayQueue<>(4096);
    private final OneToOneConcurrentArrayQueue<DatagramPacket> received = new OneToOneConcurrentArrayQueue<>(4096);
    private final AtomicLong dropped = new AtomicLong();
    private Runnable writeQueued;
    private long lastCpu;
    private long macSum;
    private final com.sun.management.OperatingSystemMXBean os =
            (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Tunnelled {
        public long frames;
        public long lost;
        public long cpuNs;

        @Setup(Level.Iteration)
        public void reset() {
            frames = 0;
            lost = 0;
            cpuNs = 0;
        }
    }

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        Epoll.ensureAvailability();
        boolean gso = mode.equals("gso");
        loop = new MultiThreadIoEventLoopGroup(1, EpollIoHandler.newFactory());
        addressA = new InetSocketAddress("127.0.0.1", 47891);
        addressB = new InetSocketAddress("127.0.0.1", 47892);
        Bootstrap common = new Bootstrap().group(loop).channel(EpollDatagramChannel.class)
                .option(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                .option(ChannelOption.SO_RCVBUF, 4 << 20)
                .option(ChannelOption.SO_SNDBUF, 4 << 20)
                // a read buffer of 32 slots of 2 KiB: Netty's recvmmsg path (scatteringRead), up to 32 datagrams per call
                .option(ChannelOption.RCVBUF_ALLOCATOR, new FixedRecvByteBufAllocator(gso ? 65536 : BURST * 2048));
        if (gso) {
            common.option(EpollChannelOption.UDP_GRO, true);
        } else {
            common.option(EpollChannelOption.MAX_DATAGRAM_PAYLOAD_SIZE, 2048);
        }
        a = common.clone().handler(new ChannelInboundHandlerAdapter()).bind(addressA).sync().channel();
        b = common.clone().handler(new Decapsulate(addressA, received, dropped)).bind(addressB).sync().channel();
        for (int i = 0; i < 6; i++) {
            frame[i] = (byte) (i == 0 ? 0x02 : i);
            frame[6 + i] = (byte) (i == 0 ? 0x02 : 0x10 + i);
        }
        frame[12] = (byte) 0x88;
        frame[13] = (byte) 0xb5;
        Channel ch = a;
        writeQueued = () -> {
            Object p;
            while ((p = toSend.poll()) != null) {
                ch.write(p, ch.voidPromise());
            }
            ch.flush();
        };
        lastCpu = os.getProcessCpuTime();
    }

    /** On the event loop: the checks the FFM path makes, then the hand-off to the worker. */
    static final class Decapsulate extends ChannelInboundHandlerAdapter {
        private final InetSocketAddress remote;
        private final OneToOneConcurrentArrayQueue<DatagramPacket> out;
        private final AtomicLong dropped;

        Decapsulate(InetSocketAddress remote, OneToOneConcurrentArrayQueue<DatagramPacket> out, AtomicLong dropped) {
            this.remote = remote;
            this.out = out;
            this.dropped = dropped;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            DatagramPacket p = (DatagramPacket) msg;
            ByteBuf c = p.content();
            int at = c.readerIndex();
            boolean ok = c.readableBytes() >= HEADER + 14 && (c.getByte(at) & 0x08) != 0
                    && c.getInt(at + 4) >>> 8 == VNI && p.sender().getPort() == remote.getPort()
                    && p.sender().getAddress().equals(remote.getAddress());
            if (!ok || !out.offer(p)) {
                dropped.incrementAndGet();
                ReferenceCountUtil.release(p);
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        a.close().sync();
        b.close().sync();
        loop.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
        DatagramPacket p;
        while ((p = received.poll()) != null) {
            p.release();
        }
    }

    @Benchmark
    public long encapsulateAndDecapsulate(Tunnelled t) {
        if (mode.equals("gso")) {
            ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(BURST * (HEADER + FRAME));
            for (int i = 0; i < BURST; i++) {
                buf.writeInt(0x08 << 24).writeInt(VNI << 8).writeBytes(frame);
            }
            toSend.offer(new SegmentedDatagramPacket(buf, HEADER + FRAME, addressB));
        } else {
            for (int i = 0; i < BURST; i++) {
                ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(HEADER + FRAME);
                buf.writeInt(0x08 << 24).writeInt(VNI << 8).writeBytes(frame);
                toSend.offer(new DatagramPacket(buf, addressB));
            }
        }
        a.eventLoop().execute(writeQueued);
        int got = 0;
        long deadline = 0;
        while (got < BURST) {
            DatagramPacket p = received.poll();
            if (p == null) {
                long now = System.nanoTime();
                if (deadline == 0) {
                    deadline = now + 50_000_000L;
                } else if (now > deadline) {
                    break;
                }
                Thread.onSpinWait();
                continue;
            }
            ByteBuf c = p.content();
            macSum += c.getLong(c.readerIndex() + HEADER);   // the forwarding decision reads the destination MAC
            p.release();
            got++;
        }
        t.frames += got;
        t.lost += BURST - got;
        long cpu = os.getProcessCpuTime();
        t.cpuNs += cpu - lastCpu;
        lastCpu = cpu;
        return macSum;
    }
}
