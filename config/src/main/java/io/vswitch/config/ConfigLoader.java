package io.vswitch.config;

import java.io.IOException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.error.Mark;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.Node;

/**
 * Reads topology files. Every problem is reported as {@code file:line: key.path: message}, and all of them
 * at once in one {@link ConfigException}.
 */
public final class ConfigLoader {

    private ConfigLoader() {
    }

    /**
     * @throws IOException     if the file cannot be read
     * @throws ConfigException if it is not a valid topology; errors are named after {@code file} as given
     */
    public static SwitchConfig load(Path file) throws IOException {
        return parse(Files.readString(file), file.toString());
    }

    /**
     * @param sourceName what errors call the text, normally its file name
     * @throws ConfigException if it is not a valid topology
     */
    public static SwitchConfig parse(String yaml, String sourceName) {
        Problems problems = new Problems(sourceName);
        Node root = compose(yaml, sourceName);
        if (root == null) {
            problems.add(1, "", "the file is empty; a topology needs at least a list of ports");
            problems.throwIfAny();
        }
        ConfigParser.Parsed parsed = ConfigParser.parse(YamlValue.root(root, problems));
        Validator.check(parsed, problems);
        problems.throwIfAny();
        List<PortConfig> ports = parsed.ports().stream().map(ConfigParser.PortEntry::port).toList();
        List<Link> links = parsed.links().stream().map(l -> new Link(l.first().name(), l.second().name())).toList();
        return new SwitchConfig(parsed.settings(), ports, links);
    }

    /**
     * The node tree rather than constructed objects, because only nodes remember their lines.
     * Returns null for an empty document.
     */
    private static Node compose(String yaml, String sourceName) {
        try {
            return new Yaml(new LoaderOptions()).compose(new StringReader(yaml));
        } catch (MarkedYAMLException e) {
            Mark mark = e.getProblemMark() != null ? e.getProblemMark() : e.getContextMark();
            throw new ConfigException(List.of(new ConfigError(sourceName, mark == null ? 0 : mark.getLine() + 1, "",
                    "syntax error: " + describe(e))));
        } catch (YAMLException e) {
            throw new ConfigException(List.of(new ConfigError(sourceName, 0, "", "syntax error: " + oneLine(e.getMessage()))));
        }
    }

    /**
     * SnakeYAML splits its messages into a context and a problem. Most contexts say what was being parsed
     * ("while parsing a block mapping"), but some are the first half of a sentence the problem ends
     * ("expected a single document in the stream" + "but found another document").
     */
    private static String describe(MarkedYAMLException e) {
        String problem = oneLine(e.getProblem());
        if (e.getContext() == null) {
            return problem;
        }
        String context = oneLine(e.getContext());
        if (problem.startsWith("but ")) {
            return context + ", " + problem;
        }
        String where = e.getContextMark() == null ? "" : " started on line " + (e.getContextMark().getLine() + 1);
        return problem + " (" + context + where + ")";
    }

    private static String oneLine(String text) {
        return text == null ? "" : text.strip().replaceAll("\\s+", " ");
    }
}
