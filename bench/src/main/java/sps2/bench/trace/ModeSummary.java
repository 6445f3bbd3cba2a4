package sps2.bench.trace;

import java.util.List;

/**
 * The client-side metrics of one mode's run, with the definitions of vLLM's serving benchmark.
 *
 * <p>Duration runs from the start of the replay (the first request's scheduled arrival) to the arrival of the
 * last token of any request. Throughputs count completed requests only: request throughput is completed
 * requests per second, prefill tokens/s their prompt tokens per second and decode tokens/s their generated
 * tokens per second of the duration. Goodput is requests per second that completed within both SLOs.
 * TBT pools every gap between consecutive tokens of every request (vLLM's ITL); TPOT is one value per
 * request with at least 2 tokens, (e2e - TTFT) / (tokens - 1).
 *
 * @param mode              sps2 or sarathi
 * @param workers           shards (SP degree) or Sarathi workers
 * @param requests          requests sent
 * @param completed         requests that got every token
 * @param failed            requests rejected, failed, or not finished
 * @param firstError        the job's reason for the first failed request, or null
 * @param durationS         seconds from the replay's start to the last token
 * @param promptTokens      prompt tokens of the completed requests
 * @param outputTokens      tokens generated for the completed requests
 * @param requestThroughput completed requests per second
 * @param prefillTokensPerS prompt tokens of completed requests per second
 * @param decodeTokensPerS  generated tokens per second
 * @param goodput           requests per second completed within the SLOs
 * @param sloAttainment     fraction of requests within the SLOs
 * @param slo               the SLOs of goodput
 * @param ttftMs            time to first token
 * @param tbtMs             time between tokens (inter-token latency)
 * @param tpotMs            time per output token (per request)
 * @param e2eMs             end-to-end latency
 */
public record ModeSummary(String mode, int workers, int requests, int completed, int failed, String firstError, double durationS,
        long promptTokens, long outputTokens, double requestThroughput, double prefillTokensPerS, double decodeTokensPerS, double goodput,
        double sloAttainment, RequestOutcome.Slo slo, LatencyStats ttftMs, LatencyStats tbtMs, LatencyStats tpotMs, LatencyStats e2eMs) {

    public static ModeSummary of(String mode, int workers, List<RequestOutcome> outcomes, RequestOutcome.Slo slo) {
        int completed = 0;
        int good = 0;
        long prompt = 0;
        long output = 0;
        double end = 0;
        String firstError = null;
        int gaps = 0;
        for (RequestOutcome o : outcomes) {
            if (o.outputTokens() > 0) {
                end = Math.max(end, o.tokenMs()[o.outputTokens() - 1]);
            }
            if (o.completed()) {
                completed++;
                prompt += o.request().promptLength();
                output += o.outputTokens();
                gaps += o.outputTokens() - 1;
            } else if (firstError == null) {
                firstError = o.error() != null ? o.error()
                        : "request " + o.request().id() + " got " + o.outputTokens() + " of " + o.request().maxTokens() + " tokens";
            }
            good += o.meets(slo) ? 1 : 0;
        }
        double[] ttft = new double[completed];
        double[] e2e = new double[completed];
        double[] tpot = new double[completed];
        double[] tbt = new double[gaps];
        int i = 0;
        int g = 0;
        for (RequestOutcome o : outcomes) {
            if (o.completed()) {
                ttft[i] = o.ttftMs();
                e2e[i] = o.e2eMs();
                tpot[i] = o.tpotMs();
                i++;
                for (double gap : o.itlMs()) {
                    tbt[g++] = gap;
                }
            }
        }
        double seconds = end / 1000.0;
        return new ModeSummary(mode, workers, outcomes.size(), completed, outcomes.size() - completed, firstError, seconds, prompt, output,
                rate(completed, seconds), rate(prompt, seconds), rate(output, seconds), rate(good, seconds),
                outcomes.isEmpty() ? Double.NaN : good / (double) outcomes.size(), slo,
                LatencyStats.of(ttft), LatencyStats.of(tbt), LatencyStats.of(tpot), LatencyStats.of(e2e));
    }

    private static double rate(double amount, double seconds) {
        return seconds > 0 ? amount / seconds : Double.NaN;
    }
}
