package io.vswitch.engine;

import org.agrona.IoUtil;
import org.agrona.concurrent.AtomicBuffer;
import org.agrona.concurrent.UnsafeBuffer;
import org.agrona.concurrent.status.AtomicCounter;
import org.agrona.concurrent.status.CountersManager;
import org.agrona.concurrent.status.CountersReader;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The switch's counters in a memory-mapped file, so that {@code vswitch stats} in another process reads them
 * while the switch runs (Aeron's CnC idea). Counters are Agrona counters: a metadata area with labels and a
 * values area, each value on its own cache line.
 *
 * <pre>
 * file layout
 *   0  int   magic 'VSWC'          16 long start time (epoch ms)
 *   4  int   version (1)           24 int  metadata length
 *   8  long  pid                   28 int  values length
 *  64  metadata (CountersManager)
 *  64 + metadata length: values
 * </pre>
 * Labels read {@code <scope> <name> <counter>}: {@code port vm1 rx_packets}, {@code worker 0 busy_loops}.
 */
public final class CountersFile implements AutoCloseable {
    public static final String FILE_NAME = "counters";
    static final int MAGIC = 0x43575356;
    static final int VERSION = 1;
    static final int MAGIC_OFFSET = 0;
    static final int VERSION_OFFSET = 4;
    static final int PID_OFFSET = 8;
    static final int START_OFFSET = 16;
    static final int META_LENGTH_OFFSET = 24;
    static final int VALUES_LENGTH_OFFSET = 28;
    static final int HEADER_LENGTH = 64;

    private final Path path;
    private final MappedByteBuffer mapped;
    private final UnsafeBuffer header;
    private final CountersManager manager;

    private CountersFile(Path path, MappedByteBuffer mapped, UnsafeBuffer header, CountersManager manager) {
        this.path = path;
        this.mapped = mapped;
        this.header = header;
        this.manager = manager;
    }

    /** Creates (replacing any old one) a counters file with room for {@code maxCounters}. */
    public static CountersFile create(Path path, int maxCounters) throws IOException {
        int valuesLength = align(maxCounters * CountersReader.COUNTER_LENGTH);
        int metaLength = valuesLength * (CountersReader.METADATA_LENGTH / CountersReader.COUNTER_LENGTH);
        Files.createDirectories(path.toAbsolutePath().getParent());
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        Files.deleteIfExists(tmp);
        MappedByteBuffer mapped;
        try (RandomAccessFile file = new RandomAccessFile(tmp.toFile(), "rw")) {
            file.setLength(HEADER_LENGTH + (long) metaLength + valuesLength);
            mapped = file.getChannel().map(FileChannel.MapMode.READ_WRITE, 0, file.length());
        }
        UnsafeBuffer header = new UnsafeBuffer(mapped, 0, HEADER_LENGTH);
        AtomicBuffer meta = new UnsafeBuffer(mapped, HEADER_LENGTH, metaLength);
        AtomicBuffer values = new UnsafeBuffer(mapped, HEADER_LENGTH + metaLength, valuesLength);
        header.putInt(VERSION_OFFSET, VERSION);
        header.putLong(PID_OFFSET, ProcessHandle.current().pid());
        header.putLong(START_OFFSET, System.currentTimeMillis());
        header.putInt(META_LENGTH_OFFSET, metaLength);
        header.putInt(VALUES_LENGTH_OFFSET, valuesLength);
        header.putIntRelease(MAGIC_OFFSET, MAGIC);
        Files.move(tmp, path, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        return new CountersFile(path, mapped, header, new CountersManager(meta, values));
    }

    private static int align(int n) {
        return (n + 4095) & ~4095;
    }

    public AtomicCounter newCounter(String scope, String name, String counter) {
        return manager.newCounter(scope + " " + name + " " + counter);
    }

    public Path path() {
        return path;
    }

    @Override
    public void close() {
        header.putIntRelease(MAGIC_OFFSET, 0);
        IoUtil.unmap(mapped);
    }

    /** One counter as read from another process. */
    public record Sample(String scope, String name, String counter, long value) {
    }

    /** What {@code vswitch stats} sees: the writer's pid and start time and every counter. */
    public record Snapshot(long pid, long startMillis, List<Sample> samples) {
    }

    /** Reads a counters file written by a running (or stopped) switch. */
    public static Snapshot read(Path path) throws IOException {
        try (FileChannel channel = FileChannel.open(path)) {
            MappedByteBuffer mapped = channel.map(FileChannel.MapMode.READ_ONLY, 0, channel.size());
            try {
                UnsafeBuffer all = new UnsafeBuffer(mapped);
                if (all.capacity() < HEADER_LENGTH || all.getIntVolatile(MAGIC_OFFSET) != MAGIC) {
                    throw new IOException(path + " is not the counters file of a running vswitch");
                }
                int metaLength = all.getInt(META_LENGTH_OFFSET);
                int valuesLength = all.getInt(VALUES_LENGTH_OFFSET);
                if (HEADER_LENGTH + (long) metaLength + valuesLength > all.capacity()) {
                    throw new IOException(path + " is truncated");
                }
                CountersReader reader = new CountersReader(new UnsafeBuffer(mapped, HEADER_LENGTH, metaLength),
                        new UnsafeBuffer(mapped, HEADER_LENGTH + metaLength, valuesLength));
                List<Sample> samples = new ArrayList<>();
                reader.forEach((value, id, label) -> {
                    String[] parts = label.split(" ", 3);
                    if (parts.length == 3) {
                        samples.add(new Sample(parts[0], parts[1], parts[2], value));
                    }
                });
                return new Snapshot(all.getLong(PID_OFFSET), all.getLong(START_OFFSET), samples);
            } finally {
                IoUtil.unmap(mapped);
            }
        }
    }
}
