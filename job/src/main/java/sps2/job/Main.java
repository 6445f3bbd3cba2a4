package sps2.job;

import java.util.concurrent.Callable;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import sps2.job.cli.BenchAccuracyCommand;
import sps2.job.cli.BenchCommand;
import sps2.job.cli.BenchCpuCommand;
import sps2.job.cli.BenchDecodeCommand;
import sps2.job.cli.BenchSpCommand;
import sps2.job.cli.DemoCommand;
import sps2.job.cli.GenerateCommand;
import sps2.job.cli.MakeModelCommand;
import sps2.job.cli.ServeCommand;
import sps2.job.client.ClientCommand;

/** Entry point of every {@code ./sps2} command. */
@Command(name = "sps2", mixinStandardHelpOptions = true, version = "sps2 0.1.0",
        description = "Long-prompt LLM serving as an Apache Flink job: sequence-parallel prefill and decode on Kafka.",
        subcommands = {GenerateCommand.class, MakeModelCommand.class, DemoCommand.class, ServeCommand.class, ClientCommand.class,
                BenchCommand.class, BenchAccuracyCommand.class, BenchDecodeCommand.class, BenchSpCommand.class, BenchCpuCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input. */
    public static int run(String... args) {
        String name = args.length > 0 ? args[0] : "";
        String[] rest = args.length > 0 ? java.util.Arrays.copyOfRange(args, 1, args.length) : args;
        // The commands that need neither Flink nor Kafka. picocli builds every subcommand of the tree up front (the
        // others pull in Flink, Kafka and log4j), and its own classes cannot be archived for class-data sharing:
        // together about 0.6 s of a one-token generate. So a plain line of theirs is read without picocli
        // (QuickArgs); one that needs picocli (help, a mistake) gets it, for that command alone.
        Callable<Integer> quick = switch (name) {
            case "generate" -> GenerateCommand.quick(rest);
            case "bench-cpu" -> BenchCpuCommand.quick(rest);
            case "make-model" -> MakeModelCommand.quick(rest);
            default -> null;
        };
        if (quick != null) {
            try {
                return quick.call();
            } catch (Exception e) {
                java.io.PrintWriter err = new java.io.PrintWriter(System.err, true);
                return UserErrors.report(e, err);
            }
        }
        Object alone = switch (name) {
            case "generate" -> new GenerateCommand();
            case "bench-cpu" -> new BenchCpuCommand();
            case "make-model" -> new MakeModelCommand();
            default -> null;
        };
        CommandLine cli = alone == null ? new CommandLine(new Main()) : new CommandLine(alone).setCommandName("sps2 " + name);
        cli.setExecutionExceptionHandler((e, failed, parsed) -> UserErrors.report(e, failed.getErr()));
        return cli.execute(alone == null ? args : rest);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
