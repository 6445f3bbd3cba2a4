package sps2.operators;

import java.io.Serializable;

import sps2.gpu.Backend;
import sps2.gpu.Backends;
import sps2.operators.csa.CsaPolicy;

/**
 * Everything the operators of one sps2 job need to know, fixed when the job graph is built.
 *
 * @param modelPath       checkpoint (GGUF, llama2.c or safetensors) every shard loads
 * @param tokenizerPath   tokenizer file, or null to take it from the model (GGUF) or next to it
 * @param modelName       name requests may give in their {@code model} field
 * @param backend         cpu or cuda
 * @param mode            sps2 (sequence-parallel prefill and decode) or sarathi (chunked prefill, one worker per request)
 * @param shards          parallelism of the stage operators: SP degree in sps2 mode, worker count in sarathi mode
 * @param csa             sparse-attention policy for remote prefill K/V (parsed where the job is configured: {@link CsaPolicy#parse})
 * @param appendPolicy    where decode appends new KV: tail (the last segment's shard) or least-loaded
 * @param chunkSize       sarathi: token budget of one iteration
 * @param minSegment      sps2: prompts shorter than this many tokens per shard are not split
 * @param kvBlocks        KV blocks per shard
 * @param blockSize       tokens per KV block
 * @param maxTokensCap    largest {@code maxTokens} a request may ask for
 * @param contextLength   longest sequence the job accepts (at most the model's)
 * @param runtimeId       unique per job instance; names in-JVM registries (feedback edge, shard runtimes)
 * @param threadsPerShard CPU backend threads per shard
 * @param kvRecovery      how KV comes back after a restore: recompute (prefill again from the token
 *                        history) or snapshot (K/V values are kept in keyed state and put back on the device)
 * @param hooks           observers the launcher installs (embedded runs, tests); {@link JobHooks#NONE} otherwise
 */
public record JobSettings(
        String modelPath,
        String tokenizerPath,
        String modelName,
        BackendKind backend,
        Mode mode,
        int shards,
        CsaPolicy csa,
        AppendPolicy appendPolicy,
        int chunkSize,
        int minSegment,
        int kvBlocks,
        int blockSize,
        int maxTokensCap,
        int contextLength,
        String runtimeId,
        int threadsPerShard,
        KvRecovery kvRecovery,
        Kernels kernels,
        JobHooks hooks) implements Serializable {

    /**
     * The CUDA kernels: invariant (a row's bits do not depend on the rest of its batch, its chunking or its
     * restart: the same tokens in every mode and after a recovery) or fast (GEMV and split-K for small batches,
     * a row kernel for decode: faster decode, tokens that may differ with batching). The CPU is always invariant.
     */
    public enum Kernels {
        INVARIANT, FAST;

        public static Kernels parse(String s) {
            return JobSettings.parse(Kernels.class, s, "kernels");
        }

        @Override
        public String toString() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** How requests are served: sequence-parallel prefill and decode, or the Sarathi-Serve baseline. */
    public enum Mode {
        SPS2, SARATHI;

        public static Mode parse(String s) {
            return JobSettings.parse(Mode.class, s, "mode");
        }

        @Override
        public String toString() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** Where the model runs. */
    public enum BackendKind {
        CPU, CUDA;

        public static BackendKind parse(String s) {
            return JobSettings.parse(BackendKind.class, s, "backend");
        }

        /**
         * The device a shard computes on: on the CPU every shard is its own device (its own backend and threads), on
         * CUDA shard i uses GPU i mod the GPU count, and the shards on one GPU share its backend and weights.
         */
        public int deviceOf(int shard) {
            return this == CUDA ? Backends.cudaDeviceOf(shard) : shard;
        }

        /**
         * Opens this backend on {@code device}; {@code cpuThreads} is the CPU backend's thread count (0: one per
         * processor), {@code kernels} the CUDA backend's kernel set (the CPU's are always invariant).
         */
        public Backend open(int device, int cpuThreads, Kernels kernels) {
            return switch (this) {
                case CPU -> Backends.cpu(cpuThreads);
                case CUDA -> Backends.cuda(device, kernels == Kernels.INVARIANT);
            };
        }

        @Override
        public String toString() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** Which shard of a request stores the KV of its decoded tokens. */
    public enum AppendPolicy {
        TAIL, LEAST_LOADED;

        public static AppendPolicy parse(String s) {
            return JobSettings.parse(AppendPolicy.class, s, "KV append policy");
        }

        @Override
        public String toString() {
            return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        }
    }

    /** How KV comes back after a restore. */
    public enum KvRecovery {
        RECOMPUTE, SNAPSHOT;

        public static KvRecovery parse(String s) {
            return JobSettings.parse(KvRecovery.class, s, "KV recovery mode");
        }

        @Override
        public String toString() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** The constant of {@code type} whose {@code toString()} is {@code s} (its command-line name), or a one-line error. */
    static <E extends Enum<E>> E parse(Class<E> type, String s, String what) {
        for (E e : type.getEnumConstants()) {
            if (e.toString().equals(s == null ? null : s.trim().toLowerCase(java.util.Locale.ROOT))) {
                return e;
            }
        }
        throw new IllegalArgumentException("Unknown " + what + " '" + s + "': use " + java.util.Arrays.stream(type.getEnumConstants())
                .map(Object::toString).collect(java.util.stream.Collectors.joining(" or ")));
    }

    /** Settings without hooks. */
    public JobSettings(String modelPath, String tokenizerPath, String modelName, BackendKind backend, Mode mode, int shards, CsaPolicy csa,
            AppendPolicy appendPolicy, int chunkSize, int minSegment, int kvBlocks, int blockSize, int maxTokensCap, int contextLength,
            String runtimeId, int threadsPerShard, KvRecovery kvRecovery, Kernels kernels) {
        this(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks, blockSize,
                maxTokensCap, contextLength, runtimeId, threadsPerShard, kvRecovery, kernels, JobHooks.NONE);
    }

    /** Settings with KV recovery by recomputation and no hooks. */
    public JobSettings(String modelPath, String tokenizerPath, String modelName, BackendKind backend, Mode mode, int shards, CsaPolicy csa,
            AppendPolicy appendPolicy, int chunkSize, int minSegment, int kvBlocks, int blockSize, int maxTokensCap, int contextLength,
            String runtimeId, int threadsPerShard) {
        this(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks, blockSize,
                maxTokensCap, contextLength, runtimeId, threadsPerShard, KvRecovery.RECOMPUTE);
    }

    /**
     * Settings with the fast kernels (the invariant ones have not yet run on a GPU: docs/gpu-notes.md "Session 4")
     * and no hooks.
     */
    public JobSettings(String modelPath, String tokenizerPath, String modelName, BackendKind backend, Mode mode, int shards, CsaPolicy csa,
            AppendPolicy appendPolicy, int chunkSize, int minSegment, int kvBlocks, int blockSize, int maxTokensCap, int contextLength,
            String runtimeId, int threadsPerShard, KvRecovery kvRecovery) {
        this(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks, blockSize,
                maxTokensCap, contextLength, runtimeId, threadsPerShard, kvRecovery, Kernels.FAST);
    }

    public JobSettings {
        java.util.Objects.requireNonNull(backend, "backend");
        java.util.Objects.requireNonNull(mode, "mode");
        java.util.Objects.requireNonNull(csa, "csa");
        java.util.Objects.requireNonNull(appendPolicy, "appendPolicy");
        java.util.Objects.requireNonNull(kvRecovery, "kvRecovery");
        java.util.Objects.requireNonNull(kernels, "kernels");
        java.util.Objects.requireNonNull(hooks, "hooks");
        if (shards < 1) {
            throw new IllegalArgumentException("The number of shards must be at least 1, got " + shards);
        }
        if (kvRecovery == KvRecovery.SNAPSHOT && mode == Mode.SARATHI) {
            throw new IllegalArgumentException("KV snapshot recovery is implemented for sps2 mode only; use --kv-recovery recompute with sarathi");
        }
        if (chunkSize < 1 || blockSize < 1 || kvBlocks < 2) {
            throw new IllegalArgumentException("chunk size, block size and KV blocks must be positive (at least 2 blocks)");
        }
    }

    public boolean sarathi() {
        return mode == Mode.SARATHI;
    }

    /** Whether shards keep K/V values in keyed state so a restore puts them back instead of recomputing. */
    public boolean snapshotKv() {
        return kvRecovery == KvRecovery.SNAPSHOT;
    }

    public JobSettings withKvRecovery(KvRecovery recovery) {
        return new JobSettings(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks,
                blockSize, maxTokensCap, contextLength, runtimeId, threadsPerShard, recovery, kernels, hooks);
    }

    public JobSettings withKernels(Kernels k) {
        return new JobSettings(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks,
                blockSize, maxTokensCap, contextLength, runtimeId, threadsPerShard, kvRecovery, k, hooks);
    }

    /** The same settings with {@code more} hooks after the ones installed already. */
    public JobSettings withHooks(JobHooks more) {
        return new JobSettings(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks,
                blockSize, maxTokensCap, contextLength, runtimeId, threadsPerShard, kvRecovery, kernels, hooks.andThen(more));
    }
}
