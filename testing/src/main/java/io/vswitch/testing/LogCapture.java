package io.vswitch.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.logging.SimpleFormatter;

/**
 * Records what the switch logs (System.Logger goes to java.util.logging), with the name of the thread that
 * logged it: the handler runs synchronously on that thread. Close it to detach.
 */
public final class LogCapture extends Handler implements AutoCloseable {
    /** One log line: level, message with its parameters filled in, logging thread. */
    public record Line(Level level, String logger, String message, String thread) {
    }

    private final Logger root = Logger.getLogger("");
    private final SimpleFormatter formatter = new SimpleFormatter();
    private final List<Line> lines = new ArrayList<>();

    public LogCapture() {
        setLevel(Level.ALL);
        root.addHandler(this);
    }

    @Override
    public void publish(LogRecord record) {
        Line line = new Line(record.getLevel(), record.getLoggerName(), formatter.formatMessage(record),
                Thread.currentThread().getName());
        synchronized (lines) {
            lines.add(line);
        }
    }

    public List<Line> lines() {
        synchronized (lines) {
            return List.copyOf(lines);
        }
    }

    public List<Line> matching(Predicate<Line> filter) {
        return lines().stream().filter(filter).toList();
    }

    /** Waits (up to 5 s) for a line containing {@code text} and returns the first. */
    public Line await(String text) {
        Await.await(() -> !matching(l -> l.message().contains(text)).isEmpty(), "a log line containing '" + text + "'");
        return matching(l -> l.message().contains(text)).getFirst();
    }

    /** Forgets the lines recorded so far. */
    public void clear() {
        synchronized (lines) {
            lines.clear();
        }
    }

    @Override
    public void flush() {
    }

    @Override
    public void close() {
        root.removeHandler(this);
    }
}
