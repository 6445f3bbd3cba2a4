package sps2.bench.trace;

/**
 * One request of a serving trace in the Mooncake format: one JSON object per line,
 * {@code {"timestamp": 3000, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1, 2]}}.
 *
 * @param timestampMs  arrival time in milliseconds since the trace started
 * @param inputLength  prompt tokens
 * @param outputLength generated tokens
 * @param hashIds      one id per 512-token block of the prompt; equal ids at the same block index mean
 *                     the same prefix up to and including that block
 */
public record TraceEntry(long timestampMs, int inputLength, int outputLength, int[] hashIds) {
    /** Tokens per prefix block in the trace. */
    public static final int TRACE_BLOCK_TOKENS = 512;

    public TraceEntry {
        if (timestampMs < 0 || inputLength < 1 || outputLength < 0) {
            throw new IllegalArgumentException("A trace entry needs timestamp >= 0, input_length >= 1 and output_length >= 0, got "
                    + timestampMs + ", " + inputLength + ", " + outputLength);
        }
        hashIds = hashIds.clone();
    }

    @Override
    public int[] hashIds() {
        return hashIds.clone();
    }

    /** The block hash id at a block index, or -1 past the end of the list. */
    public int hashIdAt(int block) {
        return block < hashIds.length ? hashIds[block] : -1;
    }

    public int blocks() {
        return hashIds.length;
    }
}
