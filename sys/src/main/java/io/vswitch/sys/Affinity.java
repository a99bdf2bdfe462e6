package io.vswitch.sys;

import java.io.File;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.BitSet;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;

/**
 * Which CPUs threads may run on (sched_setaffinity / sched_getaffinity): a busy-polling worker pinned to one
 * core keeps its caches; the process's other threads confined to housekeeping cores never take a worker's or
 * a guest's core. Thread ids are Linux tids (0: the calling thread); the kernel's mask is per thread, and a new
 * thread starts with its creator's.
 */
public final class Affinity {
    private static final int MASK_BYTES = 128;   // 1024 CPUs, glibc's cpu_set_t
    private static final int ESRCH = 3;
    private static final MethodHandle SET = Libc.call("sched_setaffinity", FunctionDescriptor.of(C_INT, C_INT, C_LONG, C_POINTER));
    private static final MethodHandle GET = Libc.call("sched_getaffinity", FunctionDescriptor.of(C_INT, C_INT, C_LONG, C_POINTER));
    private static final MethodHandle GET_CPU = Libc.plain("sched_getcpu", FunctionDescriptor.of(C_INT));

    private Affinity() {
    }

    public static void pinCurrentThread(int cpu) {
        if (cpu < 0 || cpu >= MASK_BYTES * 8) {
            throw new IllegalArgumentException("cpu " + cpu + " out of range");
        }
        BitSet one = new BitSet();
        one.set(cpu);
        if (!setAllowed(0, one)) {
            throw new IllegalStateException("the calling thread is gone");   // cannot happen for tid 0
        }
    }

    /**
     * Lets thread {@code tid} (0: the calling thread) run on {@code cpus} only. False when no such thread
     * exists (any more); throws {@link SysCallException} otherwise (EINVAL: none of the cpus is usable).
     */
    public static boolean setAllowed(int tid, BitSet cpus) {
        if (cpus.isEmpty() || cpus.length() > MASK_BYTES * 8) {
            throw new IllegalArgumentException("cpus " + cpus + " empty or out of range");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(MASK_BYTES, 8);
            byte[] bytes = cpus.toByteArray();   // little-endian bit order, as cpu_set_t
            MemorySegment.copy(bytes, 0, mask, ValueLayout.JAVA_BYTE, 0, bytes.length);
            MemorySegment state = Libc.callState();
            if ((int) SET.invokeExact(state, tid, (long) MASK_BYTES, mask) < 0) {
                int errno = Libc.errno(state);
                if (errno == ESRCH) {
                    return false;
                }
                throw SysCallException.of("sched_setaffinity", errno, "thread " + tid + " to cpus " + cpus);
            }
            return true;
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /** The cpus thread {@code tid} (0: the calling thread) may run on. */
    public static BitSet allowed(int tid) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(MASK_BYTES, 8);
            MemorySegment state = Libc.callState();
            if ((int) GET.invokeExact(state, tid, (long) MASK_BYTES, mask) < 0) {
                throw SysCallException.of("sched_getaffinity", Libc.errno(state), "thread " + tid);
            }
            return BitSet.valueOf(mask.toArray(ValueLayout.JAVA_BYTE));
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    /**
     * Confines every thread this process has now to {@code cpus} (threads it starts later inherit their
     * creator's mask); threads that end meanwhile are skipped. Returns how many threads were confined.
     */
    public static int confineProcess(BitSet cpus) {
        String[] tids = new File("/proc/self/task").list();
        if (tids == null) {
            throw new IllegalStateException("/proc/self/task is not readable");
        }
        int confined = 0;
        for (String tid : tids) {
            if (setAllowed(Integer.parseInt(tid), cpus)) {
                confined++;
            }
        }
        return confined;
    }

    /** The CPU the calling thread runs on right now. */
    public static int currentCpu() {
        try {
            return (int) GET_CPU.invokeExact();
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }
}
