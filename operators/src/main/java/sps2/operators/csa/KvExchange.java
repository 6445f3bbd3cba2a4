package sps2.operators.csa;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import sps2.gpu.Backend;
import sps2.gpu.CompactKv;
import sps2.gpu.LlamaModel;
import sps2.gpu.PendingRead;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.ModelConfig;

/**
 * The wire format of prefill K/V between shards and the two ends of the exchange, shared by the Flink
 * stage operators and the in-process sequence-parallel runner: the sender gathers, on its device, the rows
 * each KV head may see (chosen by a {@link CsaPolicy}) and copies them to the host in the device's own
 * element type while its own attention runs; the receiver uploads them, attends its queries over them and
 * folds the result into its running attention with the exact log-sum-exp merge.
 *
 * <p>Payload ({@link Packed#type()}, little-endian): for KV head 0, 1, ... its selected K rows
 * ({@code headSize} values each), then the V rows in the same order.
 */
public final class KvExchange {
    private KvExchange() {
    }

    /** A packed block: the payload, its element type, and how many rows each KV head has. */
    public record Packed(WireType type, byte[] payload, int[] headLens, int maxLen) {
        public long bytes() {
            return payload.length;
        }
    }

    /**
     * The K/V one sender is copying to the host for its receivers, started by {@link #send}. Receivers whose
     * selections are equal (every receiver under the dense policy) share one copy and one payload.
     */
    public static final class Outgoing {
        private final PendingRead[] reads;
        private final int[] readOf;
        private final int[][][] selections;

        private Outgoing(PendingRead[] reads, int[] readOf, int[][][] selections) {
            this.reads = reads;
            this.readOf = readOf;
            this.selections = selections;
        }

        /** Waits for the copies; one block per receiver, in the order of the selections given to {@link #send}. */
        public Packed[] await() {
            Packed[] distinct = new Packed[reads.length];
            Packed[] out = new Packed[readOf.length];
            for (int j = 0; j < out.length; j++) {
                int r = readOf[j];
                if (distinct[r] == null) {
                    int[][] rows = selections[j];
                    int[] lens = new int[rows.length];
                    int maxLen = 0;
                    for (int g = 0; g < rows.length; g++) {
                        lens[g] = rows[g].length;
                        maxLen = Math.max(maxLen, lens[g]);
                    }
                    distinct[r] = new Packed(reads[r].type(), reads[r].await(), lens, maxLen);
                }
                out[j] = distinct[r];
            }
            return out;
        }
    }

    /**
     * Starts copying a segment's K and V ([n, nKvHeads * headSize] on the device) to the host for each
     * receiver. Call it right after the K/V projection and before the own attention, then {@link Outgoing#await}:
     * the copy runs while the attention does.
     *
     * @param selections per receiver, per KV head, the row indices to send (from {@link CsaPolicy#select})
     */
    public static Outgoing send(Backend b, Tensor k, Tensor v, int nKvHeads, int headSize, List<int[][]> selections) {
        int[][][] sel = selections.toArray(new int[0][][]);
        List<PendingRead> reads = new ArrayList<>();
        int[] readOf = new int[sel.length];
        for (int j = 0; j < sel.length; j++) {
            readOf[j] = -1;
            for (int i = 0; i < j && readOf[j] < 0; i++) {
                if (Arrays.deepEquals(sel[i], sel[j])) {
                    readOf[j] = readOf[i];
                }
            }
            if (readOf[j] < 0) {
                readOf[j] = reads.size();
                reads.add(b.readAsync(new Tensor[] {k, v}, headSize, pieces(sel[j], nKvHeads)));
            }
        }
        return new Outgoing(reads.toArray(new PendingRead[0]), readOf, sel);
    }

    /** Pieces of width headSize, head-major: piece {@code r * nKvHeads + g} is KV head g of token r. */
    static int[] pieces(int[][] rows, int nKvHeads) {
        int total = 0;
        for (int[] r : rows) {
            total += r.length;
        }
        int[] pieces = new int[total];
        int at = 0;
        for (int g = 0; g < rows.length; g++) {
            for (int r : rows[g]) {
                pieces[at++] = r * nKvHeads + g;
            }
        }
        return pieces;
    }

    /** What the dense policy would send for a segment of {@code n} tokens, in bytes of {@code type}. */
    public static long denseBytes(ModelConfig c, int n, WireType type) {
        return 2L * n * c.kvDim() * type.bytes();
    }

    /** Attention of the first {@code n} rows of ws.q over a packed block, merged into ws.att / ws.lse. */
    public static void attendAndMerge(LlamaModel model, LlamaModel.Workspace ws, int n, Packed block) {
        ModelConfig c = model.config();
        Backend b = model.backend();
        int hs = c.headSize();
        int nKv = c.nKvHeads();
        int[] lens = block.headLens();
        if (lens.length != nKv) {
            throw new IllegalArgumentException("A K/V block has " + lens.length + " KV heads, but the model has " + nKv);
        }
        int total = 0;
        boolean uniform = true;
        for (int len : lens) {
            total += len;
            uniform &= len == block.maxLen();
        }
        int rowBytes = hs * block.type().bytes();
        if (block.payload().length != 2L * total * rowBytes) {
            throw new IllegalArgumentException("A K/V block holds " + block.payload().length + " bytes, but " + total + " rows of K and V of "
                    + hs + " " + block.type() + " values need " + 2L * total * rowBytes);
        }
        int maxLen = Math.max(1, block.maxLen());
        try (Tensor k = b.allocate(nKv * maxLen, hs); Tensor v = b.allocate(nKv * maxLen, hs)) {
            if (uniform) {
                // every head has maxLen rows: the payload's K half is already the [nKv * maxLen, hs] layout
                b.write(k, 0, block.type(), block.payload(), 0, total);
                b.write(v, 0, block.type(), block.payload(), total * rowBytes, total);
            } else {
                int at = 0;
                for (int g = 0; g < nKv; g++) {
                    if (lens[g] > 0) {
                        b.write(k, g * maxLen, block.type(), block.payload(), at * rowBytes, lens[g]);
                        b.write(v, g * maxLen, block.type(), block.payload(), (total + at) * rowBytes, lens[g]);
                    }
                    at += lens[g];
                }
            }
            model.attendRemoteAndMerge(ws, new CompactKv(k, v, maxLen, lens), n);
        }
    }
}
