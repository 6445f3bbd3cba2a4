package sps2.gpu;

/**
 * Keys and values gathered per KV head, as they arrive from another shard in sequence-parallel prefill:
 * KV head g owns rows {@code [g * maxLen, g * maxLen + lens[g])} of {@code k} and {@code v} (each row
 * {@code headSize} wide). A sparse policy may select a different number of tokens per head; all of them
 * lie before every query of the receiving shard, so attention over them is not masked.
 */
public record CompactKv(Tensor k, Tensor v, int maxLen, int[] lens) {
}
