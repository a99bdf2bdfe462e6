package io.vswitch.vhost.fuzz;

import io.vswitch.sys.EventFd;
import io.vswitch.sys.Libc;
import io.vswitch.sys.OpenFds;
import io.vswitch.sys.SharedMemory;
import io.vswitch.protocol.VhostUserMessage;
import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.testing.LogCapture;
import io.vswitch.vhost.fixtures.PortFixture;
import io.vswitch.testing.TestFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.logging.Level;

import static io.vswitch.protocol.VhostUserMessage.*;
import static io.vswitch.testing.TestFrontend.GUEST_PHYS_BASE;
import static io.vswitch.testing.TestFrontend.USER_BASE;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A seeded, structure-aware fuzzer for the vhost-user message parser and its handlers: a real port (server
 * role, its own control thread and session) fed connections of generated messages. A connection starts
 * either from nothing or after a valid set-up (so that messages also hit a running device), then carries
 * 1..48 messages: request codes (handled, known but unhandled, unknown), flags, declared sizes and payloads
 * built field by field from values that sit at the edges (queue indices 0, 1, 2, 255, the no-fd bit; ring
 * sizes 0, 1, 3, 32768, 65536; addresses inside, at the end of, just past, and far from guest memory; region
 * tables with 0, 1, 8, 9 entries, overlapping or wrapping regions, offsets past the file), and 0..3 attached
 * descriptors of every kind (the guest's memfd, a one-page memfd, an eventfd, a pipe). Each input is one
 * message; the count in the summary line is of messages.
 *
 * <p>What must hold: the port never lets an exception escape a handler (no "session failed"); a connection
 * whose framing is intact still answers a GET_FEATURES at its end (nothing hung, nothing desynchronised);
 * and after every disconnect the port is back at its baseline: device stopped, no guest memory mapped,
 * exactly the descriptors it had before, no mapping of any memory the connection sent.
 *
 * <p>Default run: {@value #SMOKE_INPUTS} messages (fixed seed). {@code -Dvswitch.fuzz.inputs=N} and
 * {@code -Dvswitch.fuzz.seed=S} run more; a failure names seed and connection, which replay it with
 * {@code -Dvswitch.fuzz.from=C} (a connection index) and a small {@code -Dvswitch.fuzz.inputs}.
 */
class MessageFuzzTest {
    static final int SMOKE_INPUTS = 3_000;
    private static final MethodHandle PIPE = Libc.call("pipe", FunctionDescriptor.of(Libc.C_INT, Libc.C_POINTER));

    private static final VhostUserRequest[] HANDLED = {
            VhostUserRequest.GET_FEATURES, VhostUserRequest.SET_FEATURES, VhostUserRequest.GET_PROTOCOL_FEATURES,
            VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserRequest.SET_OWNER, VhostUserRequest.RESET_OWNER,
            VhostUserRequest.RESET_DEVICE, VhostUserRequest.GET_QUEUE_NUM, VhostUserRequest.GET_MAX_MEM_SLOTS,
            VhostUserRequest.SET_MEM_TABLE, VhostUserRequest.ADD_MEM_REG, VhostUserRequest.REM_MEM_REG,
            VhostUserRequest.SET_VRING_NUM, VhostUserRequest.SET_VRING_BASE, VhostUserRequest.SET_VRING_ADDR,
            VhostUserRequest.GET_VRING_BASE, VhostUserRequest.SET_VRING_KICK, VhostUserRequest.SET_VRING_CALL,
            VhostUserRequest.SET_VRING_ERR, VhostUserRequest.SET_VRING_ENABLE, VhostUserRequest.SET_STATUS,
            VhostUserRequest.GET_STATUS, VhostUserRequest.SEND_RARP, VhostUserRequest.SET_LOG_BASE,
            VhostUserRequest.SET_LOG_FD,
    };

    @TempDir
    Path dir;

    /** What the current connection sent, for the failure message. */
    private final List<String> sent = new ArrayList<>();

    @Test
    void theSessionSurvivesGeneratedMessagesAndReleasesEverything() throws Exception {
        long seed = Long.getLong("vswitch.fuzz.seed", 0x5eed_0002L);
        long inputs = Long.getLong("vswitch.fuzz.inputs", SMOKE_INPUTS);
        long from = Long.getLong("vswitch.fuzz.from", 0);
        try (LogCapture log = new LogCapture(); PortFixture fx = new PortFixture(dir)) {
            Stats stats = new Stats();
            long connection = from;
            while (stats.messages < inputs) {
                SplittableRandom r = new SplittableRandom(seed ^ (connection * 0x9E3779B97F4A7C15L));
                try {
                    oneConnection(r, fx, stats, log);
                    checkReleased(fx, log);
                } catch (Throwable t) {
                    throw new AssertionError("message fuzz seed " + seed + " connection " + connection + " (after "
                            + stats.messages + " messages): " + t + "\nsent:\n  " + String.join("\n  ", sent)
                            + "\nlog:\n  " + String.join("\n  ", log.lines().stream().map(LogCapture.Line::message).toList()), t);
                }
                connection++;
                stats.connections++;
            }
            System.out.printf("message fuzz: seed %#x, connections %d..%d: %s%n", seed, from, connection, stats);
            if (inputs >= SMOKE_INPUTS) {
                assertTrue(stats.refusedSeen > 0 && stats.runningSeen > 0 && stats.synced > 0, stats.toString());
            }
        }
    }

    static final class Stats {
        long messages;
        long connections;
        long closedByPort;
        long synced;
        long runningSeen;
        long refusedSeen;

        @Override
        public String toString() {
            return messages + " messages in " + connections + " connections; closed by the port " + closedByPort
                    + ", synchronised at the end " + synced + ", device running during " + runningSeen
                    + ", refusals " + refusedSeen;
        }
    }

    private void oneConnection(SplittableRandom r, PortFixture fx, Stats stats, LogCapture log) throws Exception {
        TestFrontend.Options options = new TestFrontend.Options();
        options.replyAck = r.nextBoolean();
        sent.clear();
        TestFrontend fe = fx.connect(options);
        List<Integer> pool = new ArrayList<>();
        try {
            if (r.nextBoolean()) {
                fe.setUp();
                if (fx.device().isRunning()) {
                    stats.runningSeen++;
                }
            }
            pool.add(TestFrontend.dup(fe.memfd()));
            pool.add(SharedMemory.memfd("vtest-fuzz-small", 4096, false));
            pool.add(EventFd.create().fd());   // owned by the pool from here on (closed below by number)
            int[] pipe = pipe();
            pool.add(pipe[0]);
            pool.add(pipe[1]);
            int n = 1 + r.nextInt(48);
            boolean framingIntact = true;
            long refusedBefore = fx.port().counters().refusedMessages;
            for (int i = 0; i < n && framingIntact; i++) {
                Message m = generate(r, fe);
                int[] fds = new int[r.nextInt(4) == 0 ? r.nextInt(4) : m.fds];
                for (int k = 0; k < fds.length; k++) {
                    fds[k] = pool.get(r.nextInt(pool.size()));
                }
                framingIntact = (m.flags & VERSION_MASK) == VERSION && m.size == m.payload.length;
                sent.add(m + " fds " + java.util.Arrays.toString(fds) + " (pool " + pool + ")");
                stats.messages++;
                try {
                    fe.sendRaw(m.code, m.flags, m.size, m.payload, fds);
                    drainReplies(fe);
                } catch (IOException e) {
                    if (framingIntact) {
                        throw new AssertionError("the port closed a connection whose framing was intact, after "
                                + m + ": " + log.lines().stream().skip(Math.max(0, log.lines().size() - 3)).toList(), e);
                    }
                    break;
                }
            }
            if (framingIntact) {
                // nothing hung and the stream is in step: a GET_FEATURES is answered after everything sent
                fe.sendRaw(VhostUserRequest.GET_FEATURES.code(), VERSION, 0, new byte[0]);
                while (true) {
                    TestFrontend.Reply reply = fe.readReply();
                    if (reply.request() == VhostUserRequest.GET_FEATURES.code() && reply.size() == 8) {
                        break;
                    }
                }
                stats.synced++;
            } else if (fe.closedByPeer(20)) {
                stats.closedByPort++;
            }
            if (fx.port().counters().refusedMessages > refusedBefore) {
                stats.refusedSeen++;
            }
        } finally {
            for (int fd : pool) {
                Libc.closeQuietly(fd);
            }
            fe.close();
        }
    }

    private static void drainReplies(TestFrontend fe) throws IOException {
        while (TestFrontend.waitReadable(fe.socket().fd(), 0)) {
            try {
                fe.readReply();
            } catch (java.io.EOFException e) {
                throw new IOException("closed", e);
            }
        }
    }

    private static void checkReleased(PortFixture fx, LogCapture log) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        // the port's thread clears "connected" before it resets the device, so wait for all of it, mappings included
        while (!(released(fx) && OpenFds.count() == fx.baselineFds() && guestMappings() == 0)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the port did not return to its baseline after a disconnect: connected "
                        + fx.port().isConnected() + ", running " + fx.device().isRunning() + ", regions "
                        + fx.device().memory().regionCount() + ", fds " + OpenFds.count() + " (baseline " + fx.baselineFds()
                        + "), mappings " + guestMappingLines());
            }
            Thread.onSpinWait();
        }
        int maps = guestMappings();
        if (maps != 0) {
            throw new AssertionError(maps + " mappings of fuzzer memory left after the disconnect: " + guestMappingLines());
        }
        List<LogCapture.Line> bad = log.matching(l -> l.level().intValue() >= Level.SEVERE.intValue()
                || l.message().contains("session failed"));
        if (!bad.isEmpty()) {
            throw new AssertionError("a handler let an exception escape: " + bad.getFirst());
        }
        log.clear();
    }

    private static boolean released(PortFixture fx) {
        return !fx.port().isConnected() && !fx.device().isRunning() && fx.device().memory().regionCount() == 0;
    }

    private static int guestMappings() {
        try {
            return (int) Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(l -> l.contains("/memfd:vtest-guest-") || l.contains("/memfd:vtest-fuzz-small")).count();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static List<String> guestMappingLines() {
        try {
            return Files.readAllLines(Path.of("/proc/self/maps")).stream()
                    .filter(l -> l.contains("/memfd:vtest-guest-") || l.contains("/memfd:vtest-fuzz-small")).toList();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static int[] pipe() {
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(8);
            int rc = (int) PIPE.invokeExact(Libc.callState(), fds);
            if (rc != 0) {
                throw new IllegalStateException("pipe failed");
            }
            return new int[] {fds.get(java.lang.foreign.ValueLayout.JAVA_INT, 0), fds.get(java.lang.foreign.ValueLayout.JAVA_INT, 4)};
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // ------------------------------------------------------------------ the generator

    record Message(int code, int flags, int size, byte[] payload, int fds) {
        @Override
        public String toString() {
            return "request " + code + " flags 0x" + Integer.toHexString(flags) + " size " + size + " payload "
                    + java.util.HexFormat.of().formatHex(payload);
        }
    }

    static Message generate(SplittableRandom r, TestFrontend fe) {
        int pick = r.nextInt(20);
        VhostUserRequest request = pick < 17 ? HANDLED[r.nextInt(HANDLED.length)]
                : pick < 19 ? VhostUserRequest.values()[r.nextInt(VhostUserRequest.values().length)] : null;
        int code = request != null ? request.code() : (r.nextBoolean() ? r.nextInt(64) : r.nextInt());
        int flags = switch (r.nextInt(40)) {
            case 0 -> r.nextInt();
            case 1 -> VERSION | FLAG_REPLY;
            default -> VERSION | (r.nextBoolean() ? FLAG_NEED_REPLY : 0);
        };
        byte[] payload = request == null ? bytes(r, r.nextInt(64)) : payload(r, request, fe);
        int size = switch (r.nextInt(60)) {
            case 0 -> r.nextInt();
            case 1 -> payload.length + r.nextInt(-4, 5);
            case 2 -> MAX_PAYLOAD + 1;
            default -> payload.length;
        };
        int fds = request == null ? 0 : switch (request) {
            case SET_MEM_TABLE -> payload.length < 4 ? r.nextInt(3) : Math.max(0, Math.min(8,
                    ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN).getInt(0) + (r.nextInt(8) == 0 ? r.nextInt(-1, 2) : 0)));
            case ADD_MEM_REG, SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, SET_LOG_BASE, SET_LOG_FD -> r.nextInt(10) == 0 ? 0 : 1;
            default -> r.nextInt(20) == 0 ? 1 : 0;
        };
        if (size < 0 || size > MAX_PAYLOAD || payload.length > MAX_PAYLOAD) {
            payload = payload.length > MAX_PAYLOAD ? java.util.Arrays.copyOf(payload, MAX_PAYLOAD) : payload;
        }
        return new Message(code, flags, size, payload, fds);
    }

    private static byte[] payload(SplittableRandom r, VhostUserRequest request, TestFrontend fe) {
        if (r.nextInt(30) == 0) {
            return bytes(r, r.nextInt(0, 80));   // any length, any content
        }
        ByteBuffer b;
        switch (request) {
            case SET_FEATURES, SET_PROTOCOL_FEATURES, SET_STATUS -> {
                b = le(8).putLong(switch (r.nextInt(4)) {
                    case 0 -> r.nextLong();
                    case 1 -> fe.options().features() | (1L << r.nextInt(64));
                    default -> fe.options().features();
                });
            }
            case SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR, SEND_RARP -> b = le(8).putLong(queueWord(r));
            case SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE -> b = le(8).putInt(queue(r)).putInt(switch (r.nextInt(8)) {
                case 0 -> 0;
                case 1 -> 3;
                case 2 -> 32768;
                case 3 -> 65536;
                case 4 -> r.nextInt();
                default -> 1 << r.nextInt(9);
            });
            case SET_VRING_ADDR -> {
                int q = queue(r);
                int qq = q & 1;
                b = le(VRING_ADDR_SIZE).putInt(q).putInt(r.nextInt(4) == 0 ? VRING_F_LOG : r.nextInt(20) == 0 ? r.nextInt() : 0)
                        .putLong(userAddr(r, fe, fe.descUserAddr(qq))).putLong(userAddr(r, fe, fe.usedUserAddr(qq)))
                        .putLong(userAddr(r, fe, fe.availUserAddr(qq))).putLong(gpa(r, fe, GUEST_PHYS_BASE));
            }
            case SET_MEM_TABLE -> {
                int n = switch (r.nextInt(10)) {
                    case 0 -> 0;
                    case 1 -> 9;
                    case 2 -> r.nextInt();
                    case 3 -> 8;
                    default -> 1 + r.nextInt(2);
                };
                int listed = Math.max(0, Math.min(n, 9)) + (r.nextInt(10) == 0 ? r.nextInt(-1, 2) : 0);
                b = le(MEMORY_REGIONS + Math.max(0, listed) * REGION_SIZE).putInt(n).putInt(0);
                for (int i = 0; i < listed; i++) {
                    region(r, fe, b, i);
                }
            }
            case ADD_MEM_REG, REM_MEM_REG -> {
                b = le(MEM_REG_SIZE).putLong(0);
                region(r, fe, b, r.nextInt(3));
            }
            case SET_LOG_BASE -> b = le(LOG_SIZE).putLong(r.nextInt(4) == 0 ? r.nextLong() : 4096L << r.nextInt(4))
                    .putLong(r.nextInt(4) == 0 ? r.nextLong() : 0);
            default -> b = le(0);
        }
        return b.array();
    }

    private static void region(SplittableRandom r, TestFrontend fe, ByteBuffer b, int i) {
        long size = fe.options().memorySize;
        long half = size / 2;
        long gpa = switch (r.nextInt(8)) {
            case 0 -> r.nextLong();
            case 1 -> -4096L;                                        // wraps around
            case 2 -> GUEST_PHYS_BASE + (long) i * half + r.nextInt(2) * 4096;   // overlaps a neighbour
            default -> GUEST_PHYS_BASE + (long) i * half;
        };
        long length = switch (r.nextInt(8)) {
            case 0 -> 0;
            case 1 -> r.nextLong();
            case 2 -> size + fe.options().mmapOffset + 4096;         // longer than the file
            default -> half;
        };
        long uva = switch (r.nextInt(8)) {
            case 0 -> r.nextLong();
            case 1 -> -4096L;
            default -> USER_BASE + (long) i * half;
        };
        long offset = switch (r.nextInt(8)) {
            case 0 -> r.nextLong();
            case 1 -> size * 4;
            case 2 -> 1;                                             // not page-aligned
            default -> fe.options().mmapOffset + (long) i * half;
        };
        b.putLong(gpa).putLong(length).putLong(uva).putLong(offset);
    }

    private static int queue(SplittableRandom r) {
        return switch (r.nextInt(10)) {
            case 0 -> 2;
            case 1 -> 255;
            case 2 -> r.nextInt();
            default -> r.nextInt(2);
        };
    }

    private static long queueWord(SplittableRandom r) {
        long q = queue(r) & 0xFFFFFFFFL;
        return switch (r.nextInt(8)) {
            case 0 -> q | VRING_NOFD_MASK;
            case 1 -> r.nextLong();
            default -> q;
        };
    }

    private static long userAddr(SplittableRandom r, TestFrontend fe, long valid) {
        return switch (r.nextInt(10)) {
            case 0 -> r.nextLong();
            case 1 -> valid + 1;                                     // misaligned
            case 2 -> USER_BASE + fe.options().memorySize - 8;       // runs off the end
            case 3 -> USER_BASE + fe.options().memorySize;           // just past
            default -> valid;
        };
    }

    private static long gpa(SplittableRandom r, TestFrontend fe, long valid) {
        return r.nextInt(4) == 0 ? r.nextLong() : valid + r.nextLong(fe.options().memorySize);
    }

    private static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] bytes(SplittableRandom r, int n) {
        byte[] b = new byte[n];
        r.nextBytes(b);
        return b;
    }
}
