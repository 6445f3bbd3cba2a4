package sps2.operators.csa;

import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.ModelConfig;

/**
 * The two ends of the prefill K/V exchange between shards, shared by the shard engine in the Flink job and the
 * in-process sequence-parallel runner: the sender gathers, on its device, the rows of its segment's K and V that
 * each KV head of a later shard may see (chosen by a {@link CsaPolicy}) into the compact per-head layout of
 * {@link CompactKv}; the receiver attends its queries over them and folds the result into its running attention
 * with the exact log-sum-exp merge.
 */
public final class KvExchange {
    private KvExchange() {
    }

    /**
     * The K and V rows {@code rows[g]} of each KV head g of a segment ([n, nKvHeads * headSize] each, on the
     * sender's device) as a {@link CompactKv}: head g at rows {@code g * maxLen ..} of two new tensors
     * [nKvHeads * maxLen, headSize]. Heads with fewer rows than the longest are padded with a repeat of a
     * valid row, which the attention never reads past the head's length.
     */
    public static CompactKv gather(Backend b, Tensor k, Tensor v, int nKvHeads, int headSize, int[][] rows) {
        if (rows.length != nKvHeads) {
            throw new IllegalArgumentException("A K/V selection has " + rows.length + " KV heads, but the model has " + nKvHeads);
        }
        int maxLen = 1;
        int[] lens = new int[nKvHeads];
        for (int g = 0; g < nKvHeads; g++) {
            lens[g] = rows[g].length;
            maxLen = Math.max(maxLen, lens[g]);
        }
        int[] pieces = new int[nKvHeads * maxLen];
        for (int g = 0; g < nKvHeads; g++) {
            for (int i = 0; i < maxLen; i++) {
                int r = i < lens[g] ? rows[g][i] : lens[g] > 0 ? rows[g][0] : 0;
                pieces[g * maxLen + i] = r * nKvHeads + g;
            }
        }
        Tensor ck = b.gather(k, headSize, pieces);
        Tensor cv = b.gather(v, headSize, pieces);
        return new CompactKv(ck, cv, maxLen, lens);
    }

    /** Bytes of real K and V values a compact block holds (padding left out), in the device's element type. */
    public static long bytes(CompactKv kv, int headSize, WireType type) {
        long rows = 0;
        for (int len : kv.lens()) {
            rows += len;
        }
        return 2L * rows * headSize * type.bytes();
    }

    /** What the dense policy would send for a segment of {@code n} tokens, in bytes of {@code type}. */
    public static long denseBytes(ModelConfig c, int n, WireType type) {
        return 2L * n * c.kvDim() * type.bytes();
    }

    /** Attention of the first {@code n} rows of ws.q over a compact block, merged into ws.att / ws.lse. */
    public static void attendAndMerge(LlamaModel model, LlamaModel.Workspace ws, int n, CompactKv block) {
        if (block.lens().length != model.config().nKvHeads()) {
            throw new IllegalArgumentException("A K/V block has " + block.lens().length + " KV heads, but the model has "
                    + model.config().nKvHeads());
        }
        model.attendRemoteAndMerge(ws, block, n);
    }
}
