package sps2.operators.sp;

import java.util.ArrayList;
import java.util.List;

import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Sequence;
import sps2.gpu.Tensor;
import sps2.model.ModelConfig;
import sps2.operators.csa.CsaPolicy;
import sps2.operators.csa.KvExchange;

/**
 * Sequence-parallel prefill of one prompt with its shards simulated in one process, step for step as the
 * job's stage operators do it (same {@link LlamaModel} stages, same {@link KvExchange} packing, same
 * policies, same merge order), but with every position's logits at hand. Used to measure what a sparse
 * policy costs in accuracy, and to check dense SP against single-shard prefill.
 */
public final class InProcessSequenceParallel {
    private InProcessSequenceParallel() {
    }

    /**
     * @param logits      [to - from][vocab] logits of positions from..to-1
     * @param bytesSent   K/V bytes that crossed shards under the policy, in the backend's wire type
     * @param denseBytes  what dense attention would have sent
     * @param ownMs       per shard: time on its own segment (projections, own attention, MLP)
     * @param sendMs      per shard: time packing its K/V on the device and waiting for the copies to the host
     *                    beyond what its own attention hid
     * @param remoteMs    per shard: time taking in and attending to the K/V it receives
     */
    public record Result(float[][] logits, long bytesSent, long denseBytes, double[] ownMs, double[] sendMs, double[] remoteMs) {
    }

    /**
     * Prefills {@code tokens} cut at {@code bounds} (b[0] = 0 .. b[S] = tokens.length, one segment per shard).
     *
     * @param from          first position whose logits are wanted
     * @param continueInto  if not null, receives every layer's K/V so that decoding can go on in it
     */
    public static Result prefill(LlamaModel model, int[] tokens, int[] bounds, CsaPolicy policy, int from, Sequence continueInto) {
        return prefill(model, tokens, bounds, policy, from, continueInto, false);
    }

    /**
     * As {@link #prefill(LlamaModel, int[], int[], CsaPolicy, int, Sequence)}; with {@code timePhases} the
     * backend is synchronised at the end of every phase so the per-shard times in the result are exact.
     */
    public static Result prefill(LlamaModel model, int[] tokens, int[] bounds, CsaPolicy policy, int from, Sequence continueInto,
            boolean timePhases) {
        ModelConfig c = model.config();
        Backend b = model.backend();
        int shards = bounds.length - 1;
        LlamaModel.Workspace[] ws = new LlamaModel.Workspace[shards];
        KvPool[] pools = new KvPool[shards];
        Tensor[] pos = new Tensor[shards];
        Tensor[] slots = new Tensor[shards];
        Tensor[] ids = new Tensor[shards];
        AttentionBatch.Prepared[] batches = new AttentionBatch.Prepared[shards];
        int[] n = new int[shards];
        double[] ownMs = new double[shards];
        double[] sendMs = new double[shards];
        double[] remoteMs = new double[shards];
        long sent = 0;
        long dense = 0;
        try {
            for (int i = 0; i < shards; i++) {
                n[i] = bounds[i + 1] - bounds[i];
                ws[i] = model.workspace(n[i]);
                pools[i] = model.kvPool(n[i], 16);
                int[] table = new int[pools[i].blocks()];
                int[] p = new int[n[i]];
                int[] s = new int[n[i]];
                for (int t = 0; t < table.length; t++) {
                    table[t] = t;
                }
                for (int t = 0; t < n[i]; t++) {
                    p[t] = bounds[i] + t;
                    s[t] = t;
                }
                pos[i] = b.upload(p);
                slots[i] = b.upload(s);
                ids[i] = b.upload(java.util.Arrays.copyOfRange(tokens, bounds[i], bounds[i + 1]));
                batches[i] = b.prepare(AttentionBatch.single(n[i], n[i], table));
                long t0 = mark(b, timePhases);
                model.embed(ws[i], ids[i], n[i]);
                ownMs[i] += since(b, timePhases, t0);
            }
            for (int l = 0; l < c.nLayers(); l++) {
                // packed[i][j]: the K/V shard i sends shard j (j > i)
                KvExchange.Packed[][] packed = new KvExchange.Packed[shards][shards];
                for (int i = 0; i < shards; i++) {
                    long t0 = mark(b, timePhases);
                    model.project(l, ws[i], pos[i], n[i]);
                    b.kvWrite(pools[i], l, ws[i].k, ws[i].v, slots[i], n[i]);
                    if (continueInto != null) {
                        continueInto.importKv(l, ws[i].k, ws[i].v, bounds[i], n[i]);
                    }
                    ownMs[i] += since(b, timePhases, t0);
                    // as the stage operator does: start the copies of the K/V, attend while they run, then take them
                    KvExchange.Outgoing sending = null;
                    if (i < shards - 1) {
                        long t1 = mark(b, timePhases);
                        List<int[][]> selections = new ArrayList<>();
                        for (int j = i + 1; j < shards; j++) {
                            selections.add(policy.select(bounds[i], n[i], bounds[j], c.nKvHeads()));
                        }
                        sending = KvExchange.send(b, ws[i].k, ws[i].v, c.nKvHeads(), c.headSize(), selections);
                        sendMs[i] += since(b, timePhases, t1);
                    }
                    long t2 = mark(b, timePhases);
                    model.attend(l, ws[i], pools[i], batches[i]);
                    ownMs[i] += since(b, timePhases, t2);
                    if (sending != null) {
                        long t3 = mark(b, timePhases);
                        KvExchange.Packed[] got = sending.await();
                        for (int j = i + 1; j < shards; j++) {
                            packed[i][j] = got[j - i - 1];
                            sent += packed[i][j].bytes();
                            dense += KvExchange.denseBytes(c, n[i], packed[i][j].type());
                        }
                        sendMs[i] += since(b, timePhases, t3);
                    }
                }
                for (int j = 1; j < shards; j++) {
                    for (int i = 0; i < j; i++) {
                        long t1 = mark(b, timePhases);
                        KvExchange.attendAndMerge(model, ws[j], n[j], packed[i][j]);
                        remoteMs[j] += since(b, timePhases, t1);
                    }
                }
                for (int i = 0; i < shards; i++) {
                    long t0 = mark(b, timePhases);
                    model.finishLayer(l, ws[i], n[i]);
                    ownMs[i] += since(b, timePhases, t0);
                }
            }
            int total = bounds[shards];
            float[][] logits = new float[total - from][c.vocabSize()];
            for (int i = 0; i < shards; i++) {
                int lo = Math.max(from, bounds[i]);
                int hi = bounds[i + 1];
                int cap = ws[i].logits.rows();
                for (int at = lo; at < hi; at += cap) {
                    int count = Math.min(cap, hi - at);
                    int[] rows = new int[count];
                    for (int r = 0; r < count; r++) {
                        rows[r] = at + r - bounds[i];
                    }
                    model.logits(ws[i], rows);
                    for (int r = 0; r < count; r++) {
                        b.read(ws[i].logits, r, logits[at + r - from], 0, 1);
                    }
                }
            }
            if (continueInto != null) {
                continueInto.resumeAt(total);
            }
            return new Result(logits, sent, dense, ownMs, sendMs, remoteMs);
        } finally {
            for (int i = 0; i < shards; i++) {
                if (ws[i] != null) {
                    ws[i].close();
                    pools[i].close();
                    pos[i].close();
                    slots[i].close();
                    ids[i].close();
                    batches[i].close();
                }
            }
        }
    }

    private static long mark(Backend b, boolean sync) {
        if (sync) {
            b.sync();
        }
        return System.nanoTime();
    }

    private static double since(Backend b, boolean sync, long start) {
        if (sync) {
            b.sync();
        }
        return (System.nanoTime() - start) / 1e6;
    }
}
