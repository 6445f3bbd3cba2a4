package sps2.bench.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;

import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sps2.bench.trace.BenchReport;
import sps2.bench.trace.BenchRequest;
import sps2.bench.trace.ModeRunner;
import sps2.bench.trace.ModeSummary;
import sps2.bench.trace.Plots;
import sps2.bench.trace.QuietLogs;
import sps2.bench.trace.RequestOutcome;
import sps2.bench.trace.TraceEntry;
import sps2.bench.trace.TraceReader;
import sps2.bench.trace.Workload;
import sps2.job.UserException;
import sps2.job.cli.DefaultModel;
import sps2.job.cli.SettingConverters;
import sps2.job.embedded.EmbeddedKafka;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.operators.JobSettings;

/**
 * Trace-driven benchmark: replays a serving trace open-loop through real Kafka topics into the sps2 job
 * (sequence-parallel) and/or its Sarathi-Serve mode, and reports client-side latency and throughput.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Replay a serving trace (JSONL: timestamp, input_length, output_length, hash_ids) open-loop against the job through an "
                + "in-JVM Kafka broker and an embedded Flink cluster, in sps2 mode, Sarathi mode or both, and report TTFT, TBT, TPOT, "
                + "end-to-end latency, throughput and goodput (per-request CSV, JSON summary, PNG charts and an HTML page).")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--trace", required = true, description = "Trace file (JSONL in the Mooncake format).")
    Path trace;

    @Option(names = "--mode", defaultValue = "both", description = "sps2, sarathi or both (one after the other on the same requests; default: ${DEFAULT-VALUE}).")
    String mode;

    @Option(names = "--sp-degree", defaultValue = "2", description = "Shards of sps2 mode, and workers of Sarathi mode unless --sarathi-workers is given (default: ${DEFAULT-VALUE}).")
    int spDegree;

    @Option(names = "--sarathi-workers", description = "Workers of Sarathi mode (default: the SP degree, so both modes get the same hardware).")
    Integer sarathiWorkers;

    @Option(names = "--model", description = "Model checkpoint (default: ../shared/" + DefaultModel.RELATIVE + " when it exists).")
    Path model;

    @Option(names = "--tokenizer", description = "Tokenizer file, when the model does not carry one and none lies beside it.")
    Path tokenizer;

    @Option(names = "--backend", defaultValue = "cpu", converter = SettingConverters.Backend.class, description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    JobSettings.BackendKind backend;

    @Option(names = "--kernels", defaultValue = "fast", converter = SettingConverters.Kernels.class,
            description = "CUDA kernels: invariant or fast (see `serve --help`) (default: ${DEFAULT-VALUE}).")
    JobSettings.Kernels kernels;

    @Option(names = "--max-requests", defaultValue = "100", description = "Replay the first N requests of the trace; 0 = all (default: ${DEFAULT-VALUE}).")
    int maxRequests;

    @Option(names = "--time-scale", defaultValue = "1.0", description = "Multiply arrival times by X (0.5 = twice the request rate; default: ${DEFAULT-VALUE}).")
    double timeScale;

    @Option(names = "--length-scale", defaultValue = "1.0", description = "Multiply input and output lengths and the 512-token prefix block by X (default: ${DEFAULT-VALUE}).")
    double lengthScale;

    @Option(names = "--max-input-tokens", defaultValue = "0", description = "Clip prompts to N tokens after scaling; 0 = only the model's context (default: ${DEFAULT-VALUE}).")
    int maxInputTokens;

    @Option(names = "--slo-ttft", defaultValue = "2000", description = "TTFT SLO of goodput in ms (default: ${DEFAULT-VALUE}).")
    double sloTtft;

    @Option(names = "--slo-tbt", defaultValue = "100", description = "TBT SLO of goodput in ms, against each request's mean gap (TPOT) (default: ${DEFAULT-VALUE}).")
    double sloTbt;

    @Option(names = "--out", description = "Output folder (default: out/bench-<date-time>).")
    Path out;

    @Option(names = "--chunk-size", description = "Sarathi token budget per iteration (default: 512 x length scale, at least 16).")
    Integer chunkSize;

    @Option(names = "--csa", defaultValue = "dense", converter = SettingConverters.Csa.class, description = "sps2 sparse attention for remote K/V: dense, strided:D or sink-window:S:W (default: ${DEFAULT-VALUE}).")
    sps2.operators.csa.CsaPolicy csa;

    @Option(names = "--kv-blocks", description = "KV blocks per shard (default: room for every request at once, within --kv-memory-gb).")
    Integer kvBlocks;

    @Option(names = "--kv-memory-gb", defaultValue = "2", description = "Bound on the default KV pool, all shards together, in GiB (default: ${DEFAULT-VALUE}).")
    double kvMemoryGb;

    @Option(names = "--block-size", defaultValue = "16", description = "Tokens per KV block (default: ${DEFAULT-VALUE}).")
    int blockSize;

    @Option(names = "--threads-per-shard", description = "CPU backend threads per shard (default: cores / shards, at least 1).")
    Integer threadsPerShard;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the synthetic prompt tokens (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--timeout", defaultValue = "30", description = "Minutes a mode's replay may take before the run fails (default: ${DEFAULT-VALUE}).")
    long timeoutMinutes;

    @Option(names = "--warmup-requests", defaultValue = "4", description = "Requests of the median prompt length sent at once before each mode's replay, to start the job and warm the JIT (default: ${DEFAULT-VALUE}).")
    int warmupRequests;

    @Option(names = {"-v", "--verbose"}, description = "Keep the job's, Flink's and Kafka's logs on the console.")
    boolean verbose;

    @Option(names = "--no-progress", description = "Do not draw progress bars.")
    boolean noProgress;

    @Override
    public Integer call() throws Exception {
        List<String> modes = switch (mode) {
            case "both" -> List.of("sps2", "sarathi");
            case "sps2", "sarathi" -> List.of(mode);
            default -> throw new UserException("Unknown --mode '" + mode + "': use sps2, sarathi or both.");
        };
        if (spDegree < 1 || (sarathiWorkers != null && sarathiWorkers < 1)) {
            throw new UserException("--sp-degree and --sarathi-workers must be at least 1.");
        }
        if (warmupRequests < 1) {
            throw new UserException("--warmup-requests must be at least 1: the replay starts once the job has answered one.");
        }
        if (blockSize < 1 || timeoutMinutes < 1 || !(kvMemoryGb > 0)) {
            throw new UserException("--block-size, --timeout and --kv-memory-gb must be positive.");
        }
        try (QuietLogs quiet = QuietLogs.apply(verbose)) {
            return run(modes);
        }
    }

    private int run(List<String> modes) throws Exception {
        Path modelPath = resolveModel();
        ModelConfig config = ModelLoader.load(modelPath).config();
        System.err.printf(Locale.ROOT, "Model %s: %d layers, dim %d, %d heads (%d KV), vocabulary %d, context %d.%n", modelPath.getFileName(),
                config.nLayers(), config.dim(), config.nHeads(), config.nKvHeads(), config.vocabSize(), config.contextLength());
        int context = config.contextLength();
        Workload.Options options = new Workload.Options(timeScale, lengthScale, maxInputTokens, context, config.vocabSize(), seed);
        List<TraceEntry> entries = TraceReader.read(trace, maxRequests);
        Workload workload = Workload.build(entries, options);
        describe(workload, context);

        int workers = sarathiWorkers != null ? sarathiWorkers : spDegree;
        int chunk = chunkSize != null ? chunkSize : (int) Math.max(16, Math.round(512 * lengthScale));
        int[] sorted = workload.sortedPromptLengths();
        BenchRequest warmupShape = Workload.warmup("warmup", sorted[sorted.length / 2], 8, options);
        RequestOutcome.Slo slo = new RequestOutcome.Slo(sloTtft, sloTbt);
        Path outDir = out != null ? out : Path.of("out", "bench-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        Files.createDirectories(outDir);

        Map<String, List<RequestOutcome>> outcomes = new LinkedHashMap<>();
        List<ModeSummary> summaries = new ArrayList<>();
        Map<String, Object> settingsInfo = new LinkedHashMap<>();
        try (EmbeddedKafka kafka = EmbeddedKafka.start()) {
            ModeRunner runner = new ModeRunner(kafka, Duration.ofMinutes(timeoutMinutes));
            for (String m : modes) {
                int shards = m.equals("sps2") ? spDegree : workers;
                JobSettings settings = settings(modelPath, m, shards, chunk, workload, config);
                settingsInfo.put(m, settingsDescription(settings));
                List<BenchRequest> warmups = new ArrayList<>();
                for (int i = 0; i < warmupRequests; i++) {
                    warmups.add(Workload.warmup("warmup-" + m + "-" + i, warmupShape.promptLength(), 8, options));
                }
                System.err.printf(Locale.ROOT, "Running %d requests in %s mode on %d %s (%d KV blocks of %d tokens each); starting the job and "
                        + "waiting for %d warm-up requests ...%n", workload.requests().size(), m, shards, m.equals("sps2") ? "shard(s)" : "worker(s)",
                        settings.kvBlocks(), settings.blockSize(), warmups.size());
                ModeRunner.ModeRun run;
                ProgressBar[] bar = {null};
                try {
                    run = runner.run(settings, workload, warmups, (finished, total, tokens, expected) -> {
                        if (bar[0] == null && !noProgress) {
                            bar[0] = progressBar(m, total);
                        }
                        if (bar[0] != null) {
                            bar[0].stepTo(finished);
                            bar[0].setExtraMessage(String.format(Locale.ROOT, " tokens %d/%d", tokens, expected));
                        }
                    });
                } finally {
                    if (bar[0] != null) {
                        bar[0].close();
                    }
                }
                outcomes.put(m, run.outcomes());
                summaries.add(ModeSummary.of(m, shards, run.outcomes(), slo));
                System.gc();
            }
        }

        Map<String, Object> description = new LinkedHashMap<>();
        description.put("trace", trace.toString());
        description.put("model", modelPath.toString());
        description.put("backend", backend.toString());
        description.put("requests", workload.requests().size());
        description.put("time_scale", timeScale);
        description.put("length_scale", lengthScale);
        description.put("prefix_block_tokens", round(workload.blockTokens()));
        description.put("prompt_tokens", workload.promptTokens());
        description.put("output_tokens", workload.outputTokens());
        description.put("shared_prefix_tokens", workload.sharedPrefixTokens());
        description.put("clipped_requests", workload.clipped());
        description.put("context_tokens", context);
        description.put("arrival_span_s", round(workload.spanMs() / 1000));
        description.put("slo_ttft_ms", sloTtft);
        description.put("slo_tbt_ms", sloTbt);
        description.put("cores", Runtime.getRuntime().availableProcessors());
        description.put("settings", settingsInfo);
        if (outcomes.size() == 2) {
            description.put("identical_outputs", identicalOutputs(outcomes.get("sps2"), outcomes.get("sarathi")) + "/" + workload.requests().size());
        }

        BenchReport.writeCsv(outDir.resolve(BenchReport.CSV), outcomes, slo);
        Map<String, Path> charts;
        try {
            charts = Plots.write(outDir, outcomes);
        } catch (LinkageError | InternalError e) {
            // A server runtime without font libraries (seen on the GPU machine: libharfbuzz missing) cannot draw text.
            System.err.println("warning: the charts could not be drawn (" + e + "); the report holds the tables only.");
            charts = Map.of();
        }
        BenchReport.writeJson(outDir.resolve(BenchReport.JSON), description, summaries);
        BenchReport.writeHtml(outDir.resolve(BenchReport.HTML), "sps2 trace benchmark: " + trace.getFileName(), description, summaries, charts);

        System.out.println();
        System.out.print(BenchReport.table(summaries));
        if (outcomes.size() == 2) {
            System.out.println("Ratios are sarathi / sps2: above 1 for a latency, or below 1 for a throughput, means sps2 is better.");
            System.out.println("Generated tokens identical in both modes for " + description.get("identical_outputs") + " requests.");
        }
        System.out.println("Wrote " + outDir.resolve(BenchReport.CSV) + ", " + outDir.resolve(BenchReport.JSON) + " and the report "
                + outDir.resolve(BenchReport.HTML) + " (charts: " + String.join(", ", charts.values().stream().map(p -> p.getFileName().toString()).toList()) + ").");
        int failed = summaries.stream().mapToInt(ModeSummary::failed).sum();
        if (failed > 0) {
            System.err.println("error: " + failed + " requests did not complete; the first reason: "
                    + summaries.stream().map(ModeSummary::firstError).filter(e -> e != null).findFirst().orElse("unknown") + ".");
            return 1;
        }
        return 0;
    }

    /** The model to use: --model, or the shared stories260K when it exists. */
    private Path resolveModel() {
        if (model != null) {
            if (!Files.exists(model)) {
                throw new UserException("The model file " + model + " does not exist.");
            }
            return model;
        }
        Path p = DefaultModel.find().orElseThrow(() -> new UserException("Give --model: there is no default model at "
                + DefaultModel.candidates().get(DefaultModel.candidates().size() - 1) + "."));
        System.err.println("Using the default model " + p + " (give --model to choose another).");
        return p;
    }

    private void describe(Workload w, int context) {
        int[] lengths = w.sortedPromptLengths();
        System.err.printf(Locale.ROOT,
                "Workload: %d requests of %s arriving over %.1f s; prompts %d..%d tokens (median %d, %d in all, %.0f%% in shared prefix blocks "
                        + "of %.2f tokens), %d tokens to generate.%n",
                w.requests().size(), trace.getFileName(), w.spanMs() / 1000, lengths[0], lengths[lengths.length - 1], lengths[lengths.length / 2],
                w.promptTokens(), 100.0 * w.sharedPrefixTokens() / Math.max(1, w.promptTokens()), w.blockTokens(), w.outputTokens());
        if (w.clipped() > 0) {
            System.err.printf(Locale.ROOT, "Clipped %d requests so that prompt + output fit the model's context of %d tokens%s.%n", w.clipped(),
                    context, maxInputTokens > 0 ? " and prompts stay within --max-input-tokens " + maxInputTokens : "");
        }
    }

    private JobSettings settings(Path modelPath, String m, int shards, int chunk, Workload w, ModelConfig c) {
        int blocks;
        if (kvBlocks != null) {
            blocks = kvBlocks;
        } else {
            long all = 1;
            long largest = 0;
            for (BenchRequest r : w.requests()) {
                long b = ceilDiv(r.promptLength() + r.maxTokens(), blockSize) + shards;
                all += b;
                largest = Math.max(largest, b);
            }
            all += (ceilDiv(w.maxPromptLength() + 8, blockSize) + shards) * warmupRequests; // the warm-up requests
            long bytesPerBlock = (long) blockSize * c.nLayers() * 2L * c.kvDim() * Float.BYTES;
            long budget = (long) (kvMemoryGb * (1L << 30) / shards / bytesPerBlock);
            long chosen = Math.max(Math.min(all, budget), largest + 1);
            if (chosen > Integer.MAX_VALUE / 2) {
                throw new UserException("The KV pool would need " + chosen + " blocks per shard; give --kv-blocks or fewer requests.");
            }
            if (chosen < all) {
                System.err.printf(Locale.ROOT, "The KV pool holds %d of the %d blocks all requests would need at once (--kv-memory-gb %.1f); "
                        + "requests wait for KV space when it is full.%n", chosen, all, kvMemoryGb);
            }
            blocks = (int) Math.max(2, chosen);
        }
        int cores = Runtime.getRuntime().availableProcessors();
        int threads = threadsPerShard != null ? threadsPerShard : Math.max(1, cores / shards);
        return new JobSettings(modelPath.toAbsolutePath().toString(), tokenizer == null ? null : tokenizer.toAbsolutePath().toString(), "default",
                backend, JobSettings.Mode.parse(m), shards, csa, JobSettings.AppendPolicy.TAIL, chunk, 16, blocks, blockSize, c.contextLength(), c.contextLength(),
                "bench-" + m + "-" + UUID.randomUUID(), threads, JobSettings.KvRecovery.RECOMPUTE, kernels);
    }

    private static Map<String, Object> settingsDescription(JobSettings s) {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("shards", s.shards());
        d.put("kernels", s.backend() == JobSettings.BackendKind.CUDA ? s.kernels().toString() : "cpu (invariant)");
        d.put("csa", s.csa().name());
        d.put("chunk_size", s.chunkSize());
        d.put("min_segment", s.minSegment());
        d.put("kv_blocks_per_shard", s.kvBlocks());
        d.put("block_size", s.blockSize());
        d.put("threads_per_shard", s.threadsPerShard());
        return d;
    }

    private ProgressBar progressBar(String name, int requests) {
        if (noProgress) {
            return null;
        }
        return new ProgressBarBuilder().setTaskName(name).setInitialMax(requests).setUnit(" req", 1).setStyle(ProgressBarStyle.ASCII)
                .setUpdateIntervalMillis(250).setConsumer(new ConsoleProgressBarConsumer(System.err)).build();
    }

    private static int identicalOutputs(List<RequestOutcome> a, List<RequestOutcome> b) {
        int same = 0;
        for (int i = 0; i < Math.min(a.size(), b.size()); i++) {
            if (a.get(i).completed() && b.get(i).completed() && Arrays.equals(a.get(i).tokenIds(), b.get(i).tokenIds())) {
                same++;
            }
        }
        return same;
    }

    private static long ceilDiv(long a, long b) {
        return (a + b - 1) / b;
    }

    private static double round(double v) {
        return Math.round(v * 1000) / 1000.0;
    }
}
