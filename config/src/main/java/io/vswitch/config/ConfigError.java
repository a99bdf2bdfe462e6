package io.vswitch.config;

/**
 * One problem in a topology file.
 *
 * @param line 1-based line, or 0 when the problem has no position
 * @param path key path such as {@code ports[1].socket}; empty for problems with the file as a whole
 */
public record ConfigError(String source, int line, String path, String message) {

    /** {@code topo.yaml:7: ports[1].socket: missing} */
    @Override
    public String toString() {
        StringBuilder s = new StringBuilder(source);
        if (line > 0) {
            s.append(':').append(line);
        }
        s.append(": ");
        if (!path.isEmpty()) {
            s.append(path).append(": ");
        }
        return s.append(message).toString();
    }
}
