package sps2.job;

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
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler(new UserErrors());
        return cli.execute(args);
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
