package io.vswitch.config;

/** How the switch decides where a frame goes. */
public enum BridgeMode {
    /** Learn source MACs per port and forward by destination, flooding unknown ones. */
    LEARNING,
    /** Forward everything from one port to its linked partner, no lookup at all. */
    CROSS_CONNECT;

    /** The spelling used in topology files, e.g. {@code cross-connect}. */
    public String yamlName() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }
}
