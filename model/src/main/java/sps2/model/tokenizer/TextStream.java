package sps2.model.tokenizer;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Turns generated tokens, one at a time, into text that only ever contains whole characters: bytes of a
 * UTF-8 sequence split over several byte-fallback tokens are held back until the sequence is complete.
 * Its state (the previous token and at most 3 pending bytes) can be read and restored, e.g. from Flink state.
 * Not thread-safe; one per generated sequence.
 */
public final class TextStream {
    private final Tokenizer tokenizer;
    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private int prevToken;
    private byte[] pending;

    /** A stream whose first token follows {@code prevToken} (e.g. the last prompt token). */
    public TextStream(Tokenizer tokenizer, int prevToken) {
        this(tokenizer, prevToken, new byte[0]);
    }

    /** A stream restored from {@link #prevToken()} and {@link #pendingBytes()}. */
    public TextStream(Tokenizer tokenizer, int prevToken, byte[] pendingBytes) {
        this.tokenizer = tokenizer;
        this.prevToken = prevToken;
        this.pending = pendingBytes.clone();
    }

    /** The complete characters that {@code token} finishes; possibly empty. */
    public String append(int token) {
        byte[] bytes = tokenizer.decodeBytes(prevToken, token);
        prevToken = token;
        byte[] all = Arrays.copyOf(pending, pending.length + bytes.length);
        System.arraycopy(bytes, 0, all, pending.length, bytes.length);
        ByteBuffer in = ByteBuffer.wrap(all);
        CharBuffer out = CharBuffer.allocate(all.length + 1);
        utf8.reset();
        utf8.decode(in, out, false); // stops before an incomplete trailing sequence
        pending = Arrays.copyOfRange(all, in.position(), all.length);
        return out.flip().toString();
    }

    /** What is still held back, as replacement characters; the stream is then empty. */
    public String flush() {
        String rest = new String(pending, StandardCharsets.UTF_8);
        pending = new byte[0];
        return rest;
    }

    public int prevToken() {
        return prevToken;
    }

    public byte[] pendingBytes() {
        return pending.clone();
    }
}
