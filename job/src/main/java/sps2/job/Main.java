package sps2.job;

import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import sps2.job.cli.DemoCommand;
import sps2.job.cli.GenerateCommand;
import sps2.job.cli.MakeModelCommand;
import sps2.job.cli.ServeCommand;
import sps2.job.client.ClientCommand;

/**
 * The job's commands: the entry point of the fat jar that {@code flink run} takes. {@code ./sps2} starts
 * {@code sps2.bench.Main}, which runs these and adds the benchmarks.
 */
@Command(name = "sps2", mixinStandardHelpOptions = true, version = "sps2 0.1.0",
        description = "Long-prompt LLM serving as an Apache Flink job: sequence-parallel prefill and decode on Kafka.",
        subcommands = {GenerateCommand.class, MakeModelCommand.class, DemoCommand.class, ServeCommand.class, ClientCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input. */
    public static int run(String... args) {
        return run(args, List.of());
    }

    /**
     * Runs a command line of the job's commands and of {@code more} (classes of picocli commands, listed after the
     * job's) and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input.
     */
    public static int run(String[] args, List<Class<?>> more) {
        String name = args.length > 0 ? args[0] : "";
        String[] rest = args.length > 0 ? Arrays.copyOfRange(args, 1, args.length) : args;
        return switch (name) {
            case "generate" -> runFast(name, GenerateCommand.quick(rest), new GenerateCommand(), rest);
            case "make-model" -> runFast(name, MakeModelCommand.quick(rest), new MakeModelCommand(), rest);
            default -> {
                CommandLine cli = new CommandLine(new Main());
                for (Class<?> command : more) {
                    cli.addSubcommand(command);
                }
                yield execute(cli, args);
            }
        };
    }

    /**
     * Runs one of the commands that need neither Flink nor Kafka. picocli builds every subcommand of the tree up
     * front (the others pull in Flink, Kafka and log4j), and its own classes cannot be archived for class-data
     * sharing: together about 0.6 s of a one-token generate. So a plain line of theirs is read without picocli
     * ({@code quick}, from the command's QuickArgs reader; null when that line needs picocli); one that needs
     * picocli (help, a mistake) gets it, for that command alone ({@code fresh}, an instance with its defaults).
     */
    public static int runFast(String name, Callable<Integer> quick, Object fresh, String[] rest) {
        if (quick == null) {
            return execute(new CommandLine(fresh).setCommandName("sps2 " + name), rest);
        }
        try {
            return quick.call();
        } catch (Exception e) {
            return UserErrors.report(e, new java.io.PrintWriter(System.err, true));
        }
    }

    private static int execute(CommandLine cli, String[] args) {
        cli.setExecutionExceptionHandler((e, failed, parsed) -> UserErrors.report(e, failed.getErr()));
        return cli.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
