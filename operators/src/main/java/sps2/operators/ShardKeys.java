package sps2.operators;

import org.apache.flink.runtime.state.KeyGroupRangeAssignment;

/**
 * Keys that Flink routes to a chosen subtask. A shard is a parallel subtask of the stage operators;
 * keying records by {@code keyFor(shard)} sends them to subtask {@code shard} while keeping keyed state
 * (a custom partitioner alone would lose it).
 */
public final class ShardKeys {
    private ShardKeys() {
    }

    /** For each subtask index, the smallest non-negative integer key that Flink assigns to it. */
    public static int[] keys(int parallelism, int maxParallelism) {
        int[] keys = new int[parallelism];
        java.util.Arrays.fill(keys, -1);
        int found = 0;
        for (int k = 0; found < parallelism; k++) {
            int subtask = KeyGroupRangeAssignment.assignKeyToParallelOperator(k, maxParallelism, parallelism);
            if (keys[subtask] < 0) {
                keys[subtask] = k;
                found++;
            }
        }
        return keys;
    }

    /** The shard whose subtask owns a key produced by {@link #keys}. */
    public static int shardOf(int key, int parallelism, int maxParallelism) {
        return KeyGroupRangeAssignment.assignKeyToParallelOperator(key, maxParallelism, parallelism);
    }
}
