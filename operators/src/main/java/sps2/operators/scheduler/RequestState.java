package sps2.operators.scheduler;

import sps2.operators.messages.Admitted;

/**
 * The scheduler's keyed state of one request: everything needed to resume it from scratch after a
 * restore (its token history), and where its KV lives now. Flink POJO.
 */
public class RequestState {
    public static final int WAITING = 0;
    public static final int PREFILL = 1;
    public static final int DECODE = 2;

    public Admitted request;
    /** Tokens generated so far (emitted as events 0..n-1). */
    public int[] generated = new int[0];
    public String text = "";
    public int phase = WAITING;
    /** Arrival order, for first-come-first-served among equal priorities. */
    public long arrival;
    public long prefillStartMs;
    /** Shards holding this request's KV, in segment order; the last one owns sampling. */
    public int[] peers = new int[0];
    /** Per peer: KV block table and tokens cached. */
    public int[][] blockTables = new int[0][];
    public int[] kvTokens = new int[0];
    /** Whether a decode step of this request is in flight (its KV appended, its token not yet back). */
    public boolean stepInFlight;
    /** Index into peers of the shard that appended the in-flight step's KV. */
    public int lastAppendPeer = -1;
    /** Sarathi: tokens of the history already prefilled. */
    public int prefilled;

    public RequestState() {
    }

    /** Prompt followed by the tokens generated so far. */
    public int[] history() {
        int[] h = java.util.Arrays.copyOf(request.promptTokens, request.promptTokens.length + generated.length);
        System.arraycopy(generated, 0, h, request.promptTokens.length, generated.length);
        return h;
    }

    public int kvTotal() {
        int n = 0;
        for (int k : kvTokens) {
            n += k;
        }
        return n;
    }
}
