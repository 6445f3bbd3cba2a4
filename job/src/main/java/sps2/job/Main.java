package sps2.job;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import sps2.job.cli.BenchAccuracyCommand;
import sps2.job.cli.BenchCommand;
import sps2.job.cli.BenchCpuCommand;
import sps2.job.cli.BenchDecodeCommand;
import sps2.job.cli.DemoCommand;
import sps2.job.cli.GenerateCommand;
import sps2.job.cli.MakeModelCommand;
import sps2.job.cli.ServeCommand;
import sps2.job.client.ClientCommand;

/** Entry point of every {@code ./sps2} command. */
@Command(name = "sps2", mixinStandardHelpOptions = true, version = "sps2 0.1.0",
        description = "Long-prompt LLM serving as an Apache Flink job: sequence-parallel prefill and decode on Kafka.",
        subcommands = {GenerateCommand.class, MakeModelCommand.class, DemoCommand.class, ServeCommand.class, ClientCommand.class,
                BenchCommand.class, BenchAccuracyCommand.class, BenchDecodeCommand.class, BenchCpuCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input. */
    public static int run(String... args) {
        Object standalone = args.length > 0 ? standalone(args[0]) : null;
        CommandLine cli = standalone == null ? new CommandLine(new Main()) : new CommandLine(standalone).setCommandName("sps2 " + args[0]);
        cli.setExecutionExceptionHandler(new UserErrors());
        return cli.execute(standalone == null ? args : java.util.Arrays.copyOfRange(args, 1, args.length));
    }

    /**
     * The commands that need neither Flink nor Kafka, run without the rest of the command tree: picocli builds
     * every subcommand of a tree up front, and the others' options pull in Flink, Kafka and the logging backend
     * (about 0.5 s of a one-token {@code generate}).
     */
    private static Object standalone(String name) {
        return switch (name) {
            case "generate" -> new GenerateCommand();
            case "bench-cpu" -> new BenchCpuCommand();
            case "make-model" -> new MakeModelCommand();
            default -> null;
        };
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
