package sps2.operators.shard;

import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.BlockAllocator;
import sps2.gpu.LlamaModel;
import sps2.gpu.StepGraph;
import sps2.gpu.Tensor;
import sps2.model.ModelConfig;
import sps2.model.sampler.SamplingParams;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;
import sps2.operators.runtime.ShardRuntime;

/**
 * Decode steps that exchange nothing (one member: SP degree 1, or a Sarathi worker's pure-decode batch) replayed
 * from recorded device graphs: one launch for embed, every layer, the logits and the sampling, instead of ~10
 * kernel launches per layer from Java.
 *
 * <p>A graph replays fixed device addresses, so each bucket — batches of up to R rows (a power of two) whose block
 * tables have up to T blocks (a power of two) — owns its workspace and input tensors, refreshed in place before
 * each replay. Rows past the batch are padding: token 0 at position 0 with no keys (zero attention), their KV
 * written to the scratch block 0 and their tokens ignored. Attention key splits are planned for T blocks, so every
 * batch of a bucket runs the same launches. A bucket's first batch runs eagerly and records the graph; later ones
 * replay it. At most {@link #MAX_BUCKETS} buckets are kept (least recently used out).
 */
final class DecodeGraphs implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(DecodeGraphs.class);
    static final int MAX_ROWS = 256;
    static final int MAX_BUCKETS = 8;

    private final ShardRuntime runtime;
    private final LlamaModel model;
    private final Backend b;
    private final Map<Long, Bucket> buckets = new LinkedHashMap<>(16, 0.75f, true);

    private DecodeGraphs(ShardRuntime runtime) {
        this.runtime = runtime;
        this.model = runtime.model();
        this.b = model.backend();
    }

    /** Graphs for this runtime's backend, or null when it cannot record them (the CPU backend). */
    static DecodeGraphs create(ShardRuntime runtime) {
        try (Tensor probe = runtime.backend().allocateSampling(1)) {
            return probe == null ? null : new DecodeGraphs(runtime);
        }
    }

    /** Whether a step is one these graphs run: decode rows only, one row each, all sampling here, no exchange. */
    static boolean suits(ShardStep step) {
        if (step.prefill || step.restoreOnly || step.members.length > 1 || step.seqs.length == 0 || step.seqs.length > MAX_ROWS) {
            return false;
        }
        for (StepSeq w : step.seqs) {
            if (w.rows() != 1 || !w.sample || !w.appendKv) {
                return false;
            }
        }
        return true;
    }

    int size() {
        return buckets.size();
    }

    static int roundUp(int n) {
        return n <= 1 ? 1 : Integer.highestOneBit(n - 1) << 1;
    }

    /** Runs a step that {@link #suits}; null when the graph could not be recorded (the caller runs it eagerly). */
    ShardEngine.Outcome run(ShardStep step) {
        long t0 = System.nanoTime();
        int n = step.seqs.length;
        Bucket bucket;
        int[] tokens;
        boolean ahead = speculated != null && speculated.sameWork(step);
        if (ahead) {
            bucket = speculated.bucket;
            tokens = bucket.collect(step);
        } else {
            bucket = bucketFor(step, true);
            if (bucket.failed) {
                speculated = null;
                return null;
            }
            bucket.launch(step, true);
            tokens = bucket.collect(step);
        }
        speculated = null;
        if (ahead) {
            stepsAhead++;
        }
        int[] seqs = new int[n];
        for (int i = 0; i < n; i++) {
            seqs[i] = i;
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return new ShardEngine.Outcome(seqs, tokens, 0, 0, seconds, 0, null, true);
    }

    /**
     * Starts the decode step that follows {@code step} on the device before the scheduler asks for it: the same rows
     * minus those that {@code continues} says have finished, each fed the token just sampled, one position further.
     * The scheduler's next step is then usually that very step ({@link #run} takes its result instead of running it
     * again: the same graph over the same inputs gives the same bits); when it is not, nothing is lost but the work.
     * Only steps whose graph is recorded and whose rows' next KV slot lies in their block tables are started: the
     * one write outside the next step's own (the next position's KV of a row that the scheduler then drops) lands in
     * a block that row still holds, since only finished rows are released and they are left out here.
     */
    void runAhead(ShardStep step, int[] tokens, boolean[] continues) {
        speculated = null;
        int bs = runtime.pool().blockSize();
        java.util.List<StepSeq> next = new java.util.ArrayList<>();
        for (int i = 0; i < step.seqs.length; i++) {
            StepSeq w = step.seqs[i];
            if (!continues[i]) {
                continue;
            }
            if ((w.kvBefore + 1) / bs >= w.blockTable.length) {
                return; // the next token needs a block the scheduler has not given the row yet
            }
            StepSeq n = new StepSeq();
            n.requestId = w.requestId;
            n.tokens = new int[] {tokens[i]};
            n.startPos = w.startPos + 1;
            n.kvBefore = w.kvBefore + 1;
            n.appendKv = true;
            n.sample = true;
            n.blockTable = w.blockTable;
            n.generation = w.generation;
            next.add(n);
        }
        if (next.isEmpty()) {
            return;
        }
        ShardStep ahead = new ShardStep();
        ahead.seqs = next.toArray(new StepSeq[0]);
        Bucket bucket = bucketFor(ahead, false);
        if (bucket == null || bucket.graph == null || bucket.failed) {
            return;
        }
        bucket.launch(ahead, false);
        speculated = new Ahead(ahead, bucket);
    }

    /** Decode steps whose result came from {@link #runAhead} (logs, tests). */
    long stepsAhead() {
        return stepsAhead;
    }

    private Ahead speculated;
    private long stepsAhead;

    /** A step started ahead of the scheduler, and the bucket it runs in. */
    private record Ahead(ShardStep step, Bucket bucket) {
        /** Whether the scheduler's step asks for exactly the device work that was started. */
        boolean sameWork(ShardStep real) {
            if (real.seqs.length != step.seqs.length || !suits(real)) {
                return false;
            }
            for (int i = 0; i < real.seqs.length; i++) {
                StepSeq a = step.seqs[i];
                StepSeq b = real.seqs[i];
                if (!a.requestId.equals(b.requestId) || a.tokens[0] != b.tokens[0] || a.startPos != b.startPos || a.kvBefore != b.kvBefore
                        || !Arrays.equals(a.blockTable, b.blockTable) || !a.generation.sampling().equals(b.generation.sampling())) {
                    return false;
                }
            }
            return true;
        }
    }

    /** The bucket of a step's shape; made (and, if full, the least recently used dropped) when {@code create}. */
    private Bucket bucketFor(ShardStep step, boolean create) {
        int maxBlocks = 1;
        for (StepSeq w : step.seqs) {
            maxBlocks = Math.max(maxBlocks, w.blockTable.length);
        }
        int rows = roundUp(step.seqs.length);
        int blocks = roundUp(maxBlocks);
        long key = ((long) rows << 32) | blocks;
        Bucket bucket = buckets.get(key);
        if (bucket == null && create) {
            evictIfFull();
            bucket = new Bucket(rows, blocks);
            buckets.put(key, bucket);
        }
        return bucket;
    }

    private void evictIfFull() {
        if (buckets.size() < MAX_BUCKETS) {
            return;
        }
        Iterator<Bucket> it = buckets.values().iterator();
        Bucket eldest = it.next();
        it.remove();
        if (speculated != null && speculated.bucket() == eldest) {
            speculated = null;
        }
        eldest.close();
    }

    @Override
    public void close() {
        buckets.values().forEach(Bucket::close);
        buckets.clear();
    }

    /** The fixed tensors and the graph of one (rows, blocks) bucket. */
    private final class Bucket implements AutoCloseable {
        final int rows;
        final int blocks;
        final LlamaModel.Workspace ws;
        final Tensor ids;
        final Tensor positions;
        final Tensor slots;
        final Tensor sampling;
        final Tensor sampled;
        final int[] logitRows;
        AttentionBatch.Prepared batch;
        StepGraph graph;
        boolean failed;
        SamplingParams[] drawParams;
        int[] drawPositions;

        Bucket(int rows, int blocks) {
            this.rows = rows;
            this.blocks = blocks;
            this.ws = model.workspace(rows);
            this.ids = b.upload(new int[rows]);
            this.positions = b.upload(new int[rows]);
            this.slots = b.upload(new int[rows]);
            this.sampling = b.allocateSampling(rows);
            this.sampled = b.upload(new int[rows]);
            this.logitRows = new int[rows];
            for (int i = 0; i < rows; i++) {
                logitRows[i] = i;
            }
        }

        /** Refreshes the inputs and replays the graph (recording it first when {@code record} and there is none yet). */
        void launch(ShardStep step, boolean record) {
            int n = step.seqs.length;
            int bs = runtime.pool().blockSize();
            int[] id = new int[rows];
            int[] pos = new int[rows];
            int[] slot = new int[rows];
            int[] qStart = new int[rows];
            int[] qLen = new int[rows];
            int[] kvLen = new int[rows];
            int[][] tables = new int[rows][];
            SamplingParams[] params = new SamplingParams[n];
            int[] drawAt = new int[n];
            for (int i = 0; i < rows; i++) {
                qStart[i] = i;
                qLen[i] = 1;
                if (i < n) {
                    StepSeq w = step.seqs[i];
                    id[i] = w.tokens[0];
                    pos[i] = w.startPos;
                    slot[i] = BlockAllocator.slot(w.blockTable, bs, w.kvBefore);
                    kvLen[i] = w.kvBefore + 1;
                    tables[i] = Arrays.copyOf(w.blockTable, blocks);
                    params[i] = w.generation.sampling();
                    drawAt[i] = w.startPos + 1;
                } else {
                    tables[i] = new int[blocks]; // padding: block 0, the scratch block; no keys
                }
            }
            b.writeInts(ids, id);
            b.writeInts(positions, pos);
            b.writeInts(slots, slot);
            SamplingParams greedy = new SamplingParams(0f, 0, 1f, 0f, 0);
            SamplingParams[] all = Arrays.copyOf(params, rows);
            int[] allAt = Arrays.copyOf(drawAt, rows);
            Arrays.fill(all, n, rows, greedy);
            b.writeSampling(sampling, all, allAt, rows);
            AttentionBatch next = new AttentionBatch(qStart, qLen, kvLen, tables, blocks * bs);
            AttentionBatch.Prepared prepared = b.prepare(next, batch);
            if (prepared != batch && graph != null) {
                graph.close(); // the batch's arrays moved: a recording over the old ones is stale
                graph = null;
            }
            batch = prepared;
            drawParams = params;
            drawPositions = drawAt;
            if (graph != null) {
                graph.replay();
            } else if (record) {
                step(); // eagerly, for this batch's result
                try {
                    graph = b.capture(this::step);
                    LOG.info("Recorded the decode step for batches of up to {} rows with up to {} KV blocks each as a device graph.", rows,
                            blocks);
                } catch (RuntimeException e) {
                    failed = true;
                    LOG.warn("Could not record the decode step for {} rows and {} blocks as a device graph; such steps run eagerly.", rows,
                            blocks, e);
                }
                if (graph == null) {
                    failed = true;
                }
            }
        }

        /** The tokens of the step {@link #launch} last started (waits for it). */
        int[] collect(ShardStep step) {
            return b.takeSampled(sampled, ws.logits, step.seqs.length, drawParams, drawPositions);
        }

        /** The whole decode step on the bucket's fixed tensors. */
        private void step() {
            ModelConfig c = model.config();
            model.embed(ws, ids, rows);
            for (int l = 0; l < c.nLayers(); l++) {
                model.project(l, ws, positions, rows);
                b.kvWrite(runtime.pool(), l, ws.k, ws.v, slots, rows);
                model.attend(l, ws, runtime.pool(), batch);
                model.finishLayer(l, ws, rows);
            }
            model.logits(ws, logitRows);
            b.sampleRecorded(sampled, ws.logits, rows, sampling);
        }

        @Override
        public void close() {
            if (graph != null) {
                graph.close();
            }
            if (batch != null) {
                batch.close();
            }
            for (Tensor t : new Tensor[] {ids, positions, slots, sampling, sampled}) {
                t.close();
            }
            ws.close();
        }
    }
}
