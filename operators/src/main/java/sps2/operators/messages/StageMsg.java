package sps2.operators.messages;

import sps2.gpu.WireType;

/**
 * The one record type that flows between the per-layer stage operators, keyed by {@link #targetShard}.
 * <ul>
 *   <li>{@code STEP}: the scheduler's work for a shard (into stage 0), carried in {@link #step}.</li>
 *   <li>{@code OWN}: a shard's own continuation from stage l to stage l+1; only a handle — the activations
 *       stay on the shard's device and are found by {@link #iteration} in the shard runtime.</li>
 *   <li>{@code KV}: prefill K/V of layer {@link #layer} selected by the sparse-attention policy, sent by an
 *       earlier shard to a later one: per KV head {@code headLens[g]} rows of K, then the same of V
 *       ({@link sps2.operators.csa.KvExchange}).</li>
 *   <li>{@code PARTIAL}: decode partial attention of layer {@link #layer} for every decode row of the
 *       sender's step that the target takes part in: the rows' outputs [rows, nHeads * headSize], then their
 *       log-sum-exp [rows, nHeads] in float32.</li>
 * </ul>
 * Only KV and PARTIAL payloads are real data crossing shards; their bytes are what the paper minimises. The
 * payload is little-endian bytes in the sender device's own element type ({@link #payloadType}: bfloat16 from
 * the CUDA backend, float32 from the CPU backend), so nothing is widened on the wire. The class stays a Flink
 * POJO: byte arrays are serialized as a length and the raw bytes.
 */
public class StageMsg {
    public static final int STEP = 0;
    public static final int OWN = 1;
    public static final int KV = 2;
    public static final int PARTIAL = 3;

    public int kind;
    public int targetShard;
    public int fromShard;
    public long iteration;
    public int layer;
    public ShardStep step;
    public String requestId;
    public int[] headLens;
    public int maxLen;
    /** For PARTIAL: the request ids of the rows in the payload, in order. */
    public String[] rowRequests;
    /** KV and PARTIAL: the exchanged values, little-endian, in the element type {@link #payloadType}. */
    public byte[] payload;
    /** {@link WireType#code()} of the payload (for PARTIAL: of the outputs; the lse that follows is float32). */
    public int payloadType;
    /** Sender's wall clock in nanoseconds (System.nanoTime is per JVM; used within one JVM only). */
    public long sentNanos;

    public StageMsg() {
    }

    public static StageMsg step(ShardStep step) {
        StageMsg m = new StageMsg();
        m.kind = STEP;
        m.targetShard = step.shard;
        m.fromShard = -1;
        m.iteration = step.iteration;
        m.step = step;
        return m;
    }

    public static StageMsg own(int shard, long iteration, int layer) {
        StageMsg m = new StageMsg();
        m.kind = OWN;
        m.targetShard = shard;
        m.fromShard = shard;
        m.iteration = iteration;
        m.layer = layer;
        return m;
    }

    /** Bytes of real data this message moves across shards. */
    public long payloadBytes() {
        return payload == null ? 0 : payload.length;
    }

    /** The element type of {@link #payload}. */
    public WireType wireType() {
        return WireType.of(payloadType);
    }
}
