package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventElapsedTime;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuGraphDestroy;
import static jcuda.driver.JCudaDriver.cuGraphExecDestroy;
import static jcuda.driver.JCudaDriver.cuGraphInstantiate;
import static jcuda.driver.JCudaDriver.cuGraphLaunch;
import static jcuda.driver.JCudaDriver.cuStreamBeginCapture;
import static jcuda.driver.JCudaDriver.cuStreamEndCapture;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.IntFunction;
import jcuda.CudaException;
import jcuda.driver.CUevent;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUstream;
import jcuda.driver.CUstreamCaptureMode;
import sps2.gpu.AttentionBatch;
import sps2.gpu.BlockAllocator;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.Tensor;
import sps2.gpu.cpu.CpuBackend;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.sampler.Sampler;
import sps2.model.sampler.SamplingParams;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomCheckpointWriter;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;

/**
 * The whole model on one GPU (issue 6): correctness against the CPU backend (stories260K) and, through
 * files that scripts/gpu/model_peer.py reads, against Hugging Face transformers on a random
 * Llama-3.2-1B-shaped checkpoint; then end-to-end prefill and decode timings.
 *
 * <pre>
 *   ModelBench &lt;workDir&gt; &lt;stories.gguf or -&gt; [sections]     sections: stories,write,correct,prefill,decode (default all)
 * </pre>
 *
 * Files in workDir: ckpt/ (the random checkpoint, written when absent), prompt_N.i32 (random token ids),
 * ours_logits_N.f32 (last-position logits of the prompt), ours_greedy_N.i32 (64 greedy tokens after it), all
 * little-endian. Timings go to stdout as {@code E2E\tkey\tms\tflops\tbytes} lines (flops and bytes are the
 * work a step cannot avoid, for the floors); checks as plain sentences.
 *
 * <p>It lives in the benchmarks' module, in the CUDA backend's package: it times the backend's stream and its
 * integer tensors, which the backend keeps package-private. It loads only gpu/ and model/ classes, so
 * scripts/gpu/run-on-device.sh carries it alone, without the job.
 */
public final class ModelBench {
    static final String SHAPE = "llama-3.2-1b";
    static final long SEED = 20261124L;
    static final int GREEDY_STEPS = 64;
    static final int CTX = 4096;

    private final CudaBackend cuda;
    private final Path work;
    private final CUevent start = new CUevent();
    private final CUevent stop = new CUevent();

    private ModelBench(CudaBackend cuda, Path work) {
        this.cuda = cuda;
        this.work = work;
        cuda.stream();
        cuEventCreate(start, 0);
        cuEventCreate(stop, 0);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.out.println("usage: ModelBench <workDir> <stories.gguf or -> [stories,write,correct,prefill,decode,trained]");
            System.exit(2);
        }
        if (!CudaBackend.isAvailable()) {
            System.out.println("No CUDA: " + CudaBackend.unavailableReason());
            System.exit(2);
        }
        Path work = Path.of(args[0]);
        Files.createDirectories(work);
        List<String> only = args.length > 2 && !args[2].isBlank() ? Arrays.asList(args[2].split(",")) : List.of();
        int failures = 0;
        // -Dsps2.bench.batchInvariant=true: the batch-invariant kernels (issue 14), to measure what they cost
        try (CudaBackend cuda = new CudaBackend(0, Boolean.getBoolean("sps2.bench.batchInvariant"))) {
            ModelBench b = new ModelBench(cuda, work);
            System.out.println("device " + cuda.name() + ", wgmma kernels in use: " + cuda.hopperKernels() + ", batch-invariant kernels: "
                    + cuda.batchInvariant());
            if ((only.isEmpty() || only.contains("stories")) && !args[1].equals("-")) {
                failures += b.section("stories", () -> b.stories(Path.of(args[1])));
            }
            Path ckpt = work.resolve("ckpt");
            if (only.isEmpty() || only.contains("write")) {
                failures += b.section("write", () -> b.writeCheckpoint(ckpt));
            }
            boolean needModel = only.isEmpty() || only.contains("correct") || only.contains("prefill") || only.contains("decode");
            if (needModel) {
                long t0 = System.nanoTime();
                ModelWeights w = ModelLoader.load(ckpt);
                try (LlamaModel model = new LlamaModel(cuda, w, null)) {
                    cuda.sync();
                    System.out.printf("loaded and uploaded %s in %.1f s%n", ckpt, (System.nanoTime() - t0) / 1e9);
                    if (only.isEmpty() || only.contains("correct")) {
                        failures += b.section("correct", () -> b.correctness(model));
                    }
                    if (only.isEmpty() || only.contains("prefill")) {
                        failures += b.section("prefill", () -> b.prefill(model));
                    }
                    if (only.isEmpty() || only.contains("decode")) {
                        failures += b.section("decode", () -> b.decode(model));
                    }
                }
            }
            // The same checks on the checkpoint that scripts/gpu/train_peer.py trained to confident predictions.
            Path trained = work.resolve("ckpt_trained");
            if (only.contains("trained")) {
                failures += b.section("trained", () -> {
                    try (LlamaModel model = new LlamaModel(cuda, ModelLoader.load(trained), null)) {
                        b.correctness(model, "trained_", n -> b.readInts("lang_prompt_" + n + ".i32"));
                    }
                });
            }
        }
        System.out.println("ModelBench done, " + failures + " section(s) failed");
        System.exit(failures == 0 ? 0 : 1);
    }

    private int section(String name, Runnable body) {
        long t0 = System.nanoTime();
        System.out.println("== " + name);
        try {
            body.run();
            System.out.printf("== %s took %.1f s%n", name, (System.nanoTime() - t0) / 1e9);
            return 0;
        } catch (RuntimeException | Error e) {
            System.out.println("== " + name + " FAILED: " + e);
            e.printStackTrace(System.out);
            return 1;
        }
    }

    // ---- stories260K: CUDA against the CPU backend ----

    /** Greedy tokens and per-step logits of {@code steps} tokens after the prompt (teacher-forced when {@code forced} is given). */
    private record Run(int[] tokens, float[][] logits) {
    }

    private static Run greedy(LlamaModel model, int[] prompt, int steps, int[] forced) {
        int vocab = model.config().vocabSize();
        Sampler sampler = new Sampler(vocab);
        int[] out = new int[steps];
        float[][] all = new float[steps][];
        try (Sequence s = new Sequence(model, prompt.length + steps, 64)) {
            float[] logits = s.forward(prompt);
            for (int i = 0; i < steps; i++) {
                all[i] = logits.clone();
                out[i] = sampler.sample(logits, 0, vocab, SamplingParams.greedy(), s.length());
                if (i + 1 < steps) {
                    logits = s.forward(new int[] {forced != null ? forced[i] : out[i]});
                }
            }
        }
        return new Run(out, all);
    }

    void stories(Path gguf) {
        ModelWeights w = ModelLoader.load(gguf);
        Tokenizer tok = Tokenizers.forModel(gguf, null, w);
        int[] prompt = tok.encode("Once upon a time", true);
        int steps = Math.min(200, w.config().contextLength() - prompt.length);
        System.out.println("stories260K prompt ids " + Arrays.toString(prompt) + ", " + steps + " greedy steps");
        Run cpu;
        try (CpuBackend cb = new CpuBackend(); LlamaModel m = new LlamaModel(cb, w, null)) {
            cpu = greedy(m, prompt, steps, null);
        }
        Run gpu;
        Run forced;
        try (LlamaModel m = new LlamaModel(cuda, w, null)) {
            gpu = greedy(m, prompt, steps, null);
            forced = greedy(m, prompt, steps, cpu.tokens());
        }
        int same = 0;
        while (same < steps && cpu.tokens()[same] == gpu.tokens()[same]) {
            same++;
        }
        int forcedAgree = 0;
        double maxErr = 0;
        for (int i = 0; i < steps; i++) {
            forcedAgree += forced.tokens()[i] == cpu.tokens()[i] ? 1 : 0;
            maxErr = Math.max(maxErr, relErr(forced.logits()[i], cpu.logits()[i]));
        }
        System.out.println("stories260K CPU : " + tok.decode(cpu.tokens()).replace('\n', ' '));
        System.out.println("stories260K CUDA: " + tok.decode(gpu.tokens()).replace('\n', ' '));
        System.out.printf("CHECK stories260K greedy: CUDA equals CPU for the first %d of %d tokens%s%n", same, steps,
                same == steps ? "" : " (first divergence at step " + same + ": CPU " + cpu.tokens()[same] + ", CUDA " + gpu.tokens()[same] + ")");
        System.out.printf("CHECK stories260K teacher-forced on the CPU tokens: argmax agrees at %d of %d steps; logits rel. error max %.2e, first step %.2e%n",
                forcedAgree, steps, maxErr, relErr(forced.logits()[0], cpu.logits()[0]));
        if (same < Math.min(64, steps)) {
            throw new AssertionError("stories260K: CUDA greedy tokens differ from the CPU backend's at step " + same);
        }
    }

    static double relErr(float[] a, float[] ref) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = a[i] - (double) ref[i];
            num += d * d;
            den += ref[i] * (double) ref[i];
            if (Float.isNaN(a[i])) {
                return Double.NaN;
            }
        }
        return Math.sqrt(num / den);
    }

    // ---- the 1B checkpoint ----

    void writeCheckpoint(Path dir) {
        if (Files.isRegularFile(dir.resolve("model.safetensors"))) {
            System.out.println("checkpoint already there: " + dir);
            return;
        }
        ModelConfig c = ModelShapes.get(SHAPE);
        long t0 = System.nanoTime();
        Path f = RandomCheckpointWriter.write(c, SHAPE, dir, DType.BF16, SEED, RandomCheckpointWriter.Progress.NONE);
        try {
            System.out.printf("wrote %s (%d bytes) in %.1f s%n", f, Files.size(f), (System.nanoTime() - t0) / 1e9);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static int[] randomTokens(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(128000);
        }
        return t;
    }

    int[] readInts(String name) {
        try {
            ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(work.resolve(name))).order(ByteOrder.LITTLE_ENDIAN);
            int[] v = new int[b.remaining() / 4];
            b.asIntBuffer().get(v);
            return v;
        } catch (IOException e) {
            throw new UncheckedIOException("Could not read " + work.resolve(name) + " (train_peer.py writes it)", e);
        }
    }

    private void writeInts(String name, int[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asIntBuffer().put(v);
        writeFile(name, b.array());
    }

    private void writeFloats(String name, float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        writeFile(name, b.array());
    }

    private void writeFile(String name, byte[] bytes) {
        try {
            Files.write(work.resolve(name), bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("Could not write " + work.resolve(name), e);
        }
    }

    /** Last-position logits and 64 greedy tokens for random prompts of 1K and 8K tokens, written for model_peer.py. */
    void correctness(LlamaModel model) {
        correctness(model, "", n -> randomTokens(n, SEED + n));
    }

    /**
     * Last-position logits and 64 greedy tokens for prompts of 1K and 8K tokens, written for model_peer.py as
     * {tag}prompt_N.i32, {tag}ours_logits_N.f32 and {tag}ours_greedy_N.i32.
     */
    void correctness(LlamaModel model, String tag, java.util.function.IntFunction<int[]> prompts) {
        int vocab = model.config().vocabSize();
        Sampler sampler = new Sampler(vocab);
        for (int n : new int[] {1024, 8192}) {
            int[] prompt = prompts.apply(n);
            writeInts(tag + "prompt_" + n + ".i32", prompt);
            int[] gen = new int[GREEDY_STEPS];
            long t0 = System.nanoTime();
            try (Sequence s = new Sequence(model, n + GREEDY_STEPS, Math.min(n, 8192))) {
                float[] logits = s.forward(prompt);
                boolean finite = true;
                for (float v : logits) {
                    finite &= Float.isFinite(v);
                }
                writeFloats(tag + "ours_logits_" + n + ".f32", logits);
                for (int i = 0; i < GREEDY_STEPS; i++) {
                    gen[i] = sampler.sample(logits, 0, vocab, SamplingParams.greedy(), s.length());
                    if (i + 1 < GREEDY_STEPS) {
                        logits = s.forward(new int[] {gen[i]});
                    }
                }
                System.out.printf("%sprompt %d: logits all finite %s, greedy %s ... (%.2f s)%n", tag, n, finite,
                        Arrays.toString(Arrays.copyOf(gen, 8)), (System.nanoTime() - t0) / 1e9);
            }
            writeInts(tag + "ours_greedy_" + n + ".i32", gen);
        }
    }

    // ---- timings ----

    private static void report(String key, double ms, double flops, double bytes) {
        System.out.printf("E2E\t%s\t%.5f\t%.6g\t%.6g%n", key, ms, flops, bytes);
        System.out.flush();
    }

    /** Matrix parameters a token passes through, without the embedding table (the tied output head counted apart). */
    static double layerParams(ModelConfig c) {
        int qDim = c.nHeads() * c.headSize();
        return (double) c.nLayers() * ((double) qDim * c.dim() * 2 + 2.0 * c.kvDim() * c.dim() + 3.0 * c.hiddenDim() * c.dim());
    }

    /** Bytes of bf16 weights a forward pass must read once: layers and the output head. */
    static double weightBytes(ModelConfig c) {
        return 2 * (layerParams(c) + (double) c.vocabSize() * c.dim());
    }

    /** Phases of a decode step, as bits of the set left out in the breakdown. */
    private static final int PROJECT = 1, ATTEND = 2, FINISH = 4, HEAD = 8;
    private static final String[] PHASES = {"norm+QKV+RoPE+KV write", "attention", "o_proj+residual+norm+MLP", "LM head+argmax"};

    /**
     * End-to-end prefill of 8K and 32K prompts. With -Dsps2.bench.prefillVariants=w8_all,wg3p (a list of
     * CudaAttention variants) each variant is timed in turn on the same backend, its rows keyed "prefill_L...:variant".
     */
    void prefill(LlamaModel model) {
        String list = System.getProperty("sps2.bench.prefillVariants", "");
        for (String variant : list.isBlank() ? List.of("") : List.of(list.split(","))) {
            if (!variant.isEmpty()) {
                // a variant that is not loaded, or does not suit the heads, would fall back and be timed under the wrong name
                ModelConfig c = model.config();
                if (!cuda.runsPrefillVariant(c.headSize(), c.nHeads(), c.nKvHeads(), variant)) {
                    System.out.printf("prefill variant %s: no kernel for head size %d with %d/%d heads is loaded on this device, not timed%n",
                            variant, c.headSize(), c.nHeads(), c.nKvHeads());
                    continue;
                }
                cuda.prefillVariant(variant);
            }
            prefill(model, variant.isEmpty() ? "" : ":" + variant);
        }
    }

    private void prefill(LlamaModel model, String suffix) {
        ModelConfig c = model.config();
        for (int[] lc : new int[][] {{8192, 8192}, {32768, 32768}, {32768, 8192}}) {
            int len = lc[0], chunk = lc[1];
            int[] prompt = randomTokens(len, SEED + 7 * len);
            double[] t = new double[3];
            try (Sequence s = new Sequence(model, len, chunk)) {
                s.forward(prompt);
                for (int r = 0; r < t.length; r++) {
                    s.resumeAt(0);
                    long t0 = System.nanoTime();
                    s.forward(prompt); // ends with a read of the logits: synchronous
                    t[r] = (System.nanoTime() - t0) / 1e6;
                }
            }
            Arrays.sort(t);
            // Causal attention: L^2/2 query-key pairs per head, 4*headSize FLOPs each (QK^T and PV).
            double attn = 4.0 * c.headSize() * c.nHeads() * c.nLayers() * ((double) len * len / 2);
            double flops = 2 * layerParams(c) * len + attn + 2.0 * c.vocabSize() * c.dim();
            double bytes = weightBytes(c) + 2.0 * 2 * c.nLayers() * (double) len * c.kvDim();
            report("prefill_L" + len + (chunk == len ? "" : "_chunk" + chunk) + suffix, t[1], flops, bytes);
            System.out.printf("prefill %d tokens (chunk %d%s): %s ms%n", len, chunk, suffix, Arrays.toString(t));
        }
    }

    /** One decode step of B sequences with a 4K context each, eager and as a CUDA graph. */
    void decode(LlamaModel model) {
        ModelConfig c = model.config();
        SplittableRandom rnd = new SplittableRandom(SEED);
        for (int batch : new int[] {1, 32, 128}) {
            int bs = 16;
            int blocksPer = CTX / bs;
            try (KvPool pool = model.kvPool(batch * CTX, bs); LlamaModel.Workspace ws = model.workspace(batch)) {
                fillKv(pool, batch * CTX, rnd);
                int[][] tables = new int[batch][blocksPer];
                int[] qStart = new int[batch], qLen = new int[batch], kvLen = new int[batch];
                int[] ids = new int[batch], pos = new int[batch], slots = new int[batch], rows = new int[batch];
                for (int s = 0; s < batch; s++) {
                    for (int j = 0; j < blocksPer; j++) {
                        tables[s][j] = s * blocksPer + j;
                    }
                    qStart[s] = s;
                    qLen[s] = 1;
                    kvLen[s] = CTX;
                    ids[s] = rnd.nextInt(128000);
                    pos[s] = CTX - 1;
                    slots[s] = BlockAllocator.slot(tables[s], bs, CTX - 1);
                    rows[s] = s;
                }
                try (Tensor idT = cuda.upload(ids); Tensor posT = cuda.upload(pos); Tensor slotT = cuda.upload(slots);
                        Tensor next = cuda.allocate(1, batch, CudaTensor.DType.I32);
                        AttentionBatch.Prepared prepared = cuda.prepare(new AttentionBatch(qStart, qLen, kvLen, tables))) {
                    // the decode step, with the phases named in `skip` left out (for the breakdown below)
                    IntFunction<Runnable> stepWithout = skip -> () -> {
                        model.embed(ws, idT, batch);
                        for (int l = 0; l < c.nLayers(); l++) {
                            if ((skip & PROJECT) == 0) {
                                model.project(l, ws, posT, batch);
                                cuda.kvWrite(pool, l, ws.k, ws.v, slotT, batch);
                            }
                            if ((skip & ATTEND) == 0) {
                                model.attend(l, ws, pool, prepared);
                            }
                            if ((skip & FINISH) == 0) {
                                model.finishLayer(l, ws, batch);
                            }
                        }
                        if ((skip & HEAD) == 0) {
                            model.logits(ws, rows);
                            cuda.argmax(next, ws.logits, batch);
                        }
                    };
                    Runnable step = stepWithout.apply(0);
                    for (int i = 0; i < 3; i++) {
                        step.run();
                    }
                    cuda.sync();
                    int[] tokens = cuda.readInts(next, batch);
                    int reps = 20;
                    double[] eager = new double[5];
                    for (int r = 0; r < eager.length; r++) {
                        long t0 = System.nanoTime();
                        for (int i = 0; i < reps; i++) {
                            step.run();
                        }
                        cuda.sync();
                        eager[r] = (System.nanoTime() - t0) / 1e6 / reps;
                    }
                    Arrays.sort(eager);
                    double graph = graphTime(step, 20);
                    int[] again = cuda.readInts(next, batch);
                    double kv = 2.0 * 2 * c.nLayers() * (double) batch * CTX * c.kvDim();
                    double attn = 4.0 * c.headSize() * c.nHeads() * c.nLayers() * (double) batch * CTX;
                    double flops = 2 * (layerParams(c) + (double) c.vocabSize() * c.dim()) * batch + attn;
                    double bytes = weightBytes(c) + kv;
                    report("decode_B" + batch + "_C" + CTX + ":eager", eager[eager.length / 2], flops, bytes);
                    if (graph > 0) {
                        report("decode_B" + batch + "_C" + CTX + ":graph", graph, flops, bytes);
                    }
                    System.out.printf("decode batch %d: eager %s ms/step, graph %.4f ms/step; same tokens after replays %s; KV pool %.1f GB%n",
                            batch, Arrays.toString(eager), graph, Arrays.equals(tokens, again), pool.bytes() / 1e9);
                    if (graph > 0) {
                        // Where the graph's time goes: each phase is the step's time minus the time of the step without it.
                        StringBuilder parts = new StringBuilder();
                        for (int phase : new int[] {PROJECT, ATTEND, FINISH, HEAD}) {
                            double without = graphTime(stepWithout.apply(phase), 20);
                            String name = PHASES[Integer.numberOfTrailingZeros(phase)];
                            parts.append(without <= 0 ? String.format(" %s: not recorded;", name)
                                    : String.format(" %s %.3f ms (%.0f%%);", name, graph - without, 100 * (graph - without) / graph));
                        }
                        System.out.printf("decode batch %d graph breakdown (step minus the step without the phase):%s%n", batch, parts);
                    }
                }
            }
        }
    }

    /** Random K and V in the first {@code tokens} slots of every layer (timings never run on zeros). */
    private void fillKv(KvPool pool, int tokens, SplittableRandom rnd) {
        int kvDim = pool.kvDim();
        int chunk = Math.min(tokens, 32768);
        float[] host = new float[chunk * kvDim];
        try (Tensor k = cuda.allocate(chunk, kvDim); Tensor v = cuda.allocate(chunk, kvDim)) {
            for (Tensor t : new Tensor[] {k, v}) {
                for (int i = 0; i < host.length; i++) {
                    host[i] = (float) rnd.nextGaussian();
                }
                cuda.write(t, 0, host, 0, chunk);
            }
            List<Tensor> slotTensors = new ArrayList<>();
            try {
                for (int s0 = 0; s0 < tokens; s0 += chunk) {
                    int n = Math.min(chunk, tokens - s0);
                    int[] slots = new int[n];
                    for (int i = 0; i < n; i++) {
                        slots[i] = s0 + i;
                    }
                    slotTensors.add(cuda.upload(slots));
                }
                for (int l = 0; l < pool.layers(); l++) {
                    int s0 = 0;
                    for (Tensor st : slotTensors) {
                        int n = Math.min(chunk, tokens - s0);
                        cuda.kvWrite(pool, l, k, v, st, n);
                        s0 += n;
                    }
                }
                cuda.sync();
            } finally {
                slotTensors.forEach(Tensor::close);
            }
        }
    }

    /** Median milliseconds of one replay of {@code step} captured as a CUDA graph, or -1 when capture fails. */
    private double graphTime(Runnable step, int reps) {
        CUstream s = cuda.stream();
        CUgraph graph = new CUgraph();
        CUgraphExec exec = new CUgraphExec();
        try {
            cuStreamBeginCapture(s, CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED);
            try {
                step.run();
            } finally {
                cuStreamEndCapture(s, graph);
            }
            cuGraphInstantiate(exec, graph, 0);
        } catch (CudaException e) {
            System.out.println("graph capture of the decode step failed: " + e.getMessage());
            return -1;
        }
        try {
            for (int i = 0; i < 3; i++) {
                cuGraphLaunch(exec, s);
            }
            double[] t = new double[reps];
            float[] ms = {0};
            for (int r = 0; r < reps; r++) {
                cuEventRecord(start, s);
                cuGraphLaunch(exec, s);
                cuEventRecord(stop, s);
                cuEventSynchronize(stop);
                cuEventElapsedTime(ms, start, stop);
                t[r] = ms[0];
            }
            Arrays.sort(t);
            return t[reps / 2];
        } finally {
            cuGraphExecDestroy(exec);
            cuGraphDestroy(graph);
        }
    }
}
