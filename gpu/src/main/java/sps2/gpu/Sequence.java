package sps2.gpu;

import sps2.model.sampler.SamplingParams;

/**
 * One sequence generated on one device: its own KV pool and workspace, prefill in chunks of up to the
 * workspace capacity, then one token per step. This is the single-process reference path
 * ({@code ./sps2 generate}); the distributed modes run the same {@link LlamaModel} stages.
 */
public final class Sequence implements AutoCloseable {
    private static final int BLOCK_SIZE = 16;

    private final LlamaModel model;
    private final LlamaModel.Workspace ws;
    private final KvPool pool;
    private final int[] blockTable;
    private final int maxTokens;
    private final float[] logits;
    private int length;

    /**
     * @param maxTokens longest sequence this instance will hold (prompt plus generated tokens)
     * @param chunk     most tokens processed in one forward call during prefill
     */
    public Sequence(LlamaModel model, int maxTokens, int chunk) {
        if (maxTokens > model.config().contextLength()) {
            throw new IllegalArgumentException("A sequence of " + maxTokens + " tokens exceeds the model context of "
                    + model.config().contextLength());
        }
        this.model = model;
        this.maxTokens = maxTokens;
        this.ws = model.workspace(Math.max(1, Math.min(chunk, maxTokens)));
        this.pool = model.kvPool(maxTokens, BLOCK_SIZE);
        this.blockTable = new int[pool.blocks()];
        for (int b = 0; b < blockTable.length; b++) {
            blockTable[b] = b;
        }
        this.logits = new float[model.config().vocabSize()];
    }

    public int length() {
        return length;
    }

    /** Feeds tokens (prompt or generated) and returns the logits after the last one (a shared array). */
    public float[] forward(int[] tokens) {
        if (run(tokens)) {
            model.backend().read(ws.logits, 0, logits, 0, 1);
        }
        return logits;
    }

    /**
     * Feeds tokens (at least one) and returns the next token, drawn from the logits after the last one at the
     * position that follows it ({@link #length()} after the call), through {@link Backend#sample}: the CUDA
     * backend reads back only the token id, not the logits row.
     */
    public int next(int[] tokens, SamplingParams params) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("Sampling the next token needs at least one token to feed");
        }
        run(tokens);
        return model.backend().sample(ws.logits, 1, new SamplingParams[] {params}, new int[] {length})[0];
    }

    /** Runs the model over the tokens; true when the last one's logits are in ws.logits row 0. */
    private boolean run(int[] tokens) {
        boolean haveLogits = false;
        if (length + tokens.length > maxTokens) {
            throw new IllegalArgumentException("The sequence would grow to " + (length + tokens.length) + " tokens, past its limit of " + maxTokens);
        }
        Backend b = model.backend();
        for (int start = 0; start < tokens.length; start += ws.capacity) {
            int n = Math.min(ws.capacity, tokens.length - start);
            int[] ids = new int[n];
            int[] positions = new int[n];
            int[] slots = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = tokens[start + i];
                positions[i] = length + i;
                slots[i] = BlockAllocator.slot(blockTable, BLOCK_SIZE, length + i);
            }
            try (Tensor idT = b.upload(ids); Tensor posT = b.upload(positions); Tensor slotT = b.upload(slots);
                    AttentionBatch.Prepared batch = b.prepare(AttentionBatch.single(n, length + n, blockTable))) {
                model.embed(ws, idT, n);
                for (int l = 0; l < model.config().nLayers(); l++) {
                    model.project(l, ws, posT, n);
                    b.kvWrite(pool, l, ws.k, ws.v, slotT, n);
                    model.attend(l, ws, pool, batch);
                    model.finishLayer(l, ws, n);
                }
                if (start + n == tokens.length) {
                    model.logits(ws, new int[] {n - 1});
                    haveLogits = true;
                }
            }
            length += n;
        }
        return haveLogits;
    }

    /**
     * Stores K and V rows computed elsewhere (e.g. by sequence-parallel shards) for positions
     * {@code startPos .. startPos+n-1} of one layer; call {@link #resumeAt} once every layer is in.
     */
    public void importKv(int layer, Tensor k, Tensor v, int startPos, int n) {
        int[] slots = new int[n];
        for (int i = 0; i < n; i++) {
            slots[i] = BlockAllocator.slot(blockTable, BLOCK_SIZE, startPos + i);
        }
        try (Tensor s = model.backend().upload(slots)) {
            model.backend().kvWrite(pool, layer, k, v, s, n);
        }
    }

    /** Declares the first {@code n} positions cached (after {@link #importKv}); the next token goes to position n. */
    public void resumeAt(int n) {
        if (n > maxTokens) {
            throw new IllegalArgumentException("Cannot resume at " + n + " in a sequence of at most " + maxTokens + " tokens");
        }
        length = n;
    }

    @Override
    public void close() {
        ws.close();
        pool.close();
    }
}
