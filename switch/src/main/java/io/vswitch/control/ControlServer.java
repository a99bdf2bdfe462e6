package io.vswitch.control;

import io.vswitch.engine.LiveTopology;
import io.vswitch.engine.Json;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.nio.file.attribute.UserPrincipal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The switch's control socket, {@code <runtime dir>/control.sock}: what {@code vswitch port|link|mac|show|save|reload}
 * talk to. Owner-only (mode 0600), and a connecting process must run as the switch's user or as root (its
 * credentials are read from the socket, SO_PEERCRED, so a permissive umask cannot open it to others).
 *
 * <pre>
 * request:  one argument per line (UTF-8), an empty line ends it     e.g.  port\nset\nvm1\nvlan=20\n\n
 * answer:   "status N" (the exit code: 0 ok, 1 runtime failure, 2 usage or configuration error),
 *           then the text to print, until the switch closes the connection
 * </pre>
 * Requests are served one at a time ({@link LiveTopology} serializes changes); each connection has a thread.
 */
public final class ControlServer implements AutoCloseable {
    public static final String FILE_NAME = "control.sock";
    private static final System.Logger LOG = System.getLogger("vswitch");
    private static final int MAX_REQUEST = 64 * 1024;

    private final Path path;
    private final ServerSocketChannel server;
    private final LiveTopology topology;
    private final String owner;
    /** When set, the socket is mode 0660 in this group and the file's permissions decide who connects. */
    private final Optional<String> group;
    private final Thread acceptor;
    private volatile boolean closing;

    private ControlServer(Path path, ServerSocketChannel server, LiveTopology topology, Optional<String> group) {
        this.group = group;
        this.path = path;
        this.server = server;
        this.topology = topology;
        this.owner = System.getProperty("user.name");
        this.acceptor = Thread.ofPlatform().name("vswitch-control").daemon(true).unstarted(this::acceptLoop);
    }

    /** Binds {@code <runtimeDir>/control.sock} (the runtime directory's lock is held: any old one is stale). */
    public static ControlServer start(Path runtimeDir, LiveTopology topology) throws IOException {
        return start(runtimeDir, topology, Optional.empty());
    }

    /**
     * As {@link #start(Path, LiveTopology)}; with a {@code group}, the socket is mode 0660 and owned by that group,
     * so that its members may change the switch too.
     */
    public static ControlServer start(Path runtimeDir, LiveTopology topology, Optional<String> group) throws IOException {
        Path path = runtimeDir.resolve(FILE_NAME);
        Files.deleteIfExists(path);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            server.bind(UnixDomainSocketAddress.of(path));
            Files.setPosixFilePermissions(path, PosixFilePermissions.fromString(group.isPresent() ? "rw-rw----" : "rw-------"));
            if (group.isPresent()) {
                var principal = path.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByGroupName(group.get());
                Files.getFileAttributeView(path, java.nio.file.attribute.PosixFileAttributeView.class).setGroup(principal);
            }
        } catch (IOException | RuntimeException e) {
            server.close();
            Files.deleteIfExists(path);
            throw e;
        }
        ControlServer control = new ControlServer(path, server, topology, group);
        control.acceptor.start();
        return control;
    }

    public Path path() {
        return path;
    }

    private void acceptLoop() {
        while (!closing) {
            SocketChannel client;
            try {
                client = server.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                if (!closing) {
                    LOG.log(Level.WARNING, "control socket: accept: {0}", e.getMessage());
                }
                continue;
            }
            Thread.ofVirtual().name("vswitch-control-client").start(() -> serve(client));
        }
    }

    private void serve(SocketChannel client) {
        try (client) {
            Reply reply;
            String who = peer(client);
            if (group.isEmpty() && who != null && !who.equals(owner) && !who.equals("root")) {
                reply = new Reply(1, "vswitch: the control socket serves its owner (" + owner + ") and root, not " + who + "\n");
            } else {
                List<String> request = read(client);
                reply = request == null ? new Reply(2, "vswitch: malformed request\n") : handle(request);
            }
            ByteBuffer out = StandardCharsets.UTF_8.encode("status " + reply.code() + "\n" + reply.text());
            while (out.hasRemaining()) {
                client.write(out);
            }
        } catch (IOException e) {
            LOG.log(Level.DEBUG, "control socket: {0}", e.getMessage());
        }
    }

    private static String peer(SocketChannel client) {
        try {
            UserPrincipal user = client.getOption(jdk.net.ExtendedSocketOptions.SO_PEERCRED).user();
            return user.getName();
        } catch (IOException | UnsupportedOperationException e) {
            return null;
        }
    }

    /** The request's arguments, or null when it is too long or not terminated by an empty line. */
    private static List<String> read(SocketChannel client) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ByteBuffer buffer = ByteBuffer.allocate(4096);
        while (bytes.size() <= MAX_REQUEST) {
            buffer.clear();
            int n = client.read(buffer);
            if (n < 0) {
                break;
            }
            bytes.write(buffer.array(), 0, n);
            String text = bytes.toString(StandardCharsets.UTF_8);
            if (text.equals("\n") || text.endsWith("\n\n")) {
                List<String> args = new ArrayList<>(List.of(text.substring(0, text.length() - 1).split("\n", -1)));
                args.removeLast();
                return args;
            }
        }
        return null;
    }

    record Reply(int code, String text) {
    }

    Reply handle(List<String> args) {
        try {
            String text = dispatch(args);
            return new Reply(0, text.endsWith("\n") || text.isEmpty() ? text : text + "\n");
        } catch (LiveTopology.Refused e) {
            return new Reply(e.exitCode(), "vswitch: " + e.getMessage() + "\n");
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "control request " + args + " failed", e);
            return new Reply(1, "vswitch: " + e + "\n");
        }
    }

    private String dispatch(List<String> args) {
        String what = String.join(" ", args.subList(0, Math.min(2, args.size())));
        switch (args.isEmpty() ? "" : args.getFirst()) {
            case "port" -> {
                need(args, 3, "port add|del|set NAME ...");
                String name = args.get(2);
                return switch (args.get(1)) {
                    case "add" -> topology.addPort(name, settings(args.subList(3, args.size())));
                    case "del" -> {
                        need(args, 3, "port del NAME");
                        yield topology.deletePort(name);
                    }
                    case "set" -> topology.setPort(name, settings(args.subList(3, args.size())));
                    default -> throw usage("unknown request " + what);
                };
            }
            case "link" -> {
                need(args, 4, "link add|del A B");
                return switch (args.get(1)) {
                    case "add" -> topology.link(args.get(2), args.get(3));
                    case "del" -> topology.unlink(args.get(2), args.get(3));
                    default -> throw usage("unknown request " + what);
                };
            }
            case "mac" -> {
                need(args, 2, "mac list|flush [PORT]");
                boolean json = args.contains("--json");
                Optional<String> port = args.subList(2, args.size()).stream().filter(a -> !a.equals("--json")).findFirst();
                return switch (args.get(1)) {
                    case "list" -> topology.macList(port, json);
                    case "flush" -> topology.macFlush(port);
                    default -> throw usage("unknown request " + what);
                };
            }
            case "show" -> {
                return args.contains("--json") ? Json.write(topology.describe()) : topology.show();
            }
            case "save" -> {
                return topology.save();
            }
            case "reload" -> {
                return topology.reload(args.size() > 1 ? Optional.of(Path.of(args.get(1))) : Optional.empty());
            }
            default -> throw usage("unknown request " + what);
        }
    }

    private static Map<String, String> settings(List<String> pairs) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String pair : pairs) {
            int eq = pair.indexOf('=');
            if (eq <= 0) {
                throw usage("expected KEY=VALUE, got '" + pair + "'");
            }
            if (out.put(pair.substring(0, eq), pair.substring(eq + 1)) != null) {
                throw usage(pair.substring(0, eq) + " given twice");
            }
        }
        return out;
    }

    private static void need(List<String> args, int n, String usage) {
        if (args.size() < n) {
            throw usage("usage: " + usage);
        }
    }

    private static LiveTopology.Refused usage(String message) {
        return new LiveTopology.Refused(2, message);
    }

    @Override
    public void close() {
        closing = true;
        try {
            server.close();
        } catch (IOException e) {
            LOG.log(Level.WARNING, "control socket: close: {0}", e.getMessage());
        }
        try {
            acceptor.join(2000);
            Files.deleteIfExists(path);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "control socket: cannot remove {0}: {1}", path, e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
