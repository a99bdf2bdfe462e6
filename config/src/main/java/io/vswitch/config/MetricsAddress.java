package io.vswitch.config;

import java.net.Inet6Address;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * Where the Prometheus endpoint listens: {@code switch.metrics} in a topology, {@code --metrics} on {@code run}.
 * Written {@code HOST:PORT}: an IPv4 address, a host name, or an IPv6 address in brackets ({@code [::1]:9469}).
 * Port 0 lets the system pick a free port (the switch prints the one it got).
 */
public record MetricsAddress(String host, int port) {
    public static final int MAX_PORT = 65_535;

    private static final Pattern IPV4 = Pattern.compile("(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})");
    private static final Pattern DOTS_AND_DIGITS = Pattern.compile("[0-9.]+");
    private static final Pattern HOST_NAME = Pattern.compile(
            "(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*");
    private static final Pattern DIGITS = Pattern.compile("\\d{1,5}");

    public MetricsAddress {
        Objects.requireNonNull(host, "host");
        if (port < 0 || port > MAX_PORT) {
            throw new IllegalArgumentException("port " + port + " is out of range 0.." + MAX_PORT);
        }
    }

    /**
     * Reads {@code HOST:PORT}.
     *
     * @throws IllegalArgumentException with a message that says what is wrong, fit to follow {@code key: }
     */
    public static MetricsAddress parse(String text) {
        String example = " (HOST:PORT, e.g. 127.0.0.1:9469)";
        int colon = text.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("'" + text + "' has no port" + example);
        }
        String host = text.substring(0, colon);
        String port = text.substring(colon + 1);
        if (host.isEmpty()) {
            throw new IllegalArgumentException("'" + text + "' has no host: use 127.0.0.1 for this machine only, "
                    + "0.0.0.0 for every interface");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
            try {
                Inet6Address.ofLiteral(host);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("'" + host + "' is not an IPv6 address" + example);
            }
        } else if (host.contains(":")) {
            throw new IllegalArgumentException("'" + text + "': write an IPv6 host in brackets, e.g. [::1]:9469");
        } else if (DOTS_AND_DIGITS.matcher(host).matches()) {
            var ipv4 = IPV4.matcher(host);
            boolean valid = ipv4.matches();
            for (int i = 1; valid && i <= 4; i++) {
                valid = Integer.parseInt(ipv4.group(i)) <= 255;
            }
            if (!valid) {
                throw new IllegalArgumentException("'" + host + "' is not an IPv4 address" + example);
            }
        } else if (!HOST_NAME.matcher(host).matches()) {
            throw new IllegalArgumentException("'" + host + "' is not a host name or address" + example);
        }
        if (!DIGITS.matcher(port).matches() || Integer.parseInt(port) > MAX_PORT) {
            throw new IllegalArgumentException("'" + port + "' is not a port: expected 0.." + MAX_PORT
                    + " (0 picks a free one)");
        }
        return new MetricsAddress(host, Integer.parseInt(port));
    }

    /** As written in a topology: {@code HOST:PORT}, IPv6 hosts in brackets. */
    @Override
    public String toString() {
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
    }
}
