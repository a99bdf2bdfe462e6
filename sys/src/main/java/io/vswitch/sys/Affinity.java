package io.vswitch.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static io.vswitch.sys.Libc.C_INT;
import static io.vswitch.sys.Libc.C_LONG;
import static io.vswitch.sys.Libc.C_POINTER;

/** Pins the calling thread to one CPU (sched_setaffinity), so a busy-polling worker keeps its core's caches. */
public final class Affinity {
    private static final int MASK_BYTES = 128;   // 1024 CPUs, glibc's cpu_set_t
    private static final MethodHandle SET = Libc.call("sched_setaffinity", FunctionDescriptor.of(C_INT, C_INT, C_LONG, C_POINTER));
    private static final MethodHandle GET_CPU = Libc.plain("sched_getcpu", FunctionDescriptor.of(C_INT));

    private Affinity() {
    }

    public static void pinCurrentThread(int cpu) {
        if (cpu < 0 || cpu >= MASK_BYTES * 8) {
            throw new IllegalArgumentException("cpu " + cpu + " out of range");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mask = arena.allocate(MASK_BYTES, 8);
            mask.set(ValueLayout.JAVA_BYTE, cpu / 8, (byte) (1 << (cpu % 8)));
            MemorySegment state = Libc.callState();
            if ((int) SET.invokeExact(state, 0, (long) MASK_BYTES, mask) < 0) {
                throw SysCallException.of("sched_setaffinity", Libc.errno(state), "to cpu " + cpu);
            }
        } catch (SysCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
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
