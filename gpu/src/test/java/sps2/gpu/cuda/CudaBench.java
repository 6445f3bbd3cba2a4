package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemsetD8;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import jcuda.CudaException;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import sps2.gpu.AttentionBatch;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;

/**
 * Times every kernel family on Llama-3.2-1B shapes with CUDA events: each op is captured {@code INNER}
 * times into a CUDA graph (so launch cost stays out) and the graph replayed {@code REPS} times; the median
 * replay over INNER is reported. Prints one {@code BENCH\tkey\tms\tflops\tbytes} line per measurement for
 * scripts/gpu/table.py, which joins them with the PyTorch peer's lines.
 *
 * <p>Arguments: {@code quick} runs a smaller set (first device call).
 */
public final class CudaBench {
    private static final int INNER = 10;
    private static final int REPS = 9;
    private final CudaBackend be;
    private final Random rnd = new Random(42);
    private final CUevent start = new CUevent();
    private final CUevent stop = new CUevent();

    private CudaBench(CudaBackend be) {
        this.be = be;
        be.stream();
        cuEventCreate(start, 0);
        cuEventCreate(stop, 0);
    }

    public static void main(String[] args) {
        if (!CudaBackend.isAvailable()) {
            System.out.println("No CUDA: " + CudaBackend.unavailableReason());
            System.exit(2);
        }
        boolean quick = args.length > 0 && args[0].equals("quick");
        List<String> only = args.length > 1 && !args[1].isBlank() ? Arrays.asList(args[1].split(",")) : List.of();
        try (CudaBackend be = new CudaBackend()) {
            CudaBench b = new CudaBench(be);
            System.out.println("hopper wgmma kernels in use: " + be.hopperKernels());
            if (only.isEmpty() || only.contains("copy")) {
                b.copy();
            }
            if (only.isEmpty() || only.contains("gemm")) {
                b.gemm(quick);
            }
            if (only.isEmpty() || only.contains("gemv")) {
                b.gemv();
            }
            if (only.isEmpty() || only.contains("prefill")) {
                b.prefill(quick);
            }
            if (only.isEmpty() || only.contains("decode")) {
                b.decode();
            }
            if (only.isEmpty() || only.contains("sample")) {
                b.sample();
            }
        }
    }

    private static void report(String key, double ms, double flops, double bytes) {
        System.out.printf("BENCH\t%s\t%.5f\t%.6g\t%.6g%n", key, ms, flops, bytes);
        System.out.flush();
    }

    /** Median milliseconds of one op, timed over graph replays of INNER ops (or plain launches when capture fails). */
    double time(Runnable op) {
        op.run();
        op.run();
        be.sync();
        CUstream s = be.stream();
        CUgraph graph = new CUgraph();
        CUgraphExec exec = new CUgraphExec();
        boolean graphed = false;
        try {
            cuStreamBeginCapture(s, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
            try {
                for (int i = 0; i < INNER; i++) {
                    op.run();
                }
            } finally {
                cuStreamEndCapture(s, graph);
            }
            cuGraphInstantiate(exec, graph, 0);
            graphed = true;
        } catch (CudaException e) {
            System.out.println("graph capture failed, timing plain launches: " + e.getMessage());
        }
        double[] t = new double[REPS];
        float[] ms = {0};
        for (int r = 0; r < REPS; r++) {
            cuEventRecord(start, s);
            if (graphed) {
                cuGraphLaunch(exec, s);
            } else {
                for (int i = 0; i < INNER; i++) {
                    op.run();
                }
            }
            cuEventRecord(stop, s);
            cuEventSynchronize(stop);
            cuEventElapsedTime(ms, start, stop);
            t[r] = ms[0] / INNER;
        }
        if (graphed) {
            cuGraphExecDestroy(exec);
            cuGraphDestroy(graph);
        }
        Arrays.sort(t);
        return t[REPS / 2];
    }

    private Tensor randomAct(int rows, int cols) {
        Tensor t = be.allocate(rows, cols);
        float[] chunk = new float[Math.min(rows, Math.max(1, (1 << 22) / cols)) * cols];
        for (int r0 = 0; r0 < rows; r0 += chunk.length / cols) {
            int nr = Math.min(chunk.length / cols, rows - r0);
            for (int i = 0; i < nr * cols; i++) {
                chunk[i] = (float) rnd.nextGaussian();
            }
            be.write(t, r0, chunk, 0, nr);
        }
        return t;
    }

    private Tensor randomWeight(int rows, int cols) {
        float[] w = new float[rows * cols];
        double sc = 1 / Math.sqrt(cols);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * sc);
        }
        return be.upload(sps2.model.HostTensor.ofFloats("w", w, rows, cols));
    }

    void copy() {
        long bytes = 1L << 30;
        CUdeviceptr a = new CUdeviceptr(), b = new CUdeviceptr();
        cuMemAlloc(a, bytes);
        cuMemAlloc(b, bytes);
        double ms = time(() -> cuMemcpyDtoDAsync(b, a, bytes, be.stream()));
        report("copy_1GiB", ms, 0, 2.0 * bytes);
        cuMemFree(a);
        cuMemFree(b);
        // L2 -> SM read bandwidth: a 24 MiB buffer (the H100 has 50 MB of L2) read 8 times per launch.
        long l2 = 24L << 20;
        int passes = 8;
        CUdeviceptr c = new CUdeviceptr(), sink = new CUdeviceptr();
        cuMemAlloc(c, l2);
        cuMemAlloc(sink, 4);
        cuMemsetD8(c, (byte) 1, l2);
        for (int perSm : new int[] {4, 8}) {
            int grid = be.smCount() * perSm;
            double l2ms = time(() -> be.launch("l2_read", grid, 1, 1, 256, 0, c, l2 / 16, passes, sink));
            report("l2_read_24MiB:" + perSm + "_blocks_per_sm", l2ms, 0, (double) passes * l2);
        }
        cuMemFree(c);
        cuMemFree(sink);
    }

    void gemm(boolean quick) {
        int[][] nk = {{2048, 2048}, {512, 2048}, {8192, 2048}, {2048, 8192}};
        int[] ms = quick ? new int[] {4096} : new int[] {4096, 32768};
        for (int m : ms) {
            for (int[] s : nk) {
                int n = s[0], k = s[1];
                Tensor x = randomAct(m, k), w = randomWeight(n, k), out = be.allocate(m, n);
                double flops = 2.0 * m * n * k, bytes = 2.0 * ((double) m * k + (double) n * k + (double) m * n);
                String key = "gemm_M" + m + "_N" + n + "_K" + k;
                report(key + ":default", time(() -> be.matmul(out, x, w, m)), flops, bytes);
                System.out.println("default kernel " + be.chooseGemm(m, n).name());
                for (GemmKernel g : CudaBackend.GEMMS.subList(0, 2)) {
                    report(key + ":" + g.name(), time(() -> be.matmul(out, x, w, m, g.name(), 1)), flops, bytes);
                }
                for (GemmKernel g : be.hopperKernels() ? CudaBackend.WGMMAS : List.<GemmKernel>of()) {
                    report(key + ":" + g.name(), time(() -> be.matmul(out, x, w, m, g.name(), 1)), flops, bytes);
                }
                for (GemmKernel g : be.hopperKernels() ? be.optionalGemms() : List.<GemmKernel>of()) {
                    report(key + ":" + g.name(), time(() -> be.matmul(out, x, w, m, g.name(), 1)), flops, bytes);
                }
                x.close();
                w.close();
                out.close();
            }
        }
    }

    void gemv() {
        int[][] shapes = {{16384, 2048}, {2048, 16384}};
        for (int[] s : shapes) {
            int n = s[0], k = s[1];
            Tensor[] ws = {randomWeight(n, k), randomWeight(n, k), randomWeight(n, k)};
            for (int b : new int[] {1, 32, 128}) {
                Tensor x = randomAct(b, k), out = be.allocate(b, n);
                double flops = 2.0 * b * n * k, bytes = 2.0 * ((double) b * k + (double) n * k + (double) b * n);
                int[] i = {0};
                String key = "gemv_B" + b + "_N" + n + "_K" + k;
                report(key + ":default", time(() -> be.matmul(out, x, ws[i[0]++ % 3], b)), flops, bytes);
                if (b > 8) {
                    for (String g : new String[] {"gemm_32x64", "gemm_64x64", "gemm_64x128", "wgmma_128x128"}) {
                        for (int splits : new int[] {1, 2, 4, 8}) {
                            report(key + ":" + g + "/s" + splits, time(() -> be.matmul(out, x, ws[i[0]++ % 3], b, g, splits)), flops, bytes);
                        }
                    }
                }
                x.close();
                out.close();
            }
            for (Tensor w : ws) {
                w.close();
            }
        }
    }

    void prefill(boolean quick) {
        int nHeads = 32, nKv = 8, d = 64, bs = 64;
        for (int len : quick ? new int[] {8192} : new int[] {8192, 32768}) {
            int blocks = len / bs;
            try (KvPool pool = be.allocateKvPool(1, nKv * d, blocks, bs)) {
                int[] table = new int[blocks];
                for (int i = 0; i < blocks; i++) {
                    table[i] = i;
                }
                Tensor k = randomAct(len, nKv * d), v = randomAct(len, nKv * d);
                int[] slots = new int[len];
                for (int i = 0; i < len; i++) {
                    slots[i] = i;
                }
                Tensor st = be.upload(slots);
                be.kvWrite(pool, 0, k, v, st, len);
                Tensor q = randomAct(len, nHeads * d), out = be.allocate(len, nHeads * d), lse = be.allocateFloat(len, nHeads);
                double flops = 4.0 * nHeads * d * ((double) len * len / 2);
                double bytes = 2.0 * len * (2.0 * nHeads * d + 2.0 * nKv * d);
                try (AttentionBatch.Prepared prep = be.prepare(AttentionBatch.single(len, len, table))) {
                    report("attn_prefill_L" + len + ":default", time(() -> be.attention(out, lse, q, pool, 0, prep, nHeads, nKv, d)), flops,
                            bytes);
                    String was = be.prefillVariant();
                    // Correct first: every variant's output on these inputs (poisoned before) against w8's.
                    float[] poison = new float[len * nHeads * d];
                    java.util.Arrays.fill(poison, Float.NaN);
                    float[] ref = null;
                    // -Dsps2.bench.hopperAttention=true: w8, w8_all and the Hopper kernels only (in a JVM of their own)
                    boolean hopper = Boolean.getBoolean("sps2.bench.hopperAttention");
                    List<String> order = new ArrayList<>(List.of("w8"));
                    for (CudaAttention.PrefillKernel pk : hopper ? CudaAttention.HOPPER_PREFILLS : CudaAttention.PREFILLS) {
                        if (!pk.variant().equals("w8")) {
                            order.add(pk.variant());
                        }
                    }
                    if (hopper) {
                        order.add(1, "w8_all");
                    }
                    for (String variant : order) {
                        be.prefillVariant(variant);
                        be.write(out, 0, poison, 0, len);
                        be.attention(out, lse, q, pool, 0, prep, nHeads, nKv, d);
                        float[] got = new float[len * nHeads * d];
                        be.read(out, 0, got, 0, len);
                        if (ref == null) {
                            ref = got;
                        }
                        double num = 0, den = 0;
                        long bad = 0;
                        for (int i = 0; i < got.length; i++) {
                            if (!Float.isFinite(got[i])) {
                                bad++;
                            }
                            double e = got[i] - ref[i];
                            num += e * e;
                            den += (double) ref[i] * ref[i];
                        }
                        System.out.printf("CHECK\tattn_prefill_L%d:%s\t%.3g\t%d%n", len, variant, Math.sqrt(num / den), bad);
                    }
                    // Two rounds over the variants: the spread of one variant between rounds is the noise.
                    double[][] ms = new double[2][order.size()];
                    for (int round = 0; round < 2; round++) {
                        for (int i = 0; i < order.size(); i++) {
                            be.prefillVariant(order.get(i));
                            ms[round][i] = time(() -> be.attention(out, lse, q, pool, 0, prep, nHeads, nKv, d));
                        }
                    }
                    for (int i = 0; i < order.size(); i++) {
                        report("attn_prefill_L" + len + ":" + order.get(i), (ms[0][i] + ms[1][i]) / 2, flops, bytes);
                        System.out.printf("ROUNDS\tattn_prefill_L%d:%s\t%.5f\t%.5f%n", len, order.get(i), ms[0][i], ms[1][i]);
                    }
                    be.prefillVariant(was);
                }
                for (Tensor t : new Tensor[] {k, v, st, q, out, lse}) {
                    t.close();
                }
            }
        }
    }

    /** Median wall milliseconds of a synchronous host call (after two warm-up calls). */
    static double wall(Runnable op, int reps) {
        op.run();
        op.run();
        double[] t = new double[reps];
        for (int r = 0; r < reps; r++) {
            long t0 = System.nanoTime();
            op.run();
            t[r] = (System.nanoTime() - t0) / 1e6;
        }
        Arrays.sort(t);
        return t[reps / 2];
    }

    /**
     * Token sampling over bf16 logits of the 1B vocabulary: the kernel alone (graphed) for three parameter sets,
     * the whole device call (parameters up, kernel, ids down, host fallback if any), and what it replaces: the read
     * of the same logits to host floats and the Sampler on them.
     */
    void sample() {
        int vocab = 128256;
        for (int b : new int[] {1, 32, 128}) {
            float[] host = new float[b * vocab];
            for (int i = 0; i < b; i++) {
                sps2.gpu.SamplingCases.row(rnd, host, i * vocab, vocab, 9);
            }
            Tensor logits = be.allocate(b, vocab);
            be.write(logits, 0, host, 0, b);
            double bytes = 2.0 * b * vocab;
            String key = "sample_B" + b + "_V" + vocab;
            int[] pos = new int[b];
            for (int i = 0; i < b; i++) {
                pos[i] = 1000 + rnd.nextInt(1000);
            }
            String[] names = {"default", "temp", "topk40"};
            SamplingParams[][] sets = new SamplingParams[3][b];
            for (int i = 0; i < b; i++) {
                sets[0][i] = new SamplingParams(0.8f, 0, 0.95f, 0f, rnd.nextLong());
                sets[1][i] = SamplingParams.temperature(1f, rnd.nextLong());
                sets[2][i] = new SamplingParams(0.8f, 40, 1f, 0f, rnd.nextLong());
            }
            for (int v = 0; v < 3; v++) {
                SamplingParams[] ps = sets[v];
                try (CudaTensor packed = (CudaTensor) be.upload(CudaSampling.sampleParams(b, ps, pos));
                        CudaTensor ids = be.allocate(1, b, CudaTensor.DType.I32)) {
                    report(key + ":" + names[v], time(() -> be.sampleOnDevice(ids, (CudaTensor) logits, b, packed, 1f)), 0, bytes);
                }
            }
            long fallback = be.hostSampledRows();
            report(key + ":call", wall(() -> be.sample(logits, b, sets[0], pos), 21), 0, bytes);
            System.out.println(key + ": rows sampled on the host during the timed calls: " + (be.hostSampledRows() - fallback));
            float[] dst = new float[b * vocab];
            report("d2h_logits_B" + b + "_V" + vocab, wall(() -> be.read(logits, 0, dst, 0, b), 7), 0, bytes);
            Sampler sampler = new Sampler(vocab);
            int[] cpu = new int[b];
            report("host_sampler_B" + b + "_V" + vocab, wall(() -> {
                for (int i = 0; i < b; i++) {
                    cpu[i] = sampler.sample(dst, i * vocab, vocab, sets[0][i], pos[i]);
                }
            }, 5), 0, bytes);
            int[] dev = be.sample(logits, b, sets[0], pos);
            System.out.println(key + ": device tokens equal the host Sampler's: " + Arrays.equals(dev, cpu));
            logits.close();
        }
    }

    void decode() {
        int nHeads = 32, nKv = 8, d = 64, bs = 64, ctx = 4096;
        for (int b : new int[] {1, 32, 128}) {
            int copies = b == 1 ? 8 : b == 32 ? 2 : 1; // rotate KV so that batch 1 is not served from L2
            int seqs = b * copies;
            int perSeq = ctx / bs;
            try (KvPool pool = be.allocateKvPool(1, nKv * d, seqs * perSeq, bs)) {
                for (int s0 = 0; s0 < seqs * ctx; s0 += 65536) {
                    int n = Math.min(65536, seqs * ctx - s0);
                    Tensor k = randomAct(n, nKv * d), v = randomAct(n, nKv * d);
                    int[] slots = new int[n];
                    for (int i = 0; i < n; i++) {
                        slots[i] = s0 + i;
                    }
                    Tensor st = be.upload(slots);
                    be.kvWrite(pool, 0, k, v, st, n);
                    k.close();
                    v.close();
                    st.close();
                }
                List<AttentionBatch.Prepared> preps = new ArrayList<>();
                for (int c = 0; c < copies; c++) {
                    int[] qs = new int[b], ql = new int[b], kl = new int[b];
                    int[][] tables = new int[b][perSeq];
                    for (int i = 0; i < b; i++) {
                        qs[i] = i;
                        ql[i] = 1;
                        kl[i] = ctx;
                        for (int j = 0; j < perSeq; j++) {
                            tables[i][j] = (c * b + i) * perSeq + j;
                        }
                    }
                    preps.add(be.prepare(new AttentionBatch(qs, ql, kl, tables)));
                }
                Tensor q = randomAct(b, nHeads * d), out = be.allocate(b, nHeads * d), lse = be.allocateFloat(b, nHeads);
                double flops = 4.0 * b * nHeads * d * ctx;
                double bytes = 2.0 * 2.0 * b * ctx * nKv * d;
                int[] i = {0};
                report("attn_decode_B" + b + "_C" + ctx,
                        time(() -> be.attention(out, lse, q, pool, 0, preps.get(i[0]++ % copies), nHeads, nKv, d)), flops, bytes);
                for (AttentionBatch.Prepared p : preps) {
                    p.close();
                }
                q.close();
                out.close();
                lse.close();
            }
        }
    }
}
