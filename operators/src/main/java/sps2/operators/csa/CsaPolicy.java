package sps2.operators.csa;

import java.io.Serializable;

/**
 * Communication-efficient sparse attention: which of a sender shard's prompt K/V rows cross to a later
 * shard in sequence-parallel prefill. The own segment is always attended densely; only remote K/V is
 * thinned. Policies are chosen per job with {@code --csa}.
 */
public interface CsaPolicy extends Serializable {

    /**
     * Rows of the sender's segment (0-based within it) that KV head {@code g} of the receiver will see.
     *
     * @param senderStart   absolute position of the sender's first token
     * @param senderLen     tokens in the sender's segment
     * @param receiverStart absolute position of the receiver's first token (after the sender's segment)
     * @param nKvHeads      KV heads of the model
     * @return per KV head, ascending row indices
     */
    int[][] select(int senderStart, int senderLen, int receiverStart, int nKvHeads);

    String name();

    /**
     * Parses {@code dense}, {@code strided:D} (the authors' scheme: KV head g sees remote tokens whose
     * position is congruent to g mod D, so the heads together cover every token) or {@code sink-window:S:W}
     * (every head sees the first S tokens of the prompt — attention sinks — and the W tokens just before the
     * receiver's segment).
     */
    static CsaPolicy parse(String spec) {
        String[] p = spec.trim().split(":");
        try {
            switch (p[0]) {
                case "dense":
                    if (p.length == 1) {
                        return new Dense();
                    }
                    break;
                case "strided":
                    if (p.length == 2) {
                        return new Strided(Integer.parseInt(p[1]));
                    }
                    break;
                case "sink-window":
                    if (p.length == 3) {
                        return new SinkWindow(Integer.parseInt(p[1]), Integer.parseInt(p[2]));
                    }
                    break;
                default:
                    break;
            }
        } catch (NumberFormatException e) {
            // fall through to the message below
        }
        throw new IllegalArgumentException("Unknown sparse-attention policy '" + spec + "': use dense, strided:D or sink-window:SINKS:WINDOW");
    }

    /** Every remote token crosses: exact attention. */
    record Dense() implements CsaPolicy {
        @Override
        public int[][] select(int senderStart, int senderLen, int receiverStart, int nKvHeads) {
            int[] all = new int[senderLen];
            for (int i = 0; i < senderLen; i++) {
                all[i] = i;
            }
            int[][] out = new int[nKvHeads][];
            java.util.Arrays.fill(out, all);
            return out;
        }

        @Override
        public String name() {
            return "dense";
        }
    }

    /** KV head g sees remote positions p with p mod d == g mod d: 1/d of the remote bytes. */
    record Strided(int degree) implements CsaPolicy {
        public Strided {
            if (degree < 1) {
                throw new IllegalArgumentException("The strided sparse degree must be at least 1, got " + degree);
            }
        }

        @Override
        public int[][] select(int senderStart, int senderLen, int receiverStart, int nKvHeads) {
            int[][] out = new int[nKvHeads][];
            for (int g = 0; g < nKvHeads; g++) {
                int residue = g % degree;
                int first = Math.floorMod(residue - senderStart, degree);
                int count = first >= senderLen ? 0 : (senderLen - 1 - first) / degree + 1;
                out[g] = new int[count];
                for (int i = 0; i < count; i++) {
                    out[g][i] = first + i * degree;
                }
            }
            return out;
        }

        @Override
        public String name() {
            return "strided:" + degree;
        }
    }

    /** Attention sinks plus a recent window before the receiver: keeps what StreamingLLM showed matters most. */
    record SinkWindow(int sinks, int window) implements CsaPolicy {
        public SinkWindow {
            if (sinks < 0 || window < 0) {
                throw new IllegalArgumentException("sink-window sizes must not be negative");
            }
        }

        @Override
        public int[][] select(int senderStart, int senderLen, int receiverStart, int nKvHeads) {
            int windowStart = receiverStart - window;
            int n = 0;
            int[] rows = new int[senderLen];
            for (int i = 0; i < senderLen; i++) {
                int pos = senderStart + i;
                if (pos < sinks || pos >= windowStart) {
                    rows[n++] = i;
                }
            }
            int[] picked = java.util.Arrays.copyOf(rows, n);
            int[][] out = new int[nKvHeads][];
            java.util.Arrays.fill(out, picked);
            return out;
        }

        @Override
        public String name() {
            return "sink-window:" + sinks + ":" + window;
        }
    }
}
