package sps2.model.generation;

import java.util.Set;

/**
 * When generation of a request ends, the same for every mode (generate, the Flink job, benchmarks).
 *
 * @param maxTokens     tokens to generate at most
 * @param eos           end-of-sequence token id, or -1
 * @param ignoreEos     keep going past EOS (benchmarks that need exact output lengths)
 * @param stopTokens    further token ids that end generation (the token itself is emitted)
 * @param stopStrings   generation ends once the generated text ends with one of these
 * @param contextLength the sequence may not grow past this many tokens
 */
public record StopRule(int maxTokens, int eos, boolean ignoreEos, Set<Integer> stopTokens, java.util.List<String> stopStrings, int contextLength) {

    public enum Reason { NONE, LENGTH, STOP }

    /**
     * Whether generation ends after emitting {@code token} as output number {@code outputIndex} (0-based)
     * at absolute position {@code position}, with {@code text} being all text generated so far
     * including this token's piece.
     */
    public Reason after(int token, int outputIndex, int position, CharSequence text) {
        if (!ignoreEos && token == eos) {
            return Reason.STOP;
        }
        if (stopTokens.contains(token)) {
            return Reason.STOP;
        }
        for (String s : stopStrings) {
            if (!s.isEmpty() && endsWith(text, s)) {
                return Reason.STOP;
            }
        }
        if (outputIndex + 1 >= maxTokens || position + 1 >= contextLength) {
            return Reason.LENGTH;
        }
        return Reason.NONE;
    }

    private static boolean endsWith(CharSequence text, String suffix) {
        int n = text.length();
        int m = suffix.length();
        if (m > n) {
            return false;
        }
        for (int i = 0; i < m; i++) {
            if (text.charAt(n - m + i) != suffix.charAt(i)) {
                return false;
            }
        }
        return true;
    }
}
