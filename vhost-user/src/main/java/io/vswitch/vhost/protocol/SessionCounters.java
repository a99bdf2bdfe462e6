package io.vswitch.vhost.protocol;

/** Control-plane counters of one port, written by its control thread only. */
public final class SessionCounters {
    public volatile long connections;
    public volatile long disconnects;
    public long messages;
    public long refusedMessages;
    public long protocolErrors;
}
