package io.vswitch.config;

/** Which side of the vhost-user Unix socket the switch plays. */
public enum SocketRole {
    /** The switch creates and listens on the socket; QEMU connects. */
    SERVER,
    /** QEMU listens ({@code server=on}); the switch connects and reconnects when the guest restarts. */
    CLIENT;

    /** The spelling used in topology files, e.g. {@code server}. */
    public String yamlName() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }
}
