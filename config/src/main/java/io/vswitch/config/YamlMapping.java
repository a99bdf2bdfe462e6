package io.vswitch.config;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;

/**
 * A YAML mapping whose keys were checked against the ones it may have.
 * Unknown keys are reported rather than ignored: a misspelled optional key would otherwise
 * silently leave its setting at the default.
 */
final class YamlMapping {

    private final YamlValue self;
    private final Map<String, YamlValue> entries = new LinkedHashMap<>();

    private YamlMapping(YamlValue self) {
        this.self = self;
    }

    static YamlMapping read(YamlValue self, MappingNode node, List<String> keys) {
        YamlMapping mapping = new YamlMapping(self);
        for (NodeTuple tuple : node.getValue()) {
            int keyLine = YamlValue.lineOf(tuple.getKeyNode());
            if (!(tuple.getKeyNode() instanceof ScalarNode keyNode)) {
                self.problems().add(keyLine, self.path(), "keys must be plain words, got a " + tuple.getKeyNode().getNodeId());
                continue;
            }
            String key = keyNode.getValue();
            String path = self.path().isEmpty() ? key : self.path() + "." + key;
            if (!keys.contains(key)) {
                String hint = Suggestions.closest(key, keys)
                        .map(k -> "did you mean '" + k + "'?")
                        .orElse("expected one of " + String.join(", ", keys));
                self.problems().add(keyLine, path, "unknown key (" + hint + ")");
                continue;
            }
            YamlValue previous = mapping.entries.get(key);
            if (previous != null) {
                self.problems().add(keyLine, path, "duplicate key (first given on line " + previous.line() + ")");
                continue;
            }
            // Errors about a value point at its key's line: for a block list or mapping that is where the reader looks.
            mapping.entries.put(key, new YamlValue(tuple.getValueNode(), path, keyLine, self.problems()));
        }
        return mapping;
    }

    YamlValue self() {
        return self;
    }

    /** The value under {@code key}; empty when the key is absent or has no value. */
    Optional<YamlValue> get(String key) {
        return Optional.ofNullable(entries.get(key)).filter(v -> !v.isNull());
    }

    /** Like {@link #get}, but reports the key as missing. */
    Optional<YamlValue> require(String key) {
        YamlValue value = entries.get(key);
        String path = self.path().isEmpty() ? key : self.path() + "." + key;
        if (value == null) {
            self.problems().add(self.line(), path, "missing");
            return Optional.empty();
        }
        if (value.isNull()) {
            value.error("has no value");
            return Optional.empty();
        }
        return Optional.of(value);
    }

    boolean has(String key) {
        return get(key).isPresent();
    }
}
