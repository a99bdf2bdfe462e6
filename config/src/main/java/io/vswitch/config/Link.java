package io.vswitch.config;

import java.util.Objects;

/** Two ports wired back to back in cross-connect mode. */
public record Link(String first, String second) {

    public Link {
        Objects.requireNonNull(first, "first");
        Objects.requireNonNull(second, "second");
    }

    public boolean contains(String port) {
        return first.equals(port) || second.equals(port);
    }

    /** The partner of {@code port}, which must be one of the two ends. */
    public String other(String port) {
        if (first.equals(port)) {
            return second;
        }
        if (second.equals(port)) {
            return first;
        }
        throw new IllegalArgumentException(port + " is not part of " + this);
    }
}
