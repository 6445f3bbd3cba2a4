package sps2.job;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import sps2.job.cli.BenchCpuCommand;
import sps2.job.cli.GenerateCommand;
import sps2.job.cli.MakeModelCommand;

/** Entry point of every {@code ./sps2} command. */
@Command(name = "sps2", mixinStandardHelpOptions = true, version = "sps2 0.1.0",
        description = "Long-prompt LLM serving as an Apache Flink job: sequence-parallel prefill and decode on Kafka.",
        subcommands = {GenerateCommand.class, MakeModelCommand.class, BenchCpuCommand.class})
public final class Main implements Runnable {

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input. */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        addSubcommands(cli);
        cli.setExecutionExceptionHandler(new UserErrors());
        return cli.execute(args);
    }

    /** Commands of modules that may not be on the class path of every distribution are added by name. */
    private static void addSubcommands(CommandLine cli) {
        for (String name : new String[] {"sps2.job.cli.DemoCommand", "sps2.job.cli.ServeCommand", "sps2.job.client.ClientCommand",
                "sps2.job.cli.BenchCommand", "sps2.job.cli.BenchAccuracyCommand", "sps2.job.cli.BenchDecodeCommand"}) {
            try {
                cli.addSubcommand(Class.forName(name).getDeclaredConstructor().newInstance());
            } catch (ClassNotFoundException e) {
                // not part of this build
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("Cannot create the command " + name, e);
            }
        }
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}
