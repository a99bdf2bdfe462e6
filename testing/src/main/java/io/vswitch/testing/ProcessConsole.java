package io.vswitch.testing;

import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The console of a child process that a test drives like a person at a terminal (a QEMU serial console,
 * testpmd's prompt): everything it prints goes, unchanged, to a log file and, cleaned of terminal escape
 * sequences and carriage returns, into memory where tests wait for lines or text.
 *
 * <p>Also the one place that makes sure such children die with the test JVM: every console registers its
 * process with a shutdown hook and an outside watchdog, so an aborted, timed-out or killed test run leaves no
 * qemu or testpmd behind.
 */
final class ProcessConsole implements AutoCloseable {

    /** CSI sequences (colours, clear screen, cursor queries), then two-character escapes such as ESC c (reset). */
    private static final Pattern ESCAPES = Pattern.compile("\u001B\\[[0-9;?]*[ -/]*[@-~]|\u001B[@-Z\\\\-_a-z]");

    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> LIVE.forEach(Process::destroyForcibly),
                "vswitch-test-children-reaper"));
    }

    /** A line that matched, with its index among all lines this console has seen. */
    record Match(int index, String line, Matcher matcher) {
    }

    private final String name;
    private final Process process;
    private final Path logFile;
    private final OutputStream stdin;
    private final Thread reader;

    // Guarded by this. `text` is everything printed, cleaned; `lines` its complete lines; `partial` the rest.
    private final StringBuilder text = new StringBuilder();
    private final List<String> lines = new ArrayList<>();
    private final StringBuilder partial = new StringBuilder();
    private int cursor;
    private boolean eof;

    ProcessConsole(String name, Process process, Path logFile) throws IOException {
        this.name = name;
        this.process = process;
        this.logFile = logFile;
        this.stdin = process.getOutputStream();
        LIVE.add(process);
        process.onExit().thenRun(() -> LIVE.remove(process));
        watchdog(process.pid());
        Writer log = Files.newBufferedWriter(logFile, StandardCharsets.UTF_8);
        this.reader = Thread.ofPlatform().daemon().name(name + "-console").start(() -> pump(log));
    }

    /**
     * The shutdown hook does not run when the JVM is SIGKILLed (surefire's fork timeout, an OOM kill), and
     * QEMU does not exit when its stdin closes, so a small shell loop outside the JVM kills the child once the
     * JVM is gone. It ends by itself, within a second, when the child does.
     */
    private static void watchdog(long child) throws IOException {
        long jvm = ProcessHandle.current().pid();
        new ProcessBuilder("sh", "-c", "while kill -0 " + jvm + " && kill -0 " + child + "; do sleep 1; done"
                + " 2>/dev/null; kill -9 " + child + " 2>/dev/null")
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
    }

    private void pump(Writer log) {
        char[] buf = new char[8192];
        try (Reader in = new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8); log) {
            int n;
            while ((n = in.read(buf)) > 0) {
                log.write(buf, 0, n);
                log.flush(); // the log is what a human reads after a hang or crash: keep it current
                append(buf, n);
            }
        } catch (IOException e) {
            // the process died or was killed; what was read is kept
        } finally {
            synchronized (this) {
                if (!partial.isEmpty()) {
                    lines.add(clean(partial.toString()));
                    partial.setLength(0);
                }
                eof = true;
                notifyAll();
            }
        }
    }

    private synchronized void append(char[] buf, int n) {
        for (int i = 0; i < n; i++) {
            char c = buf[i];
            if (c == '\n') {
                String line = clean(partial.toString());
                lines.add(line);
                text.append(line).append('\n');
                partial.setLength(0);
            } else {
                partial.append(c);
            }
        }
        notifyAll();
    }

    private static String clean(String raw) {
        return ESCAPES.matcher(raw).replaceAll("").replace("\r", "");
    }

    /**
     * Waits for the next line, after the last one a previous await matched, that {@code pattern} finds
     * something in ({@link Matcher#find()}); the lines up to and including it are consumed, so the same
     * marker printed twice is matched twice. Throws with the console's tail on timeout or process exit.
     */
    synchronized Match awaitLine(Pattern pattern, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            for (; cursor < lines.size(); cursor++) {
                Matcher m = pattern.matcher(lines.get(cursor));
                if (m.find()) {
                    return new Match(cursor++, lines.get(cursor - 1), m);
                }
            }
            if (eof) {
                throw failure("exited (" + exitDescription() + ") before a line matching /" + pattern + "/");
            }
            waitUntil(deadline, () -> "no line matching /" + pattern + "/ within " + timeout);
        }
    }

    /** Number of cleaned characters printed so far: an offset for {@link #awaitText}. */
    synchronized int textLength() {
        return text.length() + clean(partial.toString()).length();
    }

    /**
     * Waits until the text printed from {@code offset} on contains {@code needle}, also in a line not yet
     * ended (prompts); returns the text from {@code offset} up to the needle's start.
     */
    synchronized String awaitText(int offset, String needle, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            String all = text + clean(partial.toString());
            int at = all.indexOf(needle, Math.min(offset, all.length()));
            if (at >= 0) {
                return all.substring(Math.min(offset, all.length()), at);
            }
            if (eof) {
                throw failure("exited (" + exitDescription() + ") before printing '" + needle + "'");
            }
            waitUntil(deadline, () -> "'" + needle + "' not printed within " + timeout);
        }
    }

    private void waitUntil(long deadline, Supplier<String> what) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            throw failure(what.get());
        }
        try {
            TimeUnit.NANOSECONDS.timedWait(this, Math.min(left, TimeUnit.MILLISECONDS.toNanos(200)));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw failure("interrupted");
        }
    }

    /** Lines with index in [from, to). */
    synchronized List<String> lines(int from, int to) {
        return List.copyOf(lines.subList(from, to));
    }

    /** Types {@code s} as is. */
    void send(String s) {
        try {
            stdin.write(s.getBytes(StandardCharsets.UTF_8));
            stdin.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot type into console (" + exitDescription() + ")"
                    + tailForMessage(), e);
        }
    }

    /** The last {@code n} lines, cleaned, including an unfinished one. */
    synchronized String tail(int n) {
        List<String> all = new ArrayList<>(lines);
        if (!partial.isEmpty()) {
            all.add(clean(partial.toString()));
        }
        return String.join("\n", all.subList(Math.max(0, all.size() - n), all.size()));
    }

    String tailForMessage() {
        return "\n--- last lines of " + logFile + " ---\n" + tail(40) + "\n--- end ---";
    }

    AssertionError failure(String what) {
        return new AssertionError(name + ": " + what + tailForMessage());
    }

    String exitDescription() {
        return process.isAlive() ? "running" : "exit code " + process.exitValue();
    }

    Process process() {
        return process;
    }

    Path logFile() {
        return logFile;
    }

    /** SIGKILL, like a crash; returns at once. */
    void kill() {
        process.destroyForcibly();
    }

    /** Waits up to {@code timeout} for the process to end; then SIGKILL and waits for it and the log. */
    void awaitExitOrKill(Duration timeout) {
        try {
            if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
            reader.join(Duration.ofSeconds(5));
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        } finally {
            LIVE.remove(process);
        }
    }

    @Override
    public void close() {
        kill();
        awaitExitOrKill(Duration.ZERO);
    }
}
