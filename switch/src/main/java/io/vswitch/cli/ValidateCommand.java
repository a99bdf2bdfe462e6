package io.vswitch.cli;

import io.vswitch.config.ConfigException;
import io.vswitch.config.ConfigLoader;
import io.vswitch.config.SwitchConfig;
import io.vswitch.engine.Switch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

@Command(name = "validate", mixinStandardHelpOptions = true,
        description = "Checks a topology file and prints every problem with file:line; starts nothing.")
final class ValidateCommand implements Callable<Integer> {
    @Parameters(paramLabel = "FILE", description = "YAML topology file")
    Path file;

    @Override
    public Integer call() {
        SwitchConfig config = load(file);
        if (config == null) {
            return Main.EXIT_USAGE;
        }
        List<String> unsupported = Switch.unsupported(config);
        if (!unsupported.isEmpty()) {
            unsupported.forEach(p -> System.err.println(file + ": " + p));
            return Main.EXIT_USAGE;
        }
        System.out.printf("%s: valid (%s mode, %d port(s), %d worker(s), notify %s)%n", file,
                config.settings().mode().name().toLowerCase().replace('_', '-'), config.ports().size(),
                config.settings().workers(), config.settings().notifyMode().name().toLowerCase());
        return Main.EXIT_OK;
    }

    /** Loads and validates; prints the errors and returns null when the file is not usable. */
    static SwitchConfig load(Path file) {
        try {
            return ConfigLoader.load(file);
        } catch (ConfigException e) {
            System.err.println(e.getMessage());
        } catch (IOException e) {
            System.err.println(file + ": cannot read: " + e.getMessage());
        }
        return null;
    }
}
