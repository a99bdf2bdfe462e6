package io.vswitch.sys;


import java.util.Arrays;

/**
 * The descriptors that arrived with one message. Whoever receives them owns them: each is either
 * {@link #take taken} (ownership moves to the caller) or closed by {@link #closeAll()}.
 */
public final class ReceivedFds {
    /** vhost-user allows at most 8 descriptors per message (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_FDS = 8;

    private final int[] fds = new int[MAX_FDS];
    private int count;

    public int count() {
        return count;
    }

    void add(int fd) {
        if (count == MAX_FDS) {
            Libc.closeQuietly(fd);
            throw new IllegalStateException("more than " + MAX_FDS + " descriptors in one message");
        }
        fds[count++] = fd;
    }

    /** The i-th descriptor, still owned here. */
    public int peek(int i) {
        checkIndex(i);
        return fds[i];
    }

    /** Hands the i-th descriptor to the caller, who must close it; later {@link #closeAll()} leaves it alone. */
    public int take(int i) {
        checkIndex(i);
        int fd = fds[i];
        if (fd < 0) {
            throw new IllegalStateException("descriptor " + i + " was already taken");
        }
        fds[i] = -1;
        return fd;
    }

    private void checkIndex(int i) {
        if (i < 0 || i >= count) {
            throw new IndexOutOfBoundsException("descriptor " + i + " of " + count);
        }
    }

    /** Closes every descriptor not taken and empties the set. */
    public void closeAll() {
        for (int i = 0; i < count; i++) {
            Libc.closeQuietly(fds[i]);
            fds[i] = -1;
        }
        count = 0;
    }

    @Override
    public String toString() {
        return "ReceivedFds" + Arrays.toString(Arrays.copyOf(fds, count));
    }
}
