package io.vswitch.sys;

import org.junit.jupiter.api.Test;

import java.lang.foreign.FunctionDescriptor;
import java.lang.invoke.MethodHandle;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A closed {@link EventFd} never reaches the descriptor number it used to have: the kernel gives that number
 * to the next descriptor anyone opens, and a stray signal would land eight bytes in it.
 */
class EventFdCloseTest {
    private static final MethodHandle DUP2 = Libc.plain("dup2", FunctionDescriptor.of(Libc.C_INT, Libc.C_INT, Libc.C_INT));

    @Test
    void signalAndDrainAfterCloseLeaveTheDescriptorThatReusedTheNumberAlone() throws Throwable {
        EventFd old = EventFd.create();
        int number = old.fd();
        old.close();
        assertTrue(old.isClosed());

        try (EventFd reused = eventFdNumbered(number)) {
            assertEquals(number, reused.fd(), "the new eventfd has the old one's number");
            assertFalse(old.signal(), "signal after close reports that nothing was written");
            assertEquals(0, reused.drain(), "and really wrote nothing into the descriptor that took the number");

            assertTrue(reused.signal());
            assertEquals(0, old.drain(), "drain after close reads nothing");
            assertEquals(1, reused.drain(), "and did not consume the new descriptor's count");

            assertEquals(-1, old.fd(), "a closed eventfd has no number any more");
            assertThrows(IllegalStateException.class, old::duplicate, "a closed eventfd cannot be duplicated");
            old.close();   // idempotent: must not close the descriptor that took the number
            assertTrue(Libc.isOpen(number), "closing again left the new descriptor open");
            assertTrue(reused.signal());
            assertEquals(1, reused.drain());
        }
    }

    @Test
    void concurrentClosesCloseTheDescriptorOnce() throws Exception {
        for (int round = 0; round < 200; round++) {
            EventFd event = EventFd.create();
            int number = event.fd();
            Thread other = new Thread(event::close);
            other.start();
            event.close();
            other.join();
            assertTrue(event.isClosed());
            // had both closed the number, the second close could have hit a descriptor opened in between:
            // an eventfd opened now takes the lowest free number and must still be open
            try (EventFd next = EventFd.create()) {
                assertTrue(Libc.isOpen(next.fd()));
                assertFalse(event.signal());
                if (next.fd() == number) {
                    assertEquals(0, next.drain());
                }
            }
        }
    }

    /**
     * A new eventfd that has {@code number}: usually the kernel's lowest-free-number rule gives it by itself;
     * if another thread took a lower number in between, the new eventfd is moved there with dup2 (only while
     * {@code number} is still free).
     */
    private static EventFd eventFdNumbered(int number) throws Throwable {
        EventFd fresh = EventFd.create();
        if (fresh.fd() == number) {
            return fresh;
        }
        try {
            assumeTrue(!Libc.isOpen(number), "descriptor " + number + " was taken by another thread of the test JVM");
            int rc = (int) DUP2.invokeExact(fresh.fd(), number);
            assertEquals(number, rc, "dup2");
            return EventFd.adopt(number);
        } finally {
            fresh.close();
        }
    }
}
