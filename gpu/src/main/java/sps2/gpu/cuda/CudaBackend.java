package sps2.gpu.cuda;

import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;
import static sps2.gpu.cuda.GemmPlanner.blocks;

import java.nio.ByteOrder;
import java.util.List;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUstream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.Fence;
import sps2.gpu.KvPool;
import sps2.gpu.PendingRead;
import sps2.gpu.StepGraph;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.DType;
import sps2.model.HostTensor;
import sps2.model.sampler.SamplingParams;

/**
 * The CUDA backend: our own kernels (src/main/cuda, compiled to PTX and sm_90 code at build time and loaded from the
 * jar) launched through the JCuda driver API. Activations are bfloat16 with float32 accumulation inside
 * every kernel; {@link #allocateFloat} gives float32 tensors (the attention lse, or a float32 residual
 * stream: every element-wise kernel reads and writes either type). Weight matrices are stored as
 * bfloat16, vectors (norm weights, RoPE frequencies) as float32.
 *
 * <p>Threads: the backend retains the device's primary context and makes it current on every calling
 * thread; each thread gets its own non-blocking stream, and all work a thread issues is ordered on it.
 * {@link #sync()} waits for the calling thread's stream only. A tensor written on one thread and read on
 * another therefore needs the writer's {@link #sync()} in between (an operator syncs before handing a
 * device handle downstream). Scratch memory comes from a pool by size class that makes reuse across
 * streams wait on an event; no call keeps shared scratch, so threads never share buffers by accident.
 *
 * <p>Its parts: {@link CudaDevice} (context and streams), {@link CudaKernels} (modules, launches, the GEMM
 * self-check), {@link CudaMemory} (pooled and exact device memory, host copies), {@link GemmPlanner} (pure:
 * which GEMM kernel, grid and split-K) with {@link CudaGemm} (its launches), {@link CudaOps} (element-wise
 * kernels), {@link CudaAttention}, {@link CudaSampling} and {@link CudaExchange} (events, peer copies and the
 * pinned host exchange). This class wires them and implements the {@link Backend} API over them.
 */
public final class CudaBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);

    /** The GEMM kernels ({@link GemmPlanner}), named here for the tests and benchmarks. */
    static final List<GemmKernel> GEMMS = GemmPlanner.GEMMS;
    static final List<GemmKernel> WGMMAS = GemmPlanner.WGMMAS;
    static final GemmKernel WGMMA_PAIR = GemmPlanner.WGMMA_PAIR;
    static final GemmKernel WGMMA_TMA = GemmPlanner.WGMMA_TMA;
    static final GemmKernel WGMMA_TMA_PAIR = GemmPlanner.WGMMA_TMA_PAIR;
    static final List<GemmKernel> WGMMA_OPTIONAL = GemmPlanner.WGMMA_OPTIONAL;

    private final CudaDevice device;
    private final CudaKernels kernels;
    private final CudaExchange exchange;
    private final CudaSampling sampling;
    private final CudaAttention attention;
    private final CudaMemory memory;
    private final CudaGemm gemm;
    private final CudaOps ops;
    private final GemmPlanner gemms;

    // ---- availability and life cycle ----

    /** Whether a CUDA device, the driver library and the kernels in this jar are all there. */
    public static boolean isAvailable() {
        return unavailableReason() == null;
    }

    /** Why {@link #isAvailable()} is false, or null when it is true. */
    public static String unavailableReason() {
        return CudaKernels.unavailableReason();
    }

    public CudaBackend() {
        this(0);
    }

    public CudaBackend(int ordinal) {
        this(ordinal, false);
    }

    /**
     * @param batchInvariant every row's result independent of the other rows of its launch, the row count and the
     *                       chunking (a decoded token's K/V and logits have the bits of the same position prefilled):
     *                       tile GEMMs without split-K for every row count, attention over fixed 1,024-key segments
     *                       (head sizes 64 and 128 with bfloat16 queries; other head sizes keep the row kernel)
     */
    public CudaBackend(int ordinal, boolean batchInvariant) {
        String why = unavailableReason();
        if (why != null) {
            throw new IllegalStateException("The CUDA backend is unavailable: " + why);
        }
        this.device = new CudaDevice(ordinal);
        this.memory = new CudaMemory(this, device);
        long t0 = System.nanoTime();
        this.kernels = new CudaKernels(device);
        this.gemm = new CudaGemm(memory, device, kernels);
        this.ops = new CudaOps(this, device, kernels);
        this.exchange = new CudaExchange(this, device, kernels);
        this.sampling = new CudaSampling(this, kernels);
        this.attention = new CudaAttention(this, kernels, device.multiprocessors(), batchInvariant);
        // The check launches GEMMs through this backend (forced kernels only, which need no planner of its own).
        this.gemms = new GemmPlanner(kernels.checkGemms(this).invariant(batchInvariant));
        LOG.info("Opened CUDA device {} ({}, {} multiprocessors{}); loading the kernels took {} ms.", ordinal, device.name(),
                device.multiprocessors(), batchInvariant ? ", batch-invariant kernels" : "", (System.nanoTime() - t0) / 1_000_000);
    }

    /** Whether every row's result is independent of the rest of its launch (the constructor's batchInvariant). */
    public boolean batchInvariant() {
        return gemms.device().batchInvariant();
    }

    @Override
    public String name() {
        return "cuda:" + device.ordinal + " (" + device.name() + ")";
    }

    /** The device, its context and the threads' streams. */
    CudaDevice device() {
        return device;
    }

    public int multiprocessors() {
        return device.multiprocessors();
    }

    /** The number of multiprocessors of this device. */
    int smCount() {
        return device.multiprocessors();
    }

    /** The calling thread's stream, with the context made current on first use. */
    CUstream stream() {
        return device.stream();
    }

    @Override
    public void preferLatency() {
        device.preferLatency();
    }

    /** The priority of the calling thread's stream (lower numbers run first). */
    int streamPriority() {
        return device.streamPriority();
    }

    @Override
    public void sync() {
        device.sync();
    }

    @Override
    public void close() {
        if (device.closed()) {
            return;
        }
        try {
            device.drain();
            memory.closePool();
            exchange.close();
            memory.freeAllExact();
            device.destroyStreams();
            kernels.close();
        } finally {
            // even when a kernel fault broke the context (the calls above then throw), let go of the primary context, so
            // that the next backend on this device starts from a fresh one instead of inheriting the broken one
            device.release();
        }
        LOG.info("Closed CUDA device {}.", device.ordinal);
    }

    // ---- GEMM kernels (GemmPlanner) ----

    /** Whether the wgmma GEMM kernels are in use. */
    public boolean hopperKernels() {
        return gemms.device().hopper();
    }

    /** Whether the cluster split-K GEMM passed its start-up check (it is chosen for prefill products with few tiles). */
    boolean pairGemm() {
        return gemms.pairGemm();
    }

    /** The optional wgmma kernels that passed the start-up check (for the benchmark's sweep). */
    List<GemmKernel> optionalGemms() {
        return gemms.device().optional();
    }

    /** The tensor-core GEMM kernels this device runs. */
    List<GemmKernel> gemmKernels() {
        return gemms.kernels();
    }

    static GemmKernel gemmKernel(String name) {
        return GemmPlanner.kernel(name);
    }

    /** {@link GemmPlanner#chooseGemm} on this device. */
    GemmKernel chooseGemm(int m, int n) {
        return gemms.chooseGemm(m, n);
    }

    /** {@link GemmPlanner#chooseSplits} on this device. */
    int chooseSplits(GemmKernel g, int m, int n, int k) {
        return gemms.chooseSplits(g, m, n, k);
    }

    // ---- memory ----

    CudaTensor allocate(int rows, int cols, CudaTensor.DType dtype) {
        return memory.allocate(rows, cols, dtype);
    }

    @Override
    public StepGraph capture(Runnable work) {
        return memory.capture(work);
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        return allocate(rows, cols, CudaTensor.DType.BF16);
    }

    @Override
    public Tensor allocateFloat(int rows, int cols) {
        return allocate(rows, cols, CudaTensor.DType.F32);
    }

    /** Device memory reserved by the scratch pool (for tests and logs). */
    public long pooledBytes() {
        return memory.pooledBytes();
    }

    void free(CUdeviceptr p, long capacity, boolean pooled) {
        memory.free(p, capacity, pooled);
    }

    void freeExact(CUdeviceptr p) {
        memory.freeExact(p);
    }

    @Override
    public Tensor upload(HostTensor weight) {
        return memory.upload(weight);
    }

    @Override
    public Tensor upload(int[] values) {
        return memory.upload(values);
    }

    @Override
    public void write(Tensor dst, int dstRow, float[] src, int srcOffset, int rows) {
        memory.write(dst, dstRow, src, srcOffset, rows);
    }

    @Override
    public void read(Tensor src, int srcRow, float[] dst, int dstOffset, int rows) {
        memory.read(src, srcRow, dst, dstOffset, rows);
    }

    /** Copies an integer tensor's values to the host. */
    public int[] readInts(Tensor src, int n) {
        return memory.readInts(src, n);
    }

    @Override
    public void copyRows(Tensor dst, int dstRow, Tensor src, int srcRow, int rows) {
        ops.copyRows(dst, dstRow, src, srcRow, rows);
    }

    /** Sets every element of a float tensor to {@code value} (tests poison outputs with NaN). */
    @Override
    public void fill(Tensor dst, float value) {
        ops.fill(dst, value);
    }

    @Override
    public KvPool allocateKvPool(int layers, int kvDim, int blocks, int blockSize) {
        need(kvDim % 8 == 0, () -> "The CUDA KV pool needs kvDim to be a multiple of 8, got " + kvDim);
        long bytes = 2L * layers * blocks * blockSize * kvDim * 2;
        return new CudaKvPool(this, memory.allocExact(bytes), layers, kvDim, blocks, blockSize);
    }

    @Override
    public AttentionBatch.Prepared prepare(AttentionBatch batch) {
        return new CudaPrepared(this, batch);
    }

    @Override
    public AttentionBatch.Prepared prepare(AttentionBatch batch, AttentionBatch.Prepared reuse) {
        if (reuse instanceof CudaPrepared p && p.owner() == this && p.update(batch)) {
            return p;
        }
        if (reuse != null) {
            reuse.close();
        }
        return prepare(batch);
    }

    @Override
    public void writeInts(Tensor dst, int[] values) {
        CudaTensor d = t(dst);
        need(d.isInt() && (long) d.rows() * d.cols() >= values.length, () -> "writeInts needs an integer tensor with room for "
                + values.length + " values");
        if (values.length > 0) {
            exchange.stageIn(d.ptr(), 4L * values.length, b -> b.order(ByteOrder.nativeOrder()).asIntBuffer().put(values));
        }
    }

    // ---- hand-off between shards of one host: events, device gathers, peer copies (CudaExchange) ----

    @Override
    public Fence fence() {
        return exchange.fence();
    }

    @Override
    public void await(Fence fence) {
        exchange.await(fence);
    }

    @Override
    public boolean holds(Tensor t) {
        return t instanceof CudaTensor c && c.owner() == this;
    }

    @Override
    public Tensor gather(Tensor src, int width, int[] pieces) {
        return exchange.pack(new Tensor[] {src}, width, pieces);
    }

    @Override
    public Tensor copyFrom(Tensor src) {
        return exchange.copyFrom(src);
    }

    // ---- exchange between shards (CudaExchange) ----

    @Override
    public WireType wireType(Tensor t) {
        return switch (t(t).dtype()) {
            case BF16 -> WireType.BF16;
            case F32 -> WireType.F32;
            case I32 -> throw new IllegalArgumentException("Integer tensors are not exchanged between shards");
        };
    }

    @Override
    public PendingRead readAsync(Tensor[] sources, int width, int[] pieces) {
        return exchange.readAsync(sources, width, pieces);
    }

    /** A {@link CudaRead} has landed: its device buffer, host buffer and event are free. */
    void readFinished(CudaTensor packed, PinnedPool.Buffer host, CUevent done) {
        exchange.readFinished(packed, host, done);
    }

    @Override
    public void write(Tensor dst, int dstRow, WireType type, byte[] src, int srcOffset, int rows) {
        exchange.write(dst, dstRow, type, src, srcOffset, rows);
    }

    /** Page-locked host memory held for exchange copies (for tests and logs). */
    public long pinnedBytes() {
        return exchange.pinnedBytes();
    }

    // ---- launching and model math ----

    /** {@link CudaKernels#launch}: kernel {@code name} on the calling thread's stream. */
    void launch(String name, int gx, int gy, int gz, int block, int smem, Object... args) {
        kernels.launch(name, gx, gy, gz, block, smem, args);
    }

    @Override
    public void embed(Tensor out, Tensor table, Tensor tokens, int n) {
        ops.embed(out, table, tokens, n);
    }

    @Override
    public void rmsnorm(Tensor out, Tensor x, Tensor weight, int n, float eps) {
        ops.rmsnorm(out, x, weight, n, eps);
    }

    @Override
    public void matmul(Tensor out, Tensor x, Tensor w, int n) {
        matmul(out, x, w, n, null, 0);
    }

    /**
     * {@link #matmul(Tensor, Tensor, Tensor, int)} with the kernel forced (benchmarks): {@code kernel} is a
     * {@link #GEMMS} name, "gemv", "simple", or null for the default choice; {@code splits} > 0 forces split-K.
     */
    public void matmul(Tensor out, Tensor x, Tensor w, int n, String kernel, int splits) {
        CudaTensor o = t(out), xx = t(x), ww = t(w);
        int nOut = ww.rows(), k = ww.cols();
        need(xx.cols() == k && o.cols() == nOut, () -> "matmul: x is [" + xx.rows() + ", " + xx.cols() + "], w is [" + nOut + ", " + k
                + "], out is [" + o.rows() + ", " + o.cols() + "]");
        need(ww.dtype() == CudaTensor.DType.BF16, "matmul: weights must be bfloat16 matrices");
        if (n == 0) {
            return;
        }
        boolean tensorCores = xx.dtype() == CudaTensor.DType.BF16 && k % 8 == 0;
        gemm(o, xx, ww, n, gemms.plan(new GemmPlanner.Product(n, nOut, k, tensorCores, kernel, splits)));
    }

    /** Launches {@code p} ({@link CudaGemm#run}); the start-up check calls it with forced kernels. */
    void gemm(Tensor out, Tensor x, Tensor w, int n, GemmPlanner.Plan p) {
        gemm.run(out, x, w, n, p);
    }

    /** Decode-sized products of one input (at most 8 rows, up to three weights of one width) in one GEMV launch. */
    @Override
    public void matmul(Tensor[] outs, Tensor x, Tensor[] ws, int n) {
        if (gemms.device().batchInvariant() || !gemm.multi(outs, x, ws, n)) {
            Backend.super.matmul(outs, x, ws, n);
        }
    }

    @Override
    public void rope(Tensor x, int heads, int headSize, Tensor positions, Tensor invFreq, int n) {
        ops.rope(x, heads, headSize, positions, invFreq, n);
    }

    @Override
    public void rope(Tensor q, int qHeads, Tensor k, int kHeads, int headSize, Tensor positions, Tensor invFreq, int n) {
        ops.rope(q, qHeads, k, kHeads, headSize, positions, invFreq, n);
    }

    @Override
    public void addRmsnorm(Tensor out, Tensor x, Tensor y, Tensor weight, int n, float eps) {
        ops.addRmsnorm(out, x, y, weight, n, eps);
    }

    @Override
    public void swiglu(Tensor out, Tensor gate, Tensor up, int n) {
        ops.swiglu(out, gate, up, n);
    }

    @Override
    public void add(Tensor x, Tensor y, int n) {
        ops.add(x, y, n);
    }

    @Override
    public void kvWrite(KvPool pool, int layer, Tensor k, Tensor v, Tensor slots, int n) {
        ops.kvWrite(pool, layer, k, v, slots, n);
    }

    @Override
    public void kvRead(KvPool pool, int layer, Tensor slots, Tensor k, Tensor v, int n) {
        ops.kvRead(pool, layer, slots, k, v, n);
    }

    CudaKvPool kv(KvPool pool) {
        if (!(pool instanceof CudaKvPool p) || p.owner() != this) {
            throw new IllegalArgumentException("The KV pool belongs to another backend");
        }
        return p;
    }

    // ---- attention (CudaAttention) ----

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, KvPool pool, int layer, AttentionBatch.Prepared batch, int nHeads,
            int nKvHeads, int headSize) {
        attention.paged(out, lse, q, pool, layer, batch, nHeads, nKvHeads, headSize);
    }

    @Override
    public void attention(Tensor out, Tensor lse, Tensor q, int n, CompactKv kv, int nHeads, int nKvHeads, int headSize) {
        attention.compact(out, lse, q, n, kv, nHeads, nKvHeads, headSize);
    }

    @Override
    public void mergeAttention(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize) {
        attention.merge(out, lse, out2, lse2, n, nHeads, headSize);
    }

    /** Whether kernel {@code name} is loaded on this device (tests: a variant asked for by name is really there). */
    boolean hasKernel(String name) {
        return kernels.has(name);
    }

    /** The prefill kernel variant in use ({@link CudaAttention#PREFILLS}). */
    String prefillVariant() {
        return attention.prefillVariant();
    }

    /** Whether prefill {@code variant} runs its own kernel for these heads here, rather than falling back to another. */
    boolean runsPrefillVariant(int headSize, int nHeads, int nKvHeads, String variant) {
        return attention.runs(headSize, nHeads, nKvHeads, variant);
    }

    /** Switches the prefill kernel variant (the benchmark and tests). */
    void prefillVariant(String variant) {
        attention.prefillVariant(variant);
    }

    // ---- sampling (CudaSampling) ----

    /** ids[i] = argmax of logits row i (lowest index on ties), on the device. */
    public void argmax(Tensor ids, Tensor logits, int n) {
        sampling.argmax(ids, logits, n);
    }

    /** Greedy tokens of the first n rows of logits. */
    public int[] argmax(Tensor logits, int n) {
        try (CudaTensor ids = allocate(1, Math.max(n, 1), CudaTensor.DType.I32)) {
            argmax(ids, logits, n);
            return readInts(ids, n);
        }
    }

    /**
     * Samples on the device (kernel sample_rows, one block per row) and reads back only the ids. A row the kernel
     * leaves to the host -- invalid logits, or sums too close to a decision boundary for the device to be sure of
     * the Sampler's rounding (rare; see sample.cu) -- is read and sampled by the Sampler here, so the tokens, and the
     * exception for a bad row, are always the Sampler's.
     */
    @Override
    public int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions) {
        return sample(logits, n, params, positions, 1f);
    }

    /** {@link #sample} with the kernel's comparison margin scaled (tests: 0 and +infinity). */
    int[] sample(Tensor logits, int n, SamplingParams[] params, int[] positions, float marginScale) {
        return sampling.sample(logits, n, params, positions, marginScale);
    }

    @Override
    public Tensor allocateSampling(int rows) {
        return allocate(1, 6 * Math.max(rows, 1), CudaTensor.DType.I32);
    }

    @Override
    public void writeSampling(Tensor dst, SamplingParams[] params, int[] positions, int n) {
        writeInts(dst, CudaSampling.sampleParams(n, params, positions));
    }

    @Override
    public void sampleRecorded(Tensor ids, Tensor logits, int n, Tensor sampling) {
        this.sampling.sampleOnDevice(t(ids), t(logits), n, t(sampling), 1f);
    }

    @Override
    public int[] takeSampled(Tensor ids, Tensor logits, int n, SamplingParams[] params, int[] positions) {
        return sampling.takeSampled(ids, logits, n, params, positions);
    }

    /** Rows that {@link #sample} handed to the host Sampler since this backend opened (logs and benchmarks). */
    public long hostSampledRows() {
        return sampling.hostSampledRows();
    }

    /** {@link CudaSampling#sampleCodes}: the kernel's answer per row (tests). */
    int[] sampleCodes(Tensor logits, int n, SamplingParams[] params, int[] positions, float marginScale) {
        return sampling.sampleCodes(logits, n, params, positions, marginScale);
    }

    /** {@link CudaSampling#sampleOnDevice}: one sample_rows launch (benchmarks). */
    void sampleOnDevice(CudaTensor ids, CudaTensor logits, int n, CudaTensor params, float marginScale) {
        sampling.sampleOnDevice(ids, logits, n, params, marginScale);
    }
}
