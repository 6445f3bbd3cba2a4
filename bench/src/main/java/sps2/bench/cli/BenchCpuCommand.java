package sps2.bench.cli;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.cpu.CpuBackend;
import sps2.job.UserException;
import sps2.job.cli.QuickArgs;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomWeights;

/** Prefill and decode throughput of the CPU backend, and the heap allocated per decoded token. */
@Command(name = "bench-cpu", mixinStandardHelpOptions = true, description = "Measure CPU backend prefill and decode tokens/s.")
public final class BenchCpuCommand implements Callable<Integer> {
    @Option(names = "--model", description = "Model files to measure (repeatable).")
    List<Path> models = new ArrayList<>();

    @Option(names = "--shape", description = "Random-weight shapes to measure (repeatable; default: stories260k and stories15m when no --model is given).")
    List<String> shapes = new ArrayList<>();

    @Option(names = "--prompt-tokens", description = "Prefill length (default: ${DEFAULT-VALUE}).")
    int promptTokens = 200;

    @Option(names = "--decode-tokens", description = "Decode steps timed (default: ${DEFAULT-VALUE}).")
    int decodeTokens = 50;

    @Option(names = "--threads", description = "Threads (0 = all cores).")
    int threads = 0;

    @Option(names = "--repeats", description = "Timed repetitions after the warm-up; the median is reported (default: ${DEFAULT-VALUE}).")
    int repeats = 3;

    @Option(names = "--warmup-seconds", description = "Untimed rounds for at least this long first, so that C2 has"
            + " compiled the kernels: on 2 busy cores that takes seconds (default: ${DEFAULT-VALUE}).")
    double warmupSeconds = 3;

    /** This command from a plain line without picocli, or null when picocli must parse it (QuickArgs). */
    public static BenchCpuCommand quick(String[] args) {
        BenchCpuCommand c = new BenchCpuCommand();
        QuickArgs a = new QuickArgs(args);
        try {
            while (a.next()) {
                switch (a.name()) {
                    case "--model" -> c.models.add(Path.of(a.each()));
                    case "--shape" -> c.shapes.add(a.each());
                    case "--prompt-tokens" -> c.promptTokens = a.integer();
                    case "--decode-tokens" -> c.decodeTokens = a.integer();
                    case "--threads" -> c.threads = a.integer();
                    case "--repeats" -> c.repeats = a.integer();
                    case "--warmup-seconds" -> c.warmupSeconds = a.doubleValue();
                    default -> throw new QuickArgs.Unclear();
                }
            }
            return c;
        } catch (QuickArgs.Unclear e) {
            return null;
        }
    }

    @Override
    public Integer call() {
        if (models.isEmpty() && shapes.isEmpty()) {
            shapes = List.of("stories260k", "stories15m");
        }
        if (repeats < 1 || decodeTokens < 1) {
            throw new UserException("--repeats and --decode-tokens must be at least 1.");
        }
        int cores = Runtime.getRuntime().availableProcessors();
        int t = threads > 0 ? threads : cores;
        System.out.printf("CPU backend on %d cores, %d threads, %d-token prompt, %d decode steps (median of %d after %.0f s of warm-up)%n", cores, t,
                promptTokens, decodeTokens, repeats, warmupSeconds);
        System.out.printf("%-28s %12s %14s %14s %16s%n", "model", "params (M)", "prefill tok/s", "decode tok/s", "heap B/decoded tok");
        for (Path p : models) {
            report(p.getFileName().toString(), ModelLoader.load(p), t);
        }
        for (String s : shapes) {
            if (!ModelShapes.names().contains(s)) {
                throw new UserException("Unknown shape '" + s + "'; known shapes: " + String.join(", ", ModelShapes.names()) + ".");
            }
            report(s + " (random)", RandomWeights.generate(ModelShapes.get(s), DType.F32, 1), t);
        }
        return 0;
    }

    private void report(String name, ModelWeights w, int threads) {
        ModelConfig c = w.config();
        int prompt = Math.min(promptTokens, c.contextLength() - decodeTokens - 1);
        if (prompt < 1) {
            throw new UserException("The model's context of " + c.contextLength() + " is too short for " + decodeTokens + " decode steps.");
        }
        long params = 0;
        for (var t : w.tensors().values()) {
            params += t.size();
        }
        SplittableRandom rnd = new SplittableRandom(3);
        int[] tokens = new int[prompt];
        for (int i = 0; i < prompt; i++) {
            tokens[i] = rnd.nextInt(c.vocabSize());
        }
        double[] prefill = new double[repeats];
        double[] decode = new double[repeats];
        double bytesPerToken = Double.NaN;
        try (CpuBackend b = new CpuBackend(threads); LlamaModel m = new LlamaModel(b, w, null)) {
            long warmupEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
            do {
                round(m, tokens);
            } while (System.nanoTime() < warmupEnd);
            for (int r = 0; r < repeats; r++) {
                long[] t = round(m, tokens);
                prefill[r] = prompt / (t[0] / 1e9);
                decode[r] = decodeTokens / (t[1] / 1e9);
                bytesPerToken = t[2] / (double) decodeTokens;
            }
        }
        System.out.printf("%-28s %12.2f %14.0f %14.1f %16.0f%n", name, params / 1e6, median(prefill), median(decode), bytesPerToken);
    }

    /** One prefill of the prompt and decodeTokens steps: {prefill ns, decode ns, heap bytes allocated while decoding}. */
    private long[] round(LlamaModel m, int[] tokens) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Sequence seq = new Sequence(m, tokens.length + decodeTokens + 1, 512)) {
            long t0 = System.nanoTime();
            seq.forward(tokens);
            long t1 = System.nanoTime();
            int[] one = new int[1];
            long a0 = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < decodeTokens; i++) {
                one[0] = tokens[i % tokens.length];
                seq.forward(one);
            }
            long a1 = mx.getCurrentThreadAllocatedBytes();
            long t2 = System.nanoTime();
            return new long[] {t1 - t0, t2 - t1, a1 - a0};
        }
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        java.util.Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }
}
