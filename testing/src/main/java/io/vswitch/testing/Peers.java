package io.vswitch.testing;

import org.junit.jupiter.api.Assumptions;

/**
 * Decides what a test does when a real peer (qemu, dpdk-testpmd, hugepages) is missing: in CI it fails,
 * because a skipped proof is no proof; on a developer machine it skips with a loud message.
 */
public final class Peers {
    private Peers() {
    }

    public static boolean inCi() {
        return "true".equalsIgnoreCase(System.getenv("CI"));
    }

    /** Fails (CI) or skips (locally) unless {@code available}. */
    public static void require(boolean available, String what) {
        if (available) {
            return;
        }
        String message = "MISSING PEER: " + what;
        if (inCi()) {
            throw new AssertionError(message + " (CI=true, so this is a failure: .ci/run must install it)");
        }
        System.err.println("\n*** SKIPPING: " + message + " ***\n");
        Assumptions.abort(message);
    }
}
