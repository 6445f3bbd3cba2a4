package sps2.gpu;

import java.util.BitSet;

/**
 * Host-side bookkeeping of which KV pool blocks are free. Allocation is all-or-nothing so that admission
 * control can refuse a request whose KV does not fit instead of failing half way.
 */
public final class BlockAllocator {
    private final int blockSize;
    private final BitSet used;
    private final int blocks;
    private int free;

    public BlockAllocator(int blocks, int blockSize) {
        this.blocks = blocks;
        this.blockSize = blockSize;
        this.used = new BitSet(blocks);
        this.free = blocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int freeBlocks() {
        return free;
    }

    public int totalBlocks() {
        return blocks;
    }

    /** Blocks needed to hold {@code tokens} tokens. */
    public int blocksFor(int tokens) {
        return (tokens + blockSize - 1) / blockSize;
    }

    /** Allocates {@code n} blocks, or returns null (allocating nothing) when fewer are free. */
    public int[] allocate(int n) {
        if (n > free) {
            return null;
        }
        int[] out = new int[n];
        int at = 0;
        for (int i = 0; i < n; i++) {
            at = used.nextClearBit(at);
            used.set(at);
            out[i] = at;
        }
        free -= n;
        return out;
    }

    /** Marks given blocks as used (restoring a snapshot); fails if one is already taken. */
    public void claim(int[] table) {
        for (int b : table) {
            if (used.get(b)) {
                throw new IllegalStateException("KV block " + b + " is already in use");
            }
            used.set(b);
            free--;
        }
    }

    public void release(int[] table) {
        for (int b : table) {
            if (!used.get(b)) {
                throw new IllegalStateException("KV block " + b + " was released twice");
            }
            used.clear(b);
            free++;
        }
    }

    /** The slot of token {@code t} of a sequence with block table {@code table}. */
    public static int slot(int[] table, int blockSize, int t) {
        return table[t / blockSize] * blockSize + t % blockSize;
    }
}
