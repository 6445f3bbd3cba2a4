package sps2.operators.csa;

import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.model.ModelConfig;

/**
 * The wire format of prefill K/V between shards and the two ends of the exchange, shared by the Flink
 * stage operators and the in-process sequence-parallel runner: the sender packs the rows each KV head
 * may see (chosen by a {@link CsaPolicy}); the receiver attends its queries over them and folds the
 * result into its running attention with the exact log-sum-exp merge.
 *
 * <p>Payload: for KV head 0, 1, ... its selected K rows ({@code headSize} floats each), then the V rows
 * in the same order.
 */
public final class KvExchange {
    private KvExchange() {
    }

    /** A packed block: the payload and how many rows each KV head has. */
    public record Packed(float[] payload, int[] headLens, int maxLen) {
        public long bytes() {
            return 4L * payload.length;
        }
    }

    /**
     * Packs rows of a segment's K and V ([n, nKvHeads*headSize], host floats).
     *
     * @param rows per KV head, the row indices to send (from {@link CsaPolicy#select})
     */
    public static Packed pack(float[] k, float[] v, int nKvHeads, int headSize, int[][] rows) {
        int kvDim = nKvHeads * headSize;
        int[] lens = new int[nKvHeads];
        int total = 0;
        int maxLen = 0;
        for (int g = 0; g < nKvHeads; g++) {
            lens[g] = rows[g].length;
            total += lens[g];
            maxLen = Math.max(maxLen, lens[g]);
        }
        float[] payload = new float[2 * total * headSize];
        int kAt = 0;
        int vAt = total * headSize;
        for (int g = 0; g < nKvHeads; g++) {
            for (int r : rows[g]) {
                System.arraycopy(k, r * kvDim + g * headSize, payload, kAt, headSize);
                System.arraycopy(v, r * kvDim + g * headSize, payload, vAt, headSize);
                kAt += headSize;
                vAt += headSize;
            }
        }
        return new Packed(payload, lens, maxLen);
    }

    /** Attention of the first {@code n} rows of ws.q over a packed block, merged into ws.att / ws.lse. */
    public static void attendAndMerge(LlamaModel model, LlamaModel.Workspace ws, int n, Packed block) {
        ModelConfig c = model.config();
        Backend b = model.backend();
        int hs = c.headSize();
        int nKv = c.nKvHeads();
        int maxLen = Math.max(1, block.maxLen());
        int total = 0;
        for (int len : block.headLens()) {
            total += len;
        }
        try (Tensor k = b.allocate(nKv * maxLen, hs); Tensor v = b.allocate(nKv * maxLen, hs)) {
            int kOff = 0;
            int vOff = total * hs;
            for (int g = 0; g < nKv; g++) {
                int len = block.headLens()[g];
                if (len > 0) {
                    b.write(k, g * maxLen, block.payload(), kOff, len);
                    b.write(v, g * maxLen, block.payload(), vOff, len);
                }
                kOff += len * hs;
                vOff += len * hs;
            }
            model.attendRemoteAndMerge(ws, new CompactKv(k, v, maxLen, block.headLens()), n);
            b.sync();
        }
    }
}
