package io.vswitch.config;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** Collects every problem in one source, so a user can fix them all in one pass rather than one per run. */
final class Problems {

    private final String source;
    private final List<ConfigError> errors = new ArrayList<>();

    Problems(String source) {
        this.source = source;
    }

    void add(int line, String path, String message) {
        errors.add(new ConfigError(source, line, path, message));
    }

    /** Whether {@code path} itself was reported, so checks that depend on it can stay quiet rather than pile on. */
    boolean reported(String path) {
        return errors.stream().anyMatch(e -> e.path().equals(path));
    }

    /** Throws when anything was reported, listing problems in file order (stable: same-line ones keep discovery order). */
    void throwIfAny() {
        if (!errors.isEmpty()) {
            throw new ConfigException(errors.stream().sorted(Comparator.comparingInt(ConfigError::line)).toList());
        }
    }
}
