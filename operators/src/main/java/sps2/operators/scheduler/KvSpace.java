package sps2.operators.scheduler;

import java.util.Arrays;
import java.util.Comparator;

import sps2.gpu.BlockAllocator;

/**
 * The KV blocks of every shard as the scheduler sees them: which are free. Block 0 of each shard is its scratch
 * block (rows whose KV is not stored write there) and is never given to a request.
 */
final class KvSpace {
    private final BlockAllocator[] shards;
    private final int blockSize;

    /**
     * @param shards         the shards
     * @param blocksPerShard KV blocks per shard, the scratch block included
     * @param blockSize      tokens per block
     */
    KvSpace(int shards, int blocksPerShard, int blockSize) {
        this.shards = new BlockAllocator[shards];
        this.blockSize = blockSize;
        for (int s = 0; s < shards; s++) {
            this.shards[s] = new BlockAllocator(blocksPerShard, blockSize);
            this.shards[s].claim(new int[] {0});
        }
    }

    int shards() {
        return shards.length;
    }

    int blockSize() {
        return blockSize;
    }

    /** Tokens one shard can hold for requests. */
    long tokensPerShard() {
        return (long) (shards[0].totalBlocks() - 1) * blockSize;
    }

    /** Tokens all shards together can hold for requests. */
    long tokens() {
        return shards.length * tokensPerShard();
    }

    /** Blocks for {@code tokens} tokens on {@code shard}, or null (taking nothing) when too few are free. */
    int[] allocateTokens(int shard, int tokens) {
        return shards[shard].allocate(shards[shard].blocksFor(tokens));
    }

    /** {@code blocks} blocks on {@code shard}, or null (taking nothing) when too few are free. */
    int[] allocate(int shard, int blocks) {
        return shards[shard].allocate(blocks);
    }

    /** Marks the blocks of a restored request as taken. */
    void claim(int shard, int[] table) {
        shards[shard].claim(table);
    }

    void release(int shard, int[] table) {
        shards[shard].release(table);
    }

    /** The shard with the most free blocks; the lowest index among equals. */
    int mostFree() {
        int best = 0;
        for (int s = 1; s < shards.length; s++) {
            if (shards[s].freeBlocks() > shards[best].freeBlocks()) {
                best = s;
            }
        }
        return best;
    }

    /** Every shard, those with more free blocks first, then by index. */
    int[] byFreeBlocks() {
        Integer[] order = new Integer[shards.length];
        for (int s = 0; s < order.length; s++) {
            order[s] = s;
        }
        Arrays.sort(order, Comparator.comparingInt((Integer s) -> -shards[s].freeBlocks()).thenComparingInt(s -> s));
        return Arrays.stream(order).mapToInt(Integer::intValue).toArray();
    }
}
