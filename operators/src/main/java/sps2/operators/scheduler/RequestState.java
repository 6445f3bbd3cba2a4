package sps2.operators.scheduler;

import java.util.Arrays;

import sps2.operators.messages.Admitted;
import sps2.operators.messages.StepSeq;

/**
 * The scheduler's keyed state of one request: everything needed to resume it from scratch after a
 * restore (its token history), and where its KV lives now. Flink POJO.
 */
public class RequestState {
    public static final int WAITING = 0;
    public static final int PREFILL = 1;
    public static final int DECODE = 2;

    public Admitted request;
    /**
     * Tokens generated so far (emitted as events 0..n-1): the first {@link #outputs()} entries; the rest is room to
     * append into, so that a token costs amortised constant time.
     */
    public int[] generated = new int[0];
    /**
     * How many entries of {@link #generated} hold tokens. State written before this field existed reads as 0 here
     * with exactly the tokens in {@code generated}; state written since never has 0 with tokens (the first append
     * sets it), so {@link #outputs()} reads both.
     */
    public int generatedCount;
    /**
     * The end of the text generated so far, as long as the request's longest stop string: all that stop strings
     * look at (state written before kept the whole text, whose end serves the same).
     */
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

    /** How many tokens have been generated. */
    public int outputs() {
        return generatedCount > 0 ? generatedCount : generated.length;
    }

    /** The token generated last. */
    public int lastToken() {
        return generated[outputs() - 1];
    }

    /** Records the next generated token and its text, in time independent of how many came before. */
    public void append(int token, String piece) {
        int n = outputs();
        if (n == generated.length) {
            generated = Arrays.copyOf(generated, Math.max(8, 2 * n));
        }
        generated[n] = token;
        generatedCount = n + 1;
        int keep = longestStopString();
        String joined = text + piece;
        text = joined.length() <= keep ? joined : joined.substring(joined.length() - keep);
    }

    private int longestStopString() {
        int n = 0;
        if (request.generation.stopStrings != null) {
            for (String s : request.generation.stopStrings) {
                n = Math.max(n, s.length());
            }
        }
        return n;
    }

    /** Prompt followed by the tokens generated so far. */
    public int[] history() {
        int[] h = Arrays.copyOf(request.promptTokens, request.promptTokens.length + outputs());
        System.arraycopy(generated, 0, h, request.promptTokens.length, outputs());
        return h;
    }

    /**
     * This request's part of a step, with what every step carries (sampling parameters, progress, timestamps);
     * the caller sets the tokens and where their KV goes.
     */
    StepSeq newSeq() {
        StepSeq w = new StepSeq();
        w.requestId = request.requestId;
        w.promptTokens = request.promptTokens.length;
        w.generation = request.generation; // shared: set once on admission and never changed
        w.outputIndex = outputs();
        w.textSoFar = text;
        w.admittedAtMs = request.admittedAtMs;
        w.prefillStartMs = prefillStartMs;
        return w;
    }

    public int kvTotal() {
        int n = 0;
        for (int k : kvTokens) {
            n += k;
        }
        return n;
    }
}
