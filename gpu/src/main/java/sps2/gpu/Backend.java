package sps2.gpu;

import sps2.model.HostTensor;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * The compute operations of a Llama forward pass on one device. {@link LlamaModel} writes the model once
 * against this interface; the CPU (Vector API, fp32) and CUDA (our kernels) backends implement it.
 *
 * <p>Shapes: activations are [n, width] with one row per token; weights are [out, in]; {@code lse} is
 * [n, nHeads] float32 (natural log of the softmax denominator, scores already scaled by 1/sqrt(headSize)).
 * A backend is used from one thread at a time (a Flink operator's), except that it may use many threads
 * inside one call.
 */
public interface Backend extends AutoCloseable {

    String name();

    // ---- memory ----

    /** A scratch activation tensor [rows, cols] in this backend's activation precision. */
    Tensor allocate(int rows, int cols);

    /**
     * A scratch float32 tensor [rows, cols], for values that need full precision whatever the activation
     * precision: the {@code lse} of {@link #attention} and {@link #mergeAttention}. Backends whose
     * activations are float32 already can keep this default.
     */
    default Tensor allocateFloat(int rows, int cols) {
        return allocate(rows, cols);
    }

    /** A resident copy of a weight (the backend chooses its storage precision). */
    Tensor upload(HostTensor weight);

    /** An integer tensor [1, values.length] (token ids, positions, KV slots). */
    Tensor upload(int[] values);

    /** Copies {@code rows} rows of host floats into {@code dst} starting at {@code dstRow}. */
    void write(Tensor dst, int dstRow, float[] src, int srcOffset, int rows);

    /** Copies {@code rows} rows of {@code src} starting at {@code srcRow} into host floats. */
    void read(Tensor src, int srcRow, float[] dst, int dstOffset, int rows);

    /** Copies rows between two tensors of equal width on this device. */
    void copyRows(Tensor dst, int dstRow, Tensor src, int srcRow, int rows);

    KvPool allocateKvPool(int layers, int kvDim, int blocks, int blockSize);

    AttentionBatch.Prepared prepare(AttentionBatch batch);

    // ---- model math ----

    /** out[i] = table[tokens[i]] for i < n. */
    void embed(Tensor out, Tensor table, Tensor tokens, int n);

    /** out[i] = x[i] / rms(x[i]) * weight. */
    void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps);

    /** out[n, w.rows] = x[n, w.cols] · wᵀ. */
    void matmul(Tensor out, Tensor x, Tensor w, int n);

    /**
     * {@code outs[i] = x · ws[i]ᵀ} for every i: several products of one input (Q, K and V; gate and up), which a
     * backend may run as one launch (CUDA) or one parallel section (CPU). Each result equals what
     * {@link #matmul(Tensor, Tensor, Tensor, int)} gives; this default runs them one after the other.
     */
    default void matmul(Tensor[] outs, Tensor x, Tensor[] ws, int n) {
        for (int i = 0; i < outs.length; i++) {
            matmul(outs[i], x, ws[i], n);
        }
    }

    /**
     * Rotates, in place, the first {@code n} rows of {@code x} viewed as [n, heads, headSize] by the
     * angle {@code positions[i] * invFreq[j]} on the interleaved pairs (2j, 2j+1).
     */
    void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n);

    /** {@link #rope} of q ({@code qHeads} heads) and of k ({@code kHeads} heads) at the same positions, in one go where the backend can. */
    default void rope(Tensor q, int qHeads, Tensor k, int kHeads, int headSize, Tensor positions, Tensor invFreq, int n) {
        rope(q, qHeads, headSize, positions, invFreq, n);
        rope(k, kHeads, headSize, positions, invFreq, n);
    }

    /** x += y, then out = rmsnorm(x) * weight: exactly {@link #add} followed by {@link #rmsnorm}, in one pass where the backend can. */
    default void addRmsnorm(Tensor out, Tensor x, Tensor y, Tensor weight, int n, float eps) {
        add(x, y, n);
        rmsnorm(out, x, weight, n, eps);
    }

    /** out = silu(gate) * up over [n, width]. */
    void swiglu(Tensor out, Tensor gate, Tensor up, int n);

    /** x += y over the first n rows. */
    void add(Tensor x, Tensor y, int n);

    /** Stores K and V rows {@code 0..n-1} in the pool's slots {@code slots[i]} of one layer. */
    void kvWrite(KvPool pool, int layer, Tensor k, Tensor v, Tensor slots, int n);

    /** Copies K and V slots {@code slots[i]} of one layer into rows of {@code k} and {@code v}. */
    void kvRead(KvPool pool, int layer, Tensor slots, Tensor k, Tensor v, int n);

    /**
     * Attention of the batch's query rows over their cached keys (causal, bottom-right aligned), with
     * grouped-query heads. Writes out [rows, nHeads*headSize] and lse [rows, nHeads].
     */
    void attention(Tensor out, Tensor lse, Tensor q, KvPool pool, int layer, AttentionBatch.Prepared batch,
            int nHeads, int nKvHeads, int headSize);

    /** Unmasked attention of {@code n} query rows over per-head gathered keys (remote segments). */
    void attention(Tensor out, Tensor lse, Tensor q, int n, CompactKv kv, int nHeads, int nKvHeads, int headSize);

    /**
     * Folds a second partial attention result into the first, exactly: with m = max(lse, lse2),
     * out = (out·e^(lse-m) + out2·e^(lse2-m)) / (e^(lse-m) + e^(lse2-m)), lse = m + log(e^(lse-m) + e^(lse2-m)).
     */
    void mergeAttention(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize);

    // ---- exchange between shards ----

    /**
     * The element type in which rows of {@code t} cross shards: what the device holds, so that the exchange
     * is lossless and moves no padding (CUDA: bfloat16 activations and KV, float32 lse; CPU: float32).
     */
    WireType wireType(Tensor t);

    /**
     * Starts copying pieces of tensors to the host in their {@link #wireType}. Each source is viewed as
     * [rows * cols / width, width]; the result holds pieces {@code pieces[0], pieces[1], ...} of the first
     * source, then the same pieces of the next (for K/V of [n, nKvHeads * headSize] and width headSize, piece
     * {@code r * nKvHeads + g} is KV head g of token r). The sources must share a wire type.
     *
     * <p>The copy sees all work this thread issued before the call and none issued after: the sources may be
     * overwritten right away, and work issued after the call runs while the copy is in flight.
     */
    PendingRead readAsync(Tensor[] sources, int width, int[] pieces);

    /**
     * Copies {@code rows} rows of host bytes in wire type {@code type} into {@code dst} from {@code dstRow},
     * converting if {@code dst} holds another type. Ordered with this thread's other work; {@code src} may be
     * reused as soon as the call returns, while the copy itself may still be in flight.
     */
    void write(Tensor dst, int dstRow, WireType type, byte[] src, int srcOffset, int rows);

    // ---- device-side hand-off between shards of one host ----

    /**
     * Rows of {@code src} viewed as [rows * cols / width, width]: a new tensor [pieces.length, width] on this
     * device with row i = piece {@code pieces[i]} of the source, gathered on the device (no host copy). This is
     * how a shard packs the K/V rows its sparse-attention policy lets a later shard see.
     */
    Tensor gather(Tensor src, int width, int[] pieces);

    /** Sets every element of {@code dst} to {@code value}. */
    void fill(Tensor dst, float value);

    /** Overwrites the first {@code values.length} values of an integer tensor (inputs of a {@link StepGraph}). */
    void writeInts(Tensor dst, int[] values);

    /**
     * A marker after all the work the calling thread has issued so far; another thread waits for it with
     * {@link #await(Fence)} before it reads what that work wrote. Backends whose calls finish before they
     * return give {@link Fence#DONE}.
     */
    default Fence fence() {
        return Fence.DONE;
    }

    /** Makes the calling thread's later work on this backend wait until the fence (of any backend of this host) has passed. */
    default void await(Fence fence) {
    }

    /**
     * Whether this backend's kernels can read {@code t} where it is: its own tensors, and on the CPU any host
     * tensor. Tensors it cannot read come in through {@link #copyFrom}.
     */
    boolean holds(Tensor t);

    /**
     * A copy on this device of a tensor held by another backend of this host (another GPU: a device-to-device
     * peer copy, never staged through the host), ordered after the calling thread's earlier work.
     */
    default Tensor copyFrom(Tensor src) {
        throw new UnsupportedOperationException(name() + " cannot copy tensors from another device");
    }

    /**
     * {@link #prepare(AttentionBatch)} reusing the device arrays of {@code reuse} when the batch has the same
     * shape (sequences, rows, block-table sizes), so that a {@link StepGraph} recorded over {@code reuse} sees the
     * new batch; otherwise {@code reuse} is closed and a new one made. Returns the prepared batch to use.
     */
    default AttentionBatch.Prepared prepare(AttentionBatch batch, AttentionBatch.Prepared reuse) {
        if (reuse != null) {
            reuse.close();
        }
        return prepare(batch);
    }

    /**
     * Records the device work {@code work} issues on the calling thread as a {@link StepGraph}, or returns null
     * when this backend cannot record (then the caller runs the work eagerly). The work is recorded, not
     * executed: run it once eagerly before, and replay the graph for its effect.
     */
    default StepGraph capture(Runnable work) {
        return null;
    }

    // ---- sampling ----

    /**
     * The next token of each of the first {@code n} rows of {@code logits} ([rows, vocab], float): row i drawn
     * with {@code params[i]} at {@code positions[i]}, exactly the token {@link Sampler#sample} picks from that
     * row's values read as floats (bf16 logits widened exactly). Raises the Sampler's IllegalArgumentException
     * for the first row it cannot sample from (a NaN or +infinity logit, only -infinity, a negative position).
     * This default reads the rows to the host and runs the Sampler; the CUDA backend samples on the device and
     * reads back only the token ids.
     */
    default int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions) {
        return HostSampling.sample(this, logits, n, params, positions);
    }

    /**
     * Per-row sampling inputs for {@link #sampleRecorded} (rows of a recorded decode step), or null when this backend
     * samples only through {@link #sample}. Refreshed in place by {@link #writeSampling} before each replay.
     */
    default Tensor allocateSampling(int rows) {
        return null;
    }

    /** Writes the inputs of rows 0..n-1 (parameters, and the positions their draws depend on) into a {@link #allocateSampling} tensor. */
    default void writeSampling(Tensor dst, SamplingParams[] params, int[] positions, int n) {
        throw new UnsupportedOperationException(name() + " has no recordable sampling");
    }

    /**
     * The device part of {@link #sample} as recordable work: writes into {@code ids} each row's token, or a negative
     * code for a row the host must decide. {@link #takeSampled} reads them after the work has run.
     */
    default void sampleRecorded(Tensor ids, Tensor logits, int n, Tensor sampling) {
        throw new UnsupportedOperationException(name() + " has no recordable sampling");
    }

    /** The tokens of the first n rows that {@link #sampleRecorded} wrote, with the rows it left to the host sampled there. */
    default int[] takeSampled(Tensor ids, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        throw new UnsupportedOperationException(name() + " has no recordable sampling");
    }

    /**
     * Marks the calling thread's work as latency-critical (decode iterations), to be preferred over other
     * threads' work on the same device (long prefills). The CUDA backend gives the thread's streams the
     * greatest priority; backends without such a notion ignore it.
     */
    default void preferLatency() {
    }

    /** Waits until all work issued so far has finished. */
    void sync();

    @Override
    void close();
}
