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
import sps2.operators.messages.SeqWork;
import sps2.operators.messages.ShardStep;
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
        for (SeqWork w : step.seqs) {
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
        int maxBlocks = 1;
        for (SeqWork w : step.seqs) {
            maxBlocks = Math.max(maxBlocks, w.blockTable.length);
        }
        int rows = roundUp(n);
        int blocks = roundUp(maxBlocks);
        long key = ((long) rows << 32) | blocks;
        Bucket bucket = buckets.get(key);
        if (bucket == null) {
            evictIfFull();
            bucket = new Bucket(rows, blocks);
            buckets.put(key, bucket);
        }
        if (bucket.failed) {
            return null;
        }
        int[] tokens = bucket.run(step);
        int[] seqs = new int[n];
        for (int i = 0; i < n; i++) {
            seqs[i] = i;
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        return new ShardEngine.Outcome(seqs, tokens, 0, 0, seconds, 0, null, true);
    }

    private void evictIfFull() {
        if (buckets.size() < MAX_BUCKETS) {
            return;
        }
        Iterator<Bucket> it = buckets.values().iterator();
        Bucket eldest = it.next();
        it.remove();
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

        int[] run(ShardStep step) {
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
                    SeqWork w = step.seqs[i];
                    id[i] = w.tokens[0];
                    pos[i] = w.startPos;
                    slot[i] = BlockAllocator.slot(w.blockTable, bs, w.kvBefore);
                    kvLen[i] = w.kvBefore + 1;
                    tables[i] = Arrays.copyOf(w.blockTable, blocks);
                    params[i] = w.sampling();
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
            if (graph != null) {
                graph.replay();
            } else {
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
            return b.takeSampled(sampled, ws.logits, n, params, drawAt);
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
