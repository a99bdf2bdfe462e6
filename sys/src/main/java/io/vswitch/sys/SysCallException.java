package io.vswitch.sys;

/** A failed system call, with errno kept for callers that act on it and a message a person can read. */
public final class SysCallException extends RuntimeException {
    private final String call;
    private final int errno;

    private SysCallException(String call, int errno, String message) {
        super(message);
        this.call = call;
        this.errno = errno;
    }

    /** {@code mmap failed: ENOMEM (Cannot allocate memory)}. */
    public static SysCallException of(String call, int errno) {
        return new SysCallException(call, errno, describe(call, errno, null));
    }

    /** As {@link #of(String, int)}, with what was being done: {@code bind /tmp/x.sock failed: EADDRINUSE (...)}. */
    public static SysCallException of(String call, int errno, String context) {
        return new SysCallException(call, errno, describe(call, errno, context));
    }

    private static String describe(String call, int errno, String context) {
        String what = context == null ? call : call + " " + context;
        return what + " failed: " + Errno.name(errno) + " (" + Libc.strerror(errno) + ")";
    }

    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }
}
