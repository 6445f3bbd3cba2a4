package sps2.operators.state;

import java.util.Arrays;

/**
 * A request's KV shard on one shard for one layer, as Flink keyed state: its block table, and for every
 * token it holds the token id, its position in the request and the pool slot its K/V occupies — the
 * history from which the KV can be recomputed. With the "snapshot" recovery mode it also holds the K/V
 * values themselves ({@code kvDim} floats per token each), so a restore can put them back on the device
 * instead of recomputing.
 */
public final class KvEntry {
    private final int[] blockTable;
    private final int[] tokens;
    private final int[] positions;
    private final int[] slots;
    /** K and V values, [tokens, kvDim] each, or empty when values are not kept. */
    private final float[] k;
    private final float[] v;

    public KvEntry(int[] blockTable, int[] tokens, int[] positions, int[] slots, float[] k, float[] v) {
        if (tokens.length != positions.length || tokens.length != slots.length) {
            throw new IllegalArgumentException("A KV entry needs as many positions and slots as tokens");
        }
        if (k.length != v.length || (k.length > 0 && k.length % Math.max(1, tokens.length) != 0)) {
            throw new IllegalArgumentException("A KV entry's K and V values must hold the same whole number of rows per token");
        }
        this.blockTable = blockTable;
        this.tokens = tokens;
        this.positions = positions;
        this.slots = slots;
        this.k = k;
        this.v = v;
    }

    public static KvEntry empty() {
        return new KvEntry(new int[0], new int[0], new int[0], new int[0], new float[0], new float[0]);
    }

    /**
     * This entry with tokens at positions {@code startPos..} stored in {@code newSlots}. Tokens it already
     * held at those positions or later are dropped first, so re-running a step after a restore does not
     * duplicate them. {@code newK}/{@code newV} ([n, kvDim] each) are kept when not null.
     */
    public KvEntry append(int[] newBlockTable, int[] newTokens, int startPos, int[] newSlots, float[] newK, float[] newV) {
        int keep = 0;
        while (keep < positions.length && positions[keep] < startPos) {
            keep++;
        }
        int n = newTokens.length;
        int[] t = Arrays.copyOf(tokens, keep + n);
        int[] p = Arrays.copyOf(positions, keep + n);
        int[] s = Arrays.copyOf(slots, keep + n);
        for (int i = 0; i < n; i++) {
            t[keep + i] = newTokens[i];
            p[keep + i] = startPos + i;
            s[keep + i] = newSlots[i];
        }
        float[] nk = new float[0];
        float[] nv = new float[0];
        if (newK != null && (keep == 0 || k.length > 0)) {
            int row = newK.length / n;
            nk = Arrays.copyOf(k, (keep + n) * row);
            nv = Arrays.copyOf(v, (keep + n) * row);
            System.arraycopy(newK, 0, nk, keep * row, n * row);
            System.arraycopy(newV, 0, nv, keep * row, n * row);
        }
        return new KvEntry(newBlockTable.clone(), t, p, s, nk, nv);
    }

    public int[] blockTable() {
        return blockTable;
    }

    public int tokenCount() {
        return tokens.length;
    }

    public int[] tokens() {
        return tokens;
    }

    public int[] positions() {
        return positions;
    }

    public int[] slots() {
        return slots;
    }

    /** Whether the K/V values are kept (snapshot recovery). */
    public boolean hasValues() {
        return k.length > 0;
    }

    public float[] k() {
        return k;
    }

    public float[] v() {
        return v;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof KvEntry e && Arrays.equals(blockTable, e.blockTable) && Arrays.equals(tokens, e.tokens)
                && Arrays.equals(positions, e.positions) && Arrays.equals(slots, e.slots) && Arrays.equals(k, e.k) && Arrays.equals(v, e.v);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(tokens) * 31 + Arrays.hashCode(slots);
    }
}
