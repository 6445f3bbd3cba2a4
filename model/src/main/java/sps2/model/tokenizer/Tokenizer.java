package sps2.model.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Text to token ids and back.
 *
 * <p>Decoding works per token because generated tokens arrive one at a time. A token's text may be only
 * part of a character: byte-fallback tokens ({@code <0xE4>}) carry single bytes of a multi-byte UTF-8
 * sequence. {@link #decodeBytes} therefore returns raw bytes, and {@link TextStream} joins them into
 * complete characters across tokens; {@link #decode(int, int)} is for tokens known to be whole characters
 * (an incomplete byte comes out as U+FFFD), and {@link #decode(int[])} decodes a whole sequence.
 */
public interface Tokenizer {

    /** Token ids of {@code text}, preceded by {@link #bos()} when {@code bos} is set. */
    int[] encode(String text, boolean bos);

    /** The text of {@code token} when it follows {@code prevToken}, decoded on its own (see the class comment). */
    default String decode(int prevToken, int token) {
        return new String(decodeBytes(prevToken, token), StandardCharsets.UTF_8);
    }

    /**
     * The UTF-8 bytes {@code token} contributes after {@code prevToken}: its piece, one raw byte for a byte
     * token, and without the leading space of the first word when {@code prevToken} is BOS.
     */
    byte[] decodeBytes(int prevToken, int token);

    /**
     * The text of a whole sequence, decoded as if it followed BOS (so the first word's dummy-prefix space is
     * dropped, as SentencePiece does); BOS and EOS themselves give no text. Inverse of {@link #encode}.
     */
    default String decode(int[] tokens) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int prev = bos();
        for (int t : tokens) {
            if (t != bos() && t != eos()) {
                out.writeBytes(decodeBytes(prev, t));
            }
            prev = t;
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    int vocabSize();

    int bos();

    int eos();
}
