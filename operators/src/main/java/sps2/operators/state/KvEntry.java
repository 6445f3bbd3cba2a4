package sps2.operators.state;

import java.util.Arrays;

/**
 * A request's KV shard on one shard for one layer, as Flink keyed state: where its tokens' K/V live in
 * the device block pool, how many there are, and which tokens they are (the history from which the KV
 * can be recomputed after a restore). The K/V bytes themselves stay in device memory.
 */
public final class KvEntry {
    private final int[] blockTable;
    private final int tokenCount;
    private final int[] tokens;
    private final int[] positions;

    public KvEntry(int[] blockTable, int tokenCount, int[] tokens, int[] positions) {
        if (tokens.length != tokenCount || positions.length != tokenCount) {
            throw new IllegalArgumentException("A KV entry of " + tokenCount + " tokens needs as many token ids and positions");
        }
        this.blockTable = blockTable;
        this.tokenCount = tokenCount;
        this.tokens = tokens;
        this.positions = positions;
    }

    public static KvEntry empty() {
        return new KvEntry(new int[0], 0, new int[0], new int[0]);
    }

    /** This entry with more tokens appended (and the possibly grown block table). */
    public KvEntry append(int[] newBlockTable, int[] newTokens, int startPos) {
        int[] t = Arrays.copyOf(tokens, tokenCount + newTokens.length);
        int[] p = Arrays.copyOf(positions, tokenCount + newTokens.length);
        for (int i = 0; i < newTokens.length; i++) {
            t[tokenCount + i] = newTokens[i];
            p[tokenCount + i] = startPos + i;
        }
        return new KvEntry(newBlockTable.clone(), tokenCount + newTokens.length, t, p);
    }

    public int[] blockTable() {
        return blockTable;
    }

    public int tokenCount() {
        return tokenCount;
    }

    public int[] tokens() {
        return tokens;
    }

    public int[] positions() {
        return positions;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof KvEntry e && tokenCount == e.tokenCount && Arrays.equals(blockTable, e.blockTable)
                && Arrays.equals(tokens, e.tokens) && Arrays.equals(positions, e.positions);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(tokens) * 31 + tokenCount;
    }
}
