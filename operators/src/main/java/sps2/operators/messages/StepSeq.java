package sps2.operators.messages;

/**
 * One request's part of a {@link ShardStep}: the tokens this shard runs through the model in the step and
 * where their KV lives. A Flink POJO (public fields, no-arg constructor) so that it is
 * serialized without Kryo.
 */
public class StepSeq {
    public static final int PREFILL = 0;
    public static final int DECODE = 1;

    public String requestId;
    public int mode;
    /** Tokens processed in this step: a prompt segment or chunk, or the one token being decoded. */
    public int[] tokens;
    /** Position of tokens[0] in the request. */
    public int startPos;
    /** This shard's KV blocks for the request (enough for what it holds after this step). */
    public int[] blockTable;
    /** Tokens of this request already cached on this shard before the step. */
    public int kvBefore;
    /** Whether this shard stores the KV of this step's tokens (decode: only the shard chosen by the append policy). */
    public boolean appendKv;
    /** Shards taking part in this request's step, in segment order (one entry without sequence parallelism). */
    public int[] peers;
    /** Prefill: absolute start position of each peer's segment. */
    public int[] segmentStarts;
    /** Index of this shard in {@link #peers}. */
    public int peerIndex;
    /** Whether this shard samples the next token after this step (owner shard, last prefill piece or decode). */
    public boolean sample;
    /** Output index of the token that sampling produces. */
    public int outputIndex;

    public int promptTokens;
    /** How the request is to be generated: sampling and stop conditions (the request's own instance, never changed). */
    public Generation generation;
    /** The end of the text generated so far, as long as the longest stop string: all that stop strings look at. */
    public String textSoFar;

    public long admittedAtMs;
    public long prefillStartMs;

    public StepSeq() {
    }

    public int rows() {
        return tokens.length;
    }
}
