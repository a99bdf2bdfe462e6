package io.vswitch.control;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

/** The CLI's side of the control socket (see {@link ControlServer} for the protocol). */
public final class ControlClient {
    private ControlClient() {
    }

    /** What the switch answered: the exit code and the text to print. */
    public record Answer(int code, String text) {
    }

    /**
     * Sends {@code args} to the switch serving {@code socket}.
     *
     * @throws IOException when no switch answers there
     */
    public static Answer call(Path socket, List<String> args) throws IOException {
        StringBuilder request = new StringBuilder();
        for (String arg : args) {
            if (arg.isEmpty() || arg.indexOf('\n') >= 0 || arg.indexOf('\r') >= 0) {
                return new Answer(2, "vswitch: arguments must be non-empty and on one line: '" + arg + "'\n");
            }
            request.append(arg).append('\n');
        }
        request.append('\n');
        try (SocketChannel channel = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            channel.connect(UnixDomainSocketAddress.of(socket));
            ByteBuffer out = StandardCharsets.UTF_8.encode(request.toString());
            while (out.hasRemaining()) {
                channel.write(out);
            }
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            ByteBuffer in = ByteBuffer.allocate(8192);
            while (channel.read(in.clear()) >= 0) {
                bytes.write(in.array(), 0, in.position());
            }
            String text = bytes.toString(StandardCharsets.UTF_8);
            int eol = text.indexOf('\n');
            if (!text.startsWith("status ") || eol < 0) {
                throw new IOException("the switch closed the connection without an answer");
            }
            return new Answer(Integer.parseInt(text.substring(7, eol).trim()), text.substring(eol + 1));
        }
    }
}
