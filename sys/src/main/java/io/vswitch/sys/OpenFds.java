package io.vswitch.sys;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * This process's open descriptors, to prove that code under test leaks none.
 *
 * <p>{@link #count()} is enough where nothing else in the JVM opens or closes descriptors meanwhile. Where
 * something may (a peer process being reaped, a JDK stream closed late), compare {@link #snapshot()}s with
 * {@link #openedSince}: a descriptor that closed in between is not a leak, and a leaked one shows up with
 * what it points at.
 */
public final class OpenFds {
    private static final Path FDS = Path.of("/proc/self/fd");

    private OpenFds() {
    }

    public static int count() {
        String[] entries = new File(FDS.toString()).list();
        if (entries == null) {
            throw new IllegalStateException("/proc/self/fd is not readable");
        }
        return entries.length;
    }

    /** Each open descriptor and what it points at ({@code socket:[123]}, {@code anon_inode:[eventfd]}, a path). */
    public static Map<Integer, String> snapshot() {
        String[] entries = new File(FDS.toString()).list();
        if (entries == null) {
            throw new IllegalStateException("/proc/self/fd is not readable");
        }
        Map<Integer, String> fds = new TreeMap<>();
        for (String entry : entries) {
            try {
                fds.put(Integer.parseInt(entry), Files.readSymbolicLink(FDS.resolve(entry)).toString());
            } catch (NoSuchFileException closedMeanwhile) {
                // closed between the listing and the readlink: not open
            } catch (IOException e) {
                fds.put(Integer.parseInt(entry), "? (" + e.getMessage() + ")");
            }
        }
        return fds;
    }

    /** The descriptors open now that were not open, pointing at the same thing, in {@code before}. */
    public static Map<Integer, String> openedSince(Map<Integer, String> before) {
        Map<Integer, String> opened = snapshot();
        opened.entrySet().removeIf(e -> e.getValue().equals(before.get(e.getKey())));
        return opened;
    }
}
