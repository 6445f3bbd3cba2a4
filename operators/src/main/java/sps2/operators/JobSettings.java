package sps2.operators;

import java.io.Serializable;

/**
 * Everything the operators of one sps2 job need to know, fixed when the job graph is built.
 *
 * @param modelPath       checkpoint (GGUF, llama2.c or safetensors) every shard loads
 * @param tokenizerPath   tokenizer file, or null to take it from the model (GGUF) or next to it
 * @param modelName       name requests may give in their {@code model} field
 * @param backend         "cpu" or "cuda"
 * @param mode            "sps2" (sequence-parallel prefill and decode) or "sarathi" (chunked prefill, one worker per request)
 * @param shards          parallelism of the stage operators: SP degree in sps2 mode, worker count in sarathi mode
 * @param csa             sparse-attention policy for remote prefill K/V (see {@code sps2.operators.csa.CsaPolicy#parse})
 * @param appendPolicy    where decode appends new KV: "tail" (the last segment's shard) or "least-loaded"
 * @param chunkSize       sarathi: token budget of one iteration
 * @param minSegment      sps2: prompts shorter than this many tokens per shard are not split
 * @param kvBlocks        KV blocks per shard
 * @param blockSize       tokens per KV block
 * @param maxTokensCap    largest {@code maxTokens} a request may ask for
 * @param contextLength   longest sequence the job accepts (at most the model's)
 * @param runtimeId       unique per job instance; names in-JVM registries (feedback edge, shard runtimes)
 * @param threadsPerShard CPU backend threads per shard
 * @param kvRecovery      how KV comes back after a restore: "recompute" (prefill again from the token
 *                        history) or "snapshot" (K/V values are kept in keyed state and put back on the device)
 */
public record JobSettings(
        String modelPath,
        String tokenizerPath,
        String modelName,
        String backend,
        String mode,
        int shards,
        String csa,
        String appendPolicy,
        int chunkSize,
        int minSegment,
        int kvBlocks,
        int blockSize,
        int maxTokensCap,
        int contextLength,
        String runtimeId,
        int threadsPerShard,
        String kvRecovery) implements Serializable {

    /** Settings with KV recovery by recomputation. */
    public JobSettings(String modelPath, String tokenizerPath, String modelName, String backend, String mode, int shards, String csa,
            String appendPolicy, int chunkSize, int minSegment, int kvBlocks, int blockSize, int maxTokensCap, int contextLength,
            String runtimeId, int threadsPerShard) {
        this(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks, blockSize,
                maxTokensCap, contextLength, runtimeId, threadsPerShard, "recompute");
    }

    public JobSettings {
        if (shards < 1) {
            throw new IllegalArgumentException("The number of shards must be at least 1, got " + shards);
        }
        if (!mode.equals("sps2") && !mode.equals("sarathi")) {
            throw new IllegalArgumentException("Unknown mode '" + mode + "': use sps2 or sarathi");
        }
        if (!appendPolicy.equals("tail") && !appendPolicy.equals("least-loaded")) {
            throw new IllegalArgumentException("Unknown KV append policy '" + appendPolicy + "': use tail or least-loaded");
        }
        if (!kvRecovery.equals("recompute") && !kvRecovery.equals("snapshot")) {
            throw new IllegalArgumentException("Unknown KV recovery mode '" + kvRecovery + "': use recompute or snapshot");
        }
        if (kvRecovery.equals("snapshot") && mode.equals("sarathi")) {
            throw new IllegalArgumentException("KV snapshot recovery is implemented for sps2 mode only; use --kv-recovery recompute with sarathi");
        }
        if (chunkSize < 1 || blockSize < 1 || kvBlocks < 2) {
            throw new IllegalArgumentException("chunk size, block size and KV blocks must be positive (at least 2 blocks)");
        }
    }

    public boolean sarathi() {
        return mode.equals("sarathi");
    }

    /** Whether stages keep K/V values in keyed state so a restore puts them back instead of recomputing. */
    public boolean snapshotKv() {
        return kvRecovery.equals("snapshot");
    }

    public JobSettings withKvRecovery(String recovery) {
        return new JobSettings(modelPath, tokenizerPath, modelName, backend, mode, shards, csa, appendPolicy, chunkSize, minSegment, kvBlocks,
                blockSize, maxTokensCap, contextLength, runtimeId, threadsPerShard, recovery);
    }
}
