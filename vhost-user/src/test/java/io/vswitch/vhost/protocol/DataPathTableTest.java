package io.vswitch.vhost.protocol;

import io.vswitch.protocol.VhostUserRequest;
import io.vswitch.vhost.net.VirtioNetDevice;
import io.vswitch.sys.UnixSocket;
import io.vswitch.vhost.protocol.VhostUserSession.DataPath;
import org.junit.jupiter.api.Test;

import java.util.EnumMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The "what it needs from the data path" column of the session's handler table, message by message. The
 * session enforces the column around every handler (GracePeriodTest shows it with a worker held inside its
 * window); this pins the column itself, so that a message moved to a weaker class, or a new handler, is a
 * deliberate change.
 */
class DataPathTableTest {
    @Test
    void everyHandledMessageDeclaresWhatItNeedsFromTheDataPath() {
        Map<VhostUserRequest, DataPath> expected = new EnumMap<>(VhostUserRequest.class);
        for (VhostUserRequest r : new VhostUserRequest[] {
            VhostUserRequest.GET_FEATURES, VhostUserRequest.SET_FEATURES, VhostUserRequest.GET_PROTOCOL_FEATURES,
            VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserRequest.SET_OWNER, VhostUserRequest.GET_QUEUE_NUM,
            VhostUserRequest.GET_MAX_MEM_SLOTS, VhostUserRequest.SET_VRING_NUM, VhostUserRequest.SET_VRING_BASE,
            VhostUserRequest.SET_STATUS, VhostUserRequest.GET_STATUS, VhostUserRequest.SEND_RARP,
            VhostUserRequest.SET_LOG_FD, VhostUserRequest.NET_SET_MTU}) {
            expected.put(r, DataPath.UNTOUCHED);
        }
        expected.put(VhostUserRequest.SET_VRING_CALL, DataPath.GRACE_PERIOD);
        expected.put(VhostUserRequest.SET_VRING_ERR, DataPath.GRACE_PERIOD);
        expected.put(VhostUserRequest.SET_LOG_BASE, DataPath.GRACE_PERIOD);   // a replaced log is unmapped after one
        // memory hotplug: the data path keeps running, a removed region is unmapped after a grace period
        expected.put(VhostUserRequest.ADD_MEM_REG, DataPath.GRACE_PERIOD);
        expected.put(VhostUserRequest.REM_MEM_REG, DataPath.GRACE_PERIOD);
        for (VhostUserRequest r : new VhostUserRequest[] {
            VhostUserRequest.SET_MEM_TABLE,
            VhostUserRequest.SET_VRING_ADDR, VhostUserRequest.GET_VRING_BASE, VhostUserRequest.SET_VRING_KICK,
            VhostUserRequest.SET_VRING_ENABLE, VhostUserRequest.RESET_OWNER, VhostUserRequest.RESET_DEVICE}) {
            expected.put(r, DataPath.STOPPED);
        }

        UnixSocket[] pair = UnixSocket.pair();
        try (VhostUserSession session = new VhostUserSession("table", pair[0], new VirtioNetDevice("table"),
                new SessionCounters())) {
            for (VhostUserRequest r : VhostUserRequest.values()) {
                assertEquals(expected.get(r), session.dataPath(r), r.name());
            }
        } finally {
            pair[0].close();
            pair[1].close();
        }
    }
}
