package sps2.bench.trace;

/**
 * What the client saw of one request. Times are milliseconds on the client's clock since the replay started.
 *
 * @param request      the request
 * @param sentMs       when the client handed it to the Kafka producer
 * @param tokenMs      when the consumer received token 0, 1, 2 ... (a prefix: tokens seen so far, in index order)
 * @param tokenIds     the token ids, same indices
 * @param finished     whether a final event arrived
 * @param error        the job's reason when it rejected or failed the request, else null
 * @param ttftJobMs    the job's emit time of the first token ({@code TokenEvent.emitTimestampMs}) minus the client's
 *                     wall clock at sending, in whole ms: TTFT without the token's trip to the consumer; NaN when unknown
 */
public record RequestOutcome(BenchRequest request, double sentMs, double[] tokenMs, int[] tokenIds, boolean finished, String error,
        double ttftJobMs) {

    public RequestOutcome {
        tokenMs = tokenMs.clone();
        tokenIds = tokenIds.clone();
        if (tokenIds.length != tokenMs.length) {
            throw new IllegalArgumentException("tokenMs and tokenIds differ in length");
        }
    }

    @Override
    public double[] tokenMs() {
        return tokenMs.clone();
    }

    @Override
    public int[] tokenIds() {
        return tokenIds.clone();
    }

    /** Finished without an error and with every token it asked for. */
    public boolean completed() {
        return finished && error == null && tokenMs.length == request.maxTokens();
    }

    public int outputTokens() {
        return tokenMs.length;
    }

    /** Time to first token: send to the first token's arrival; NaN without tokens. */
    public double ttftMs() {
        return tokenMs.length == 0 ? Double.NaN : tokenMs[0] - sentMs;
    }

    /** End-to-end latency: send to the last token's arrival; NaN without tokens. */
    public double e2eMs() {
        return tokenMs.length == 0 ? Double.NaN : tokenMs[tokenMs.length - 1] - sentMs;
    }

    /** Time per output token after the first: (e2e - ttft) / (n - 1); NaN for fewer than 2 tokens. */
    public double tpotMs() {
        int n = tokenMs.length;
        return n < 2 ? Double.NaN : (tokenMs[n - 1] - tokenMs[0]) / (n - 1);
    }

    /** Gaps between consecutive tokens (inter-token latency, TBT): n - 1 values. */
    public double[] itlMs() {
        double[] gaps = new double[Math.max(0, tokenMs.length - 1)];
        for (int i = 0; i < gaps.length; i++) {
            gaps[i] = tokenMs[i + 1] - tokenMs[i];
        }
        return gaps;
    }

    /** Whether it completed within both SLOs: TTFT at most {@code slo.ttftMs} and TPOT (its mean TBT) at most {@code slo.tbtMs}. */
    public boolean meets(Slo slo) {
        if (!completed()) {
            return false;
        }
        double tpot = tpotMs();
        return ttftMs() <= slo.ttftMs() && (Double.isNaN(tpot) || tpot <= slo.tbtMs());
    }

    /**
     * Service-level objectives for goodput.
     *
     * @param ttftMs largest acceptable time to first token
     * @param tbtMs  largest acceptable mean time between tokens of a request (its TPOT)
     */
    public record Slo(double ttftMs, double tbtMs) {
        public Slo {
            if (!(ttftMs > 0) || !(tbtMs > 0)) {
                throw new IllegalArgumentException("SLOs must be positive, got TTFT " + ttftMs + " ms and TBT " + tbtMs + " ms.");
            }
        }
    }
}
