package io.vswitch.vhost.memory;

/** A frontend described guest memory we refuse to map or use. */
public final class GuestMemoryException extends RuntimeException {
    public GuestMemoryException(String message) {
        super(message);
    }
}
