package io.vswitch.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code vswitch}: the command line. Exit codes: 0 success, 1 runtime failure (a port could not bind,
 * the switch is not running), 2 usage or configuration error.
 */
@Command(name = "vswitch",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        description = "Userspace shared-memory packet switch: a vhost-user backend for virtual machines.",
        subcommands = {RunCommand.class, ValidateCommand.class, StatsCommand.class, ControlCommands.Show.class,
                ControlCommands.Port.class, ControlCommands.Link.class, ControlCommands.Mac.class,
                ControlCommands.Reload.class, ControlCommands.Save.class, CommandLine.HelpCommand.class},
        footer = {"", "Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.",
                "Run the test suite with ./vswitch test (the launcher builds and runs Maven)."})
public final class Main implements Runnable {
    public static final int EXIT_OK = 0;
    public static final int EXIT_FAILURE = 1;
    public static final int EXIT_USAGE = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        // one line per log record: time, level, message (JUL's default spreads each over two lines)
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tF %1$tT %4$s %5$s%6$s%n");
        }
        System.exit(execute(args));
    }

    public static int execute(String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExitCodeExceptionMapper(t -> t instanceof CommandLine.ParameterException ? EXIT_USAGE : EXIT_FAILURE);
        return cli.execute(args);
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String version = Main.class.getPackage().getImplementationVersion();
            return new String[] {"vswitch " + (version == null ? "development build" : version),
                    "JVM " + Runtime.version() + " (" + System.getProperty("java.vendor") + ")"};
        }
    }
}
