package sps2.bench.trace;

/**
 * One request of a benchmark run, derived from a trace entry.
 *
 * @param id                request id (unique within a run)
 * @param traceIndex        index of the entry in the trace (0-based, in file order)
 * @param arrivalMs         when to send it, in milliseconds after the replay starts
 * @param promptTokens      synthetic prompt as token ids (no BOS)
 * @param maxTokens         tokens to generate (EOS is ignored, so exactly this many)
 * @param traceInputLength  the trace's input length before scaling
 * @param traceOutputLength the trace's output length before scaling
 * @param clipped           whether the prompt or the output was shortened to fit the context or --max-input-tokens
 */
public record BenchRequest(String id, int traceIndex, double arrivalMs, int[] promptTokens, int maxTokens, int traceInputLength,
        int traceOutputLength, boolean clipped) {

    public BenchRequest {
        promptTokens = promptTokens.clone();
    }

    @Override
    public int[] promptTokens() {
        return promptTokens.clone();
    }

    public int promptLength() {
        return promptTokens.length;
    }
}
