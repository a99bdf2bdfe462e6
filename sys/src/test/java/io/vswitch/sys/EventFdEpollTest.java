package io.vswitch.sys;

import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EventFdEpollTest {

    @Test
    void signalThenDrainReturnsTheCountAndResets() {
        try (EventFd event = EventFd.create()) {
            assertEquals(0, event.drain(), "a fresh eventfd is not signalled");
            assertTrue(event.signal());
            assertTrue(event.signal());
            assertEquals(2, event.drain());
            assertEquals(0, event.drain(), "drain resets the counter");
        }
    }

    @Test
    void eventfdWrittenOnOneThreadWakesEpollWaitOnAnother() throws Exception {
        try (EventFd event = EventFd.create(); Epoll epoll = Epoll.create(4)) {
            epoll.add(event.fd(), Epoll.EPOLLIN, 0xC0FFEEL);
            CountDownLatch waiting = new CountDownLatch(1);
            AtomicInteger ready = new AtomicInteger(-1);
            AtomicLong data = new AtomicLong();
            AtomicLong elapsed = new AtomicLong();
            Thread waiter = new Thread(() -> {
                waiting.countDown();
                long start = System.nanoTime();
                int n = epoll.await(10_000);
                elapsed.set(System.nanoTime() - start);
                ready.set(n);
                if (n > 0) {
                    data.set(epoll.data(0));
                }
            });
            waiter.start();
            waiting.await();
            Thread.sleep(100);
            assertTrue(waiter.isAlive(), "epoll_wait must block while nothing is signalled");
            event.signal();
            waiter.join(5_000);
            assertFalse(waiter.isAlive());
            assertEquals(1, ready.get());
            assertEquals(0xC0FFEEL, data.get());
            assertTrue(elapsed.get() < TimeUnit.SECONDS.toNanos(9), "woken by the signal, not the timeout");
            assertEquals(1, event.drain());
            assertEquals(0, epoll.await(0), "drained: nothing ready any more");
        }
    }

    @Test
    void epollReportsOnlyTheSignalledDescriptor() {
        try (EventFd a = EventFd.create(); EventFd b = EventFd.create(); Epoll epoll = Epoll.create(4)) {
            epoll.add(a.fd(), Epoll.EPOLLIN, 1);
            epoll.add(b.fd(), Epoll.EPOLLIN, 2);
            b.signal();
            assertEquals(1, epoll.await(1000));
            assertEquals(2, epoll.data(0));
            assertTrue((epoll.events(0) & Epoll.EPOLLIN) != 0);
            epoll.remove(b.fd());
            assertEquals(0, epoll.await(0), "removed descriptors are not reported");
        }
    }

    @Test
    void adoptedDescriptorIsOwnedAndClosed() {
        int before = OpenFds.count();
        EventFd original = EventFd.create();
        EventFd adopted = EventFd.adopt(original.fd());
        adopted.signal();
        assertEquals(1, original.drain(), "both objects name the same kernel object");
        adopted.close();
        assertEquals(before, OpenFds.count(), "closing the adopted eventfd released the descriptor");
    }

    @Test
    void aDescriptorThatIsNotAnEventfdIsRefusedAndClosed() throws Exception {
        int before = OpenFds.count();
        try (Epoll epoll = Epoll.create(1)) {
            int copy = io.vswitch.sys.Libc.dup(epoll.fd());   // an epoll fd: a real descriptor, but not an eventfd
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EventFd.adopt(copy));
            assertTrue(e.getMessage().contains("anon_inode:[eventpoll]") && e.getMessage().contains("not an eventfd"), e.getMessage());
            assertFalse(io.vswitch.sys.Libc.isOpen(copy), "the refused descriptor was closed");
        }
        assertEquals(before, OpenFds.count());
    }

    @Test
    void errorsNameTheCallAndErrno() {
        SysCallException e;
        try (Epoll epoll = Epoll.create(1)) {
            e = assertThrows(SysCallException.class, () -> epoll.add(-1, Epoll.EPOLLIN, 0));
        }
        assertEquals(9, e.errno());
        assertEquals("epoll_ctl(ADD) fd -1 failed: EBADF (Bad file descriptor)", e.getMessage());
    }
}
