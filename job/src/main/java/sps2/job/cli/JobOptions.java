package sps2.job.cli;

import java.nio.file.Path;
import java.util.UUID;

import picocli.CommandLine.Option;
import sps2.job.embedded.Logging;
import sps2.operators.JobSettings;

/** Options of the commands that run the sps2 Flink job (demo, serve, bench-decode, bench-sp). */
public final class JobOptions {
    @Option(names = "--tokenizer", description = "Tokenizer file; default: the GGUF's vocabulary or a tokenizer next to the model.")
    public Path tokenizer;

    @Option(names = "--model-name", defaultValue = "default", description = "Name requests may use in their model field (default: ${DEFAULT-VALUE}).")
    public String modelName;

    @Option(names = "--backend", defaultValue = "cpu", converter = SettingConverters.Backend.class, description = "cpu or cuda (default: ${DEFAULT-VALUE}).")
    public JobSettings.BackendKind backend;

    @Option(names = "--mode", defaultValue = "sps2", converter = SettingConverters.Mode.class, description = "sps2 (sequence-parallel prefill and decode) or sarathi (chunked prefill baseline) (default: ${DEFAULT-VALUE}).")
    public JobSettings.Mode mode;

    @Option(names = "--sp-degree", defaultValue = "1", description = "Shards: sequence-parallel degree in sps2 mode, workers in sarathi mode (default: ${DEFAULT-VALUE}).")
    public int spDegree;

    @Option(names = "--csa", defaultValue = "dense", converter = SettingConverters.Csa.class, description = "Sparse attention for remote prefill K/V: dense, strided:D or sink-window:SINKS:WINDOW (default: ${DEFAULT-VALUE}).")
    public sps2.operators.csa.CsaPolicy csa;

    @Option(names = "--append-policy", defaultValue = "tail", converter = SettingConverters.Append.class, description = "Where decode appends KV: tail or least-loaded (default: ${DEFAULT-VALUE}).")
    public JobSettings.AppendPolicy appendPolicy;

    @Option(names = "--chunk-size", defaultValue = "512", description = "Sarathi token budget per iteration (default: ${DEFAULT-VALUE}).")
    public int chunkSize;

    @Option(names = "--min-segment", defaultValue = "64", description = "Prompts are split only into segments of at least this many tokens (default: ${DEFAULT-VALUE}).")
    public int minSegment;

    @Option(names = "--kv-blocks", defaultValue = "4096", description = "KV blocks per shard (default: ${DEFAULT-VALUE}).")
    public int kvBlocks;

    @Option(names = "--block-size", defaultValue = "16", description = "Tokens per KV block (default: ${DEFAULT-VALUE}).")
    public int blockSize;

    @Option(names = "--max-tokens-cap", defaultValue = "4096", description = "Largest maxTokens a request may ask for (default: ${DEFAULT-VALUE}).")
    public int maxTokensCap;

    @Option(names = "--threads-per-shard", defaultValue = "0", description = "CPU backend threads per shard (0 = cores / shards).")
    public int threadsPerShard;

    @Option(names = "--checkpoint-interval",
            description = "Checkpoint interval in ms; 0 disables checkpointing (default: 10000 for serve, 0 for the embedded commands).")
    public Long checkpointIntervalMs;

    @Option(names = "--kv-recovery", defaultValue = "recompute", converter = SettingConverters.Recovery.class,
            description = "After a restart: recompute (prefill running requests again from their token history) or snapshot (keep K/V values in keyed state and put them back; sps2 mode) (default: ${DEFAULT-VALUE}).")
    public JobSettings.KvRecovery kvRecovery;

    @Option(names = "--kernels", defaultValue = "fast", converter = SettingConverters.Kernels.class,
            description = "CUDA kernels: invariant (a row's bits do not depend on its batch or chunking: the same tokens in every mode and after "
                    + "a recovery) or fast (GEMV and split-K for small batches, tokens may differ with batching); invariant has not yet run on a GPU (default: ${DEFAULT-VALUE}).")
    public JobSettings.Kernels kernels;

    @Option(names = "--verbose", description = "Show Flink's and Kafka's own logs.")
    public boolean verbose;

    /** Sets the console's log levels from --verbose (Logging.configure): first thing in a command. */
    public void configureLogging() {
        Logging.configure(verbose);
    }

    /** The checkpoint interval asked for, or the command's own default when none was. */
    public long checkpointIntervalMs(long commandDefault) {
        if (checkpointIntervalMs != null && checkpointIntervalMs < 0) {
            throw new sps2.job.UserException("--checkpoint-interval must be 0 (off) or a positive number of ms, not " + checkpointIntervalMs + ".");
        }
        return checkpointIntervalMs == null ? commandDefault : checkpointIntervalMs;
    }

    public JobSettings settings(Path model) {
        int threads = threadsPerShard > 0 ? threadsPerShard : Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, spDegree));
        return new JobSettings(model.toAbsolutePath().toString(), tokenizer == null ? null : tokenizer.toAbsolutePath().toString(), modelName,
                backend, mode, spDegree, csa, appendPolicy, chunkSize, minSegment, kvBlocks, blockSize, maxTokensCap, Integer.MAX_VALUE,
                "sps2-" + UUID.randomUUID(), threads, kvRecovery, kernels);
    }
}
