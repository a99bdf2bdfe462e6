package io.vswitch.testing;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * QEMU's human monitor on a Unix socket ({@code -monitor unix:PATH,server=on,wait=off}): sends one command
 * at a time and returns what QEMU printed up to the next {@code (qemu)} prompt.
 */
public final class QemuMonitor implements AutoCloseable {
    private static final String PROMPT = "(qemu) ";
    private final SocketChannel channel;
    private final StringBuilder pending = new StringBuilder();

    private QemuMonitor(SocketChannel channel) {
        this.channel = channel;
    }

    /** The QEMU command-line arguments for a monitor on {@code socket}. */
    public static java.util.List<String> args(Path socket) {
        return java.util.List.of("-monitor", "unix:" + socket + ",server=on,wait=off");
    }

    /** Connects (retrying until QEMU has created the socket) and reads the greeting. */
    public static QemuMonitor connect(Path socket, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
                QemuMonitor m = new QemuMonitor(ch);
                m.readUntilPrompt(timeout);
                return m;
            } catch (IOException e) {
                ch.close();
                if (System.nanoTime() > deadline) {
                    throw new IOException("QEMU monitor at " + socket + " did not answer within " + timeout, e);
                }
                Thread.sleep(100);   // polling for a socket file that another process creates
            }
        }
    }

    /** Runs one monitor command and returns its output (without the echo and the prompt). */
    public String command(String line, Duration timeout) throws IOException {
        channel.write(ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8)));
        String out = readUntilPrompt(timeout);
        // the monitor echoes the command line (with terminal escapes) before the output
        int nl = out.indexOf('\n');
        return (nl >= 0 ? out.substring(nl + 1) : out).replaceAll("\u001b\\[[0-9;]*[A-Za-z]", "").replace("\r", "");
    }

    private String readUntilPrompt(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        ByteBuffer buf = ByteBuffer.allocate(8192);
        channel.configureBlocking(true);
        while (true) {
            int at = pending.indexOf(PROMPT);
            if (at >= 0) {
                String out = pending.substring(0, at);
                pending.delete(0, at + PROMPT.length());
                return out;
            }
            if (System.nanoTime() > deadline) {
                throw new IOException("no monitor prompt within " + timeout + "; got: " + pending);
            }
            buf.clear();
            int n = channel.read(buf);
            if (n < 0) {
                throw new IOException("QEMU closed its monitor; got: " + pending);
            }
            pending.append(new String(buf.array(), 0, n, StandardCharsets.UTF_8));
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
