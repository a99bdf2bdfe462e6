package io.vswitch.engine;

import java.util.List;
import java.util.Map;

/** Writes maps, lists, strings, numbers, booleans and null as JSON (control-plane output; no parser needed). */
public final class Json {
    private Json() {
    }

    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, "");
        return out.append('\n').toString();
    }

    private static void write(Object value, StringBuilder out, String indent) {
        switch (value) {
            case null -> out.append("null");
            case String s -> string(s, out);
            case Boolean b -> out.append(b);
            case Number n -> out.append(n);
            case Map<?, ?> m -> {
                if (m.isEmpty()) {
                    out.append("{}");
                    return;
                }
                out.append("{\n");
                String in = indent + "  ";
                int i = 0;
                for (var e : m.entrySet()) {
                    out.append(in);
                    string(String.valueOf(e.getKey()), out);
                    out.append(": ");
                    write(e.getValue(), out, in);
                    out.append(++i < m.size() ? ",\n" : "\n");
                }
                out.append(indent).append('}');
            }
            case List<?> l -> {
                if (l.isEmpty()) {
                    out.append("[]");
                    return;
                }
                boolean scalars = l.stream().noneMatch(v -> v instanceof Map || v instanceof List);
                if (scalars) {
                    out.append('[');
                    for (int i = 0; i < l.size(); i++) {
                        write(l.get(i), out, indent);
                        if (i + 1 < l.size()) {
                            out.append(", ");
                        }
                    }
                    out.append(']');
                    return;
                }
                out.append("[\n");
                String in = indent + "  ";
                for (int i = 0; i < l.size(); i++) {
                    out.append(in);
                    write(l.get(i), out, in);
                    out.append(i + 1 < l.size() ? ",\n" : "\n");
                }
                out.append(indent).append(']');
            }
            default -> string(value.toString(), out);
        }
    }

    private static void string(String s, StringBuilder out) {
        out.append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
