package sps2.bench;

import java.util.Arrays;
import java.util.List;

import sps2.bench.cli.BenchAccuracyCommand;
import sps2.bench.cli.BenchCommand;
import sps2.bench.cli.BenchCpuCommand;
import sps2.bench.cli.BenchDecodeCommand;
import sps2.bench.cli.BenchSpCommand;

/**
 * Entry point of every {@code ./sps2} command: the job's ({@link sps2.job.Main}) and the benchmarks, which live in
 * this module so that the job and its fat jar carry none of them.
 */
public final class Main {
    private static final List<Class<?>> BENCHMARKS =
            List.of(BenchCommand.class, BenchAccuracyCommand.class, BenchDecodeCommand.class, BenchSpCommand.class, BenchCpuCommand.class);

    private Main() {
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    /** Runs a command line and returns the exit code: 0 success, 1 failure reported by the command, 2 bad input. */
    public static int run(String... args) {
        if (args.length > 0 && args[0].equals("bench-cpu")) {
            // Needs neither Flink nor Kafka, so it starts as generate does (sps2.job.Main.runFast says why).
            String[] rest = Arrays.copyOfRange(args, 1, args.length);
            return sps2.job.Main.runFast("bench-cpu", BenchCpuCommand.quick(rest), new BenchCpuCommand(), rest);
        }
        return sps2.job.Main.run(args, BENCHMARKS);
    }
}
