package io.vswitch.engine;

import java.nio.file.Path;

/** Topology files the tests share. */
final class TestTopologies {
    private TestTopologies() {
    }

    /**
     * Two ports a and b, cross-connected, their sockets and the runtime directory ("run") in {@code dir}; the switch
     * section takes {@code switchLines} too ("key: value", e.g. "notify: interrupt"), and notify poll unless one of
     * them names notify.
     */
    static String crossConnect(Path dir, String... switchLines) {
        StringBuilder section = new StringBuilder("switch:\n  mode: cross-connect\n");
        boolean notify = false;
        for (String line : switchLines) {
            section.append("  ").append(line).append('\n');
            notify |= line.startsWith("notify:");
        }
        if (!notify) {
            section.append("  notify: poll\n");
        }
        return section + """
                  runtime-dir: %s
                ports:
                  - name: a
                    socket: %s
                  - name: b
                    socket: %s
                links:
                  - [a, b]
                """.formatted(dir.resolve("run"), dir.resolve("a.sock"), dir.resolve("b.sock"));
    }

    /**
     * A learning bridge (notify poll) of the ports {@code names}, each port's socket {@code <name>.sock} and the
     * runtime directory ("run") in {@code dir}.
     */
    static String learning(Path dir, String... names) {
        StringBuilder yaml = new StringBuilder("switch:\n  mode: learning\n  notify: poll\n")
                .append("  runtime-dir: ").append(dir.resolve("run")).append("\nports:\n");
        for (String name : names) {
            yaml.append("  - name: ").append(name).append("\n    socket: ").append(dir.resolve(name + ".sock")).append('\n');
        }
        return yaml.toString();
    }
}
