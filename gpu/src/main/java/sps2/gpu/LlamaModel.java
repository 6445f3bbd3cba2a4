package sps2.gpu;

import java.util.function.DoubleConsumer;

import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;
import sps2.model.Rope;

/**
 * The Llama forward pass, written once against {@link Backend} and shared by every mode (single-process
 * generation, the Flink operators of sequence-parallel serving, the Sarathi baseline). It is cut at the
 * points where sequence parallelism exchanges data:
 *
 * <pre>
 *   embed                      x = E[tokens]                                  [n, dim]
 *   for each layer l:
 *     project(l)               xb = rmsnorm(x); q = xb·Wq; k = xb·Wk; v = xb·Wv; RoPE(q, k)
 *     (caller)                 store k, v in the KV cache; attention → att [n, nHeads*headSize]
 *                              (sequence parallelism: own segment, remote partials, LSE merge)
 *     finishLayer(l)           x += att·Wo; x += W2·(silu(W1·rmsnorm(x)) * W3·rmsnorm(x))
 *   logits                     rmsnorm(x[rows]) · Wout                        [rows, vocab]
 * </pre>
 *
 * {@link Sequence} runs the whole loop for one sequence on one device; it is the reference that every
 * distributed mode must match.
 */
public final class LlamaModel implements AutoCloseable {

    /** One transformer block's resident weights. */
    private record Layer(Tensor attnNorm, Tensor wq, Tensor wk, Tensor wv, Tensor wo, Tensor ffnNorm, Tensor w1, Tensor w2, Tensor w3) {
    }

    private final Backend backend;
    private final ModelConfig config;
    private final Tensor embeddings;
    private final Tensor finalNorm;
    private final Tensor output;
    private final Tensor invFreq;
    private final Layer[] layers;

    /**
     * Uploads the weights to the backend.
     *
     * @param progress receives the uploaded fraction 0..1 (for a progress display); may be null
     */
    public LlamaModel(Backend backend, ModelWeights weights, DoubleConsumer progress) {
        this.backend = backend;
        this.config = weights.config();
        int total = config.nLayers() + 2;
        this.embeddings = backend.upload(weights.get("tok_embeddings"));
        report(progress, 1, total);
        this.layers = new Layer[config.nLayers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = new Layer(
                    backend.upload(weights.layer(l, "attention_norm")),
                    backend.upload(weights.layer(l, "wq")),
                    backend.upload(weights.layer(l, "wk")),
                    backend.upload(weights.layer(l, "wv")),
                    backend.upload(weights.layer(l, "wo")),
                    backend.upload(weights.layer(l, "ffn_norm")),
                    backend.upload(weights.layer(l, "w1")),
                    backend.upload(weights.layer(l, "w2")),
                    backend.upload(weights.layer(l, "w3")));
            report(progress, l + 2, total);
        }
        this.finalNorm = backend.upload(weights.get("norm"));
        this.output = weights.tensors().containsKey("output") ? backend.upload(weights.get("output")) : embeddings;
        float[] inv = Rope.inverseFrequencies(config);
        this.invFreq = backend.upload(HostTensor.ofFloats("rope.inv_freq", inv, inv.length));
        report(progress, total, total);
    }

    private static void report(DoubleConsumer progress, int done, int total) {
        if (progress != null) {
            progress.accept(done / (double) total);
        }
    }

    public ModelConfig config() {
        return config;
    }

    public Backend backend() {
        return backend;
    }

    /** Scratch tensors for up to {@code capacity} token rows, reused across steps (no allocation per step). */
    public Workspace workspace(int capacity) {
        return new Workspace(capacity);
    }

    /** A KV pool big enough for {@code tokens} tokens in blocks of {@code blockSize}. */
    public KvPool kvPool(int tokens, int blockSize) {
        int blocks = (tokens + blockSize - 1) / blockSize;
        return backend.allocateKvPool(config.nLayers(), config.kvDim(), blocks, blockSize);
    }

    /** ws.x[0..n) = embedding rows of the tokens. */
    public void embed(Workspace ws, Tensor tokens, int n) {
        ws.check(n);
        backend.embed(ws.x, embeddings, tokens, n);
    }

    /** ws.q, ws.k, ws.v for rows 0..n-1 of ws.x at the given positions (RoPE applied to q and k). */
    public void project(int layer, Workspace ws, Tensor positions, int n) {
        ws.check(n);
        Layer w = layers[layer];
        backend.rmsnorm(ws.xb, ws.x, w.attnNorm, n, config.rmsEps());
        backend.matmul(new Tensor[] {ws.q, ws.k, ws.v}, ws.xb, new Tensor[] {w.wq, w.wk, w.wv}, n);
        backend.rope(ws.q, config.nHeads(), config.headSize(), positions, invFreq, n);
        backend.rope(ws.k, config.nKvHeads(), config.headSize(), positions, invFreq, n);
    }

    /** Attention of ws.q over the cached keys of the batch into ws.att / ws.lse. */
    public void attend(int layer, Workspace ws, KvPool pool, AttentionBatch.Prepared batch) {
        backend.attention(ws.att, ws.lse, ws.q, pool, layer, batch, config.nHeads(), config.nKvHeads(), config.headSize());
    }

    /** Attention of ws.q over remote keys into ws.att2 / ws.lse2, then folded into ws.att / ws.lse. */
    public void attendRemoteAndMerge(Workspace ws, CompactKv remote, int n) {
        backend.attention(ws.att2, ws.lse2, ws.q, n, remote, config.nHeads(), config.nKvHeads(), config.headSize());
        backend.mergeAttention(ws.att, ws.lse, ws.att2, ws.lse2, n, config.nHeads(), config.headSize());
    }

    /** Output projection, residual, SwiGLU MLP, residual: updates ws.x from ws.att. */
    public void finishLayer(int layer, Workspace ws, int n) {
        Layer w = layers[layer];
        backend.matmul(ws.xb, ws.att, w.wo, n);
        backend.add(ws.x, ws.xb, n);
        backend.rmsnorm(ws.xb, ws.x, w.ffnNorm, n, config.rmsEps());
        backend.matmul(new Tensor[] {ws.hb, ws.hb2}, ws.xb, new Tensor[] {w.w1, w.w3}, n);
        backend.swiglu(ws.hb, ws.hb, ws.hb2, n);
        backend.matmul(ws.xb, ws.hb, w.w2, n);
        backend.add(ws.x, ws.xb, n);
    }

    /**
     * Logits of selected rows of ws.x into ws.logits rows 0..rows.length-1 (the last position of each
     * sequence, typically).
     */
    public void logits(Workspace ws, int[] rows) {
        if (rows.length > ws.logitsCapacity) {
            throw new IllegalArgumentException("Asked for " + rows.length + " rows of logits; the workspace holds " + ws.logitsCapacity);
        }
        for (int i = 0; i < rows.length; i++) {
            backend.copyRows(ws.xb, i, ws.x, rows[i], 1);
        }
        backend.rmsnorm(ws.xb, ws.xb, finalNorm, rows.length, config.rmsEps());
        backend.matmul(ws.logits, ws.xb, output, rows.length);
    }

    @Override
    public void close() {
        embeddings.close();
        if (output != embeddings) {
            output.close();
        }
        finalNorm.close();
        invFreq.close();
        for (Layer w : layers) {
            for (Tensor t : new Tensor[] {w.attnNorm, w.wq, w.wk, w.wv, w.wo, w.ffnNorm, w.w1, w.w2, w.w3}) {
                t.close();
            }
        }
    }

    /** Reusable activations for one stream of steps of up to {@code capacity} token rows. */
    public final class Workspace implements AutoCloseable {
        public final int capacity;
        final int logitsCapacity;
        /** Residual stream [capacity, dim]. */
        public final Tensor x;
        /** Normalised input / projection output [capacity, dim]. */
        public final Tensor xb;
        /** Queries [capacity, nHeads*headSize]. */
        public final Tensor q;
        /** Keys and values of the rows [capacity, nKvHeads*headSize]. */
        public final Tensor k;
        public final Tensor v;
        /** Attention output and its log-sum-exp [capacity, nHeads*headSize], [capacity, nHeads]. */
        public final Tensor att;
        public final Tensor lse;
        /** A second partial attention result, merged into att/lse. */
        public final Tensor att2;
        public final Tensor lse2;
        /** MLP hidden [capacity, hiddenDim]. */
        final Tensor hb;
        final Tensor hb2;
        /** Logits [min(capacity, 256), vocab]. */
        public final Tensor logits;

        private Workspace(int capacity) {
            this.capacity = capacity;
            this.logitsCapacity = Math.min(capacity, 256);
            int dim = config.dim();
            int qDim = config.nHeads() * config.headSize();
            x = backend.allocate(capacity, dim);
            xb = backend.allocate(capacity, dim);
            q = backend.allocate(capacity, qDim);
            k = backend.allocate(capacity, config.kvDim());
            v = backend.allocate(capacity, config.kvDim());
            att = backend.allocate(capacity, qDim);
            lse = backend.allocateFloat(capacity, config.nHeads());
            att2 = backend.allocate(capacity, qDim);
            lse2 = backend.allocateFloat(capacity, config.nHeads());
            hb = backend.allocate(capacity, config.hiddenDim());
            hb2 = backend.allocate(capacity, config.hiddenDim());
            logits = backend.allocate(logitsCapacity, config.vocabSize());
        }

        void check(int n) {
            if (n > capacity) {
                throw new IllegalArgumentException(n + " rows do not fit a workspace of " + capacity);
            }
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {x, xb, q, k, v, att, lse, att2, lse2, hb, hb2, logits}) {
                t.close();
            }
        }
    }
}
