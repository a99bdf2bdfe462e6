package io.vswitch.config;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Function;
import java.util.regex.Pattern;
import org.yaml.snakeyaml.DumperOptions.ScalarStyle;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * A node of the composed YAML tree together with where it came from: its key path and line.
 * The {@code as...} readers report a wrong type or value against that place and return empty,
 * so callers fall back to a default and carry on finding further problems.
 */
final class YamlValue {

    private static final Pattern DECIMAL = Pattern.compile("[-+]?(0|[1-9][0-9_]*)");

    private final Node node;
    private final String path;
    private final int line;
    private final Problems problems;

    YamlValue(Node node, String path, int line, Problems problems) {
        this.node = node;
        this.path = path;
        this.line = line;
        this.problems = problems;
    }

    static YamlValue root(Node node, Problems problems) {
        return new YamlValue(node, "", lineOf(node), problems);
    }

    static int lineOf(Node node) {
        return node.getStartMark() == null ? 0 : node.getStartMark().getLine() + 1;
    }

    String path() {
        return path;
    }

    int line() {
        return line;
    }

    Problems problems() {
        return problems;
    }

    void error(String message) {
        problems.add(line, path, message);
    }

    /** {@code ~} or an empty value, which callers treat like an absent key. */
    boolean isNull() {
        return node instanceof ScalarNode s && s.getTag().equals(Tag.NULL);
    }

    Optional<YamlMapping> asMapping(List<String> keys) {
        if (node instanceof MappingNode m) {
            return Optional.of(YamlMapping.read(this, m, keys));
        }
        return wrongType("a mapping");
    }

    boolean isList() {
        return node instanceof SequenceNode;
    }

    Optional<List<YamlValue>> asList() {
        if (!(node instanceof SequenceNode seq)) {
            return wrongType("a list");
        }
        List<YamlValue> items = new ArrayList<>();
        for (Node item : seq.getValue()) {
            items.add(new YamlValue(item, path + "[" + items.size() + "]", lineOf(item), problems));
        }
        return Optional.of(items);
    }

    /** Any scalar reads as its text: a port may well be named {@code 1} or a group {@code 1000}. */
    Optional<String> asString() {
        if (node instanceof ScalarNode s && !isNull()) {
            return Optional.of(s.getValue());
        }
        return wrongType("a string");
    }

    /** {@code true} or {@code false} (YAML 1.1's yes/no/on/off are refused: they surprise people). */
    Optional<Boolean> asBoolean() {
        if (node instanceof ScalarNode s && !isNull() && (s.getValue().equals("true") || s.getValue().equals("false"))) {
            return Optional.of(Boolean.parseBoolean(s.getValue()));
        }
        return wrongType("true or false");
    }

    Optional<Integer> asInt(int min, int max) {
        if (!(node instanceof ScalarNode s) || !s.getTag().equals(Tag.INT)) {
            return wrongType("an integer");
        }
        // YAML 1.1 also reads 0755 as octal and 1:30 as 90; refuse those rather than surprise anyone.
        if (!DECIMAL.matcher(s.getValue()).matches()) {
            error("expected a decimal integer, got " + describe());
            return Optional.empty();
        }
        long value;
        try {
            value = Long.parseLong(s.getValue().replace("_", ""));
        } catch (NumberFormatException tooLong) {
            value = s.getValue().startsWith("-") ? Long.MIN_VALUE : Long.MAX_VALUE;
        }
        if (value < min || value > max) {
            error(s.getValue() + " is out of range " + min + ".." + max);
            return Optional.empty();
        }
        return Optional.of((int) value);
    }

    /** A list of integers, each within {@code min..max}; empty if the list or any element is wrong. */
    Optional<List<Integer>> asIntList(int min, int max) {
        Optional<List<YamlValue>> items = asList();
        if (items.isEmpty()) {
            return Optional.empty();
        }
        List<Integer> values = new ArrayList<>();
        boolean allValid = true;
        for (YamlValue item : items.get()) {
            Optional<Integer> v = item.asInt(min, max);
            v.ifPresent(values::add);
            allValid &= v.isPresent();
        }
        return allValid ? Optional.of(values) : Optional.empty();
    }

    /** One of {@code choices}, matched by its YAML spelling. */
    <E> Optional<E> asOneOf(E[] choices, Function<E, String> spelling) {
        Optional<String> text = asString();
        if (text.isEmpty()) {
            return Optional.empty();
        }
        List<String> names = new ArrayList<>();
        for (E choice : choices) {
            if (spelling.apply(choice).equals(text.get())) {
                return Optional.of(choice);
            }
            names.add(spelling.apply(choice));
        }
        String hint = Suggestions.closest(text.get(), names).map(n -> " (did you mean '" + n + "'?)").orElse("");
        error("'" + text.get() + "' is not one of " + String.join(", ", names) + hint);
        return Optional.empty();
    }

    private <T> Optional<T> wrongType(String expected) {
        error("expected " + expected + ", got " + describe());
        return Optional.empty();
    }

    /** How the value reads in an error: quoted text keeps its double quotes so {@code "1"} is visibly a string. */
    private String describe() {
        return switch (node) {
            case MappingNode m -> "a mapping";
            case SequenceNode s -> "a list";
            case ScalarNode s when isNull() -> "nothing";
            case ScalarNode s when s.getScalarStyle() == ScalarStyle.DOUBLE_QUOTED
                    || s.getScalarStyle() == ScalarStyle.SINGLE_QUOTED -> "\"" + s.getValue() + "\"";
            case ScalarNode s -> "'" + s.getValue() + "'";
            default -> node.getNodeId().toString();
        };
    }
}
