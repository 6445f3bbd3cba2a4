package sps2.bench.trace;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

/**
 * The requests of a benchmark, made from a trace: arrival times scaled by {@code timeScale}, lengths by
 * {@code lengthScale}, and prompts that are synthetic token ids whose shared prefixes follow the trace's
 * block hash ids.
 *
 * <p>Prefix synthesis: the trace's 512-token blocks become blocks of {@code 512 * lengthScale} tokens (block
 * b covers positions [round(b*B), round((b+1)*B)) of the scaled prompt). The tokens of a block depend only on
 * its hash id (and the seed), so two requests whose hash ids agree up to block b have identical prompts up to
 * the end of block b: a real shared prefix. Positions past the last hash id get tokens unique to the request.
 * Token ids are drawn from [3, vocab) so that no prompt token is BOS, EOS or unknown.
 *
 * @param requests          in arrival order
 * @param blockTokens       tokens per prefix block after scaling (may be fractional)
 * @param clipped           requests whose prompt or output was shortened
 * @param sharedPrefixTokens prompt tokens in blocks whose hash id an earlier request had already sent
 */
public record Workload(List<BenchRequest> requests, double blockTokens, int clipped, long sharedPrefixTokens) {
    /** First token id a synthetic prompt uses: 0..2 are unknown, BOS and EOS in llama vocabularies. */
    public static final int FIRST_TOKEN_ID = 3;

    /**
     * How to turn trace entries into requests.
     *
     * @param timeScale      arrival times are multiplied by this (0.5 replays twice as fast)
     * @param lengthScale    input and output lengths and the prefix block size are multiplied by this
     * @param maxInputTokens prompts longer than this (after scaling) are clipped; 0 = no limit
     * @param contextLength  prompt + output must fit in this many tokens
     * @param vocabSize      token ids are drawn from [3, vocabSize)
     * @param seed           seed of the synthetic tokens
     */
    public record Options(double timeScale, double lengthScale, int maxInputTokens, int contextLength, int vocabSize, long seed) {
        public Options {
            if (!(timeScale >= 0) || Double.isInfinite(timeScale)) {
                throw new IllegalArgumentException("--time-scale must be a finite number of at least 0, got " + timeScale + ".");
            }
            if (!(lengthScale > 0) || Double.isInfinite(lengthScale)) {
                throw new IllegalArgumentException("--length-scale must be a finite number above 0, got " + lengthScale + ".");
            }
            if (maxInputTokens < 0) {
                throw new IllegalArgumentException("--max-input-tokens must not be negative, got " + maxInputTokens + ".");
            }
            if (contextLength < 2) {
                throw new IllegalArgumentException("The context must hold at least 2 tokens, got " + contextLength + ".");
            }
            if (vocabSize <= FIRST_TOKEN_ID) {
                throw new IllegalArgumentException("The vocabulary of " + vocabSize + " tokens is too small for synthetic prompts.");
            }
        }
    }

    public Workload {
        requests = List.copyOf(requests);
    }

    public static Workload build(List<TraceEntry> entries, Options o) {
        if (entries.isEmpty()) {
            throw new IllegalArgumentException("The trace has no requests.");
        }
        double block = TraceEntry.TRACE_BLOCK_TOKENS * o.lengthScale();
        long t0 = entries.get(0).timestampMs();
        List<BenchRequest> out = new ArrayList<>(entries.size());
        Set<Long> seenBlocks = new HashSet<>();
        int clipped = 0;
        long shared = 0;
        for (int i = 0; i < entries.size(); i++) {
            TraceEntry e = entries.get(i);
            int maxTokens = (int) Math.max(1, Math.round(e.outputLength() * o.lengthScale()));
            boolean clip = false;
            if (maxTokens > o.contextLength() - 1) {
                maxTokens = o.contextLength() - 1;
                clip = true;
            }
            int length = (int) Math.max(1, Math.min(Integer.MAX_VALUE, Math.round(e.inputLength() * o.lengthScale())));
            int limit = o.contextLength() - maxTokens;
            if (o.maxInputTokens() > 0) {
                limit = Math.min(limit, o.maxInputTokens());
            }
            if (length > limit) {
                length = limit;
                clip = true;
            }
            int[] tokens = new int[length];
            int filled = 0;
            for (int b = 0; b < e.blocks() && filled < length; b++) {
                int end = (int) Math.min(length, Math.round((b + 1) * block));
                if (end <= filled) {
                    continue;
                }
                int hash = e.hashIdAt(b);
                fill(tokens, filled, end, new SplittableRandom(mix(o.seed(), hash)), o.vocabSize());
                if (!seenBlocks.add(((long) b << 32) | (hash & 0xffffffffL))) {
                    shared += end - filled;
                }
                filled = end;
            }
            fill(tokens, filled, length, new SplittableRandom(mix(o.seed() ^ 0x5bd1e995L, -1L - i)), o.vocabSize());
            clipped += clip ? 1 : 0;
            double arrival = (e.timestampMs() - t0) * o.timeScale();
            out.add(new BenchRequest(String.format("req-%05d", i), i, arrival, tokens, maxTokens, e.inputLength(), e.outputLength(), clip));
        }
        return new Workload(out, block, clipped, shared);
    }

    /**
     * A warm-up request of {@code length} prompt tokens (unrelated to the workload's prompts) asking for
     * {@code maxTokens} tokens, both clipped to the context.
     */
    public static BenchRequest warmup(String id, int length, int maxTokens, Options o) {
        int out = Math.max(1, Math.min(maxTokens, o.contextLength() - 1));
        int[] tokens = new int[Math.max(1, Math.min(length, o.contextLength() - out))];
        fill(tokens, 0, tokens.length, new SplittableRandom(mix(o.seed() ^ 0x2545F4914F6CDD1DL, id.hashCode())), o.vocabSize());
        return new BenchRequest(id, -1, 0, tokens, out, tokens.length, out, false);
    }

    private static void fill(int[] tokens, int from, int to, SplittableRandom random, int vocab) {
        for (int p = from; p < to; p++) {
            tokens[p] = FIRST_TOKEN_ID + random.nextInt(vocab - FIRST_TOKEN_ID);
        }
    }

    /** A well-mixed seed for (run seed, key), so neighbouring hash ids give unrelated token streams. */
    private static long mix(long seed, long key) {
        long z = seed * 0x9E3779B97F4A7C15L + key;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    public long promptTokens() {
        return requests.stream().mapToLong(BenchRequest::promptLength).sum();
    }

    public long outputTokens() {
        return requests.stream().mapToLong(BenchRequest::maxTokens).sum();
    }

    public int maxPromptLength() {
        return requests.stream().mapToInt(BenchRequest::promptLength).max().orElse(0);
    }

    /** Duration of the arrivals: the last request's arrival time. */
    public double spanMs() {
        return requests.isEmpty() ? 0 : requests.get(requests.size() - 1).arrivalMs();
    }

    /** The prompt lengths, sorted ascending. */
    public int[] sortedPromptLengths() {
        int[] l = requests.stream().mapToInt(BenchRequest::promptLength).toArray();
        Arrays.sort(l);
        return l;
    }
}
