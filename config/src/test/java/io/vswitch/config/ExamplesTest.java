package io.vswitch.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The shipped examples are documentation: they must stay valid as the format evolves. */
class ExamplesTest {

    /** Surefire runs tests in the module directory. */
    private static final Path EXAMPLES = Path.of("examples");

    static List<Path> examples() throws IOException {
        try (Stream<Path> files = Files.list(EXAMPLES)) {
            return files.filter(f -> f.toString().endsWith(".yaml")).sorted().toList();
        }
    }

    @Test
    void theDocumentedExamplesExist() throws IOException {
        assertEquals(List.of("client-mode-ports.yaml", "cross-connect-pair.yaml", "four-vms-two-workers.yaml",
                "two-vm-learning.yaml"), examples().stream().map(p -> p.getFileName().toString()).toList());
    }

    @ParameterizedTest
    @MethodSource("examples")
    void exampleIsValid(Path example) throws IOException {
        SwitchConfig config = ConfigLoader.load(example);
        assertFalse(config.ports().isEmpty());
        // Each example shows the QEMU command attaching a guest; keep it in step with the sockets declared.
        PortConfig first = config.ports().getFirst();
        String chardev = "-chardev socket,id=chr0,path=" + first.socket()
                + (first.role() == SocketRole.CLIENT ? ",server=on,wait=off" : "") + " ";
        assertTrue(Files.readString(example).contains(chardev), example + " lacks a QEMU line with " + chardev);
    }

    @Test
    void fourVmsExampleSpreadsPortsOverBothWorkers() throws IOException {
        SwitchConfig config = ConfigLoader.load(EXAMPLES.resolve("four-vms-two-workers.yaml"));
        assertEquals(List.of("vm1", "vm2"), config.portsOf(0).stream().map(PortConfig::name).toList());
        assertEquals(List.of("vm3", "vm4"), config.portsOf(1).stream().map(PortConfig::name).toList());
    }
}
