package sps2.model.tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import sps2.model.ModelFormatException;

/**
 * llama2.c's {@code tokenizer.bin}: int32 max_token_length, then per token float32 score, int32 length and
 * that many UTF-8 bytes (spaces as ' ', byte tokens as "&lt;0xNN&gt;"). The file does not store the vocabulary
 * size: it is the number of entries. Unknown is 0, BOS 1, EOS 2, as llama2.c assumes.
 */
public final class Llama2cTokenizer {

    private Llama2cTokenizer() {
    }

    /** All tokens of the file. */
    public static SentencePieceTokenizer load(Path path) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException("The tokenizer file " + path + " does not exist.", e);
        } catch (IOException e) {
            throw new ModelFormatException("The tokenizer file " + path + " cannot be read: " + e.getMessage(), e);
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 4) {
            throw new ModelFormatException("The tokenizer file " + path + " is too short (" + bytes.length + " bytes) to be a llama2.c tokenizer.");
        }
        int maxLength = b.getInt();
        if (maxLength <= 0 || maxLength > 1 << 16) {
            throw new ModelFormatException("The file " + path + " is not a llama2.c tokenizer: its max token length reads as " + maxLength + ".");
        }
        List<String> pieces = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        while (b.hasRemaining()) {
            int at = b.position();
            if (b.remaining() < 8) {
                throw truncated(path, pieces.size(), at, bytes.length);
            }
            float score = b.getFloat();
            int len = b.getInt();
            if (len < 0 || len > maxLength) {
                throw new ModelFormatException("The tokenizer file " + path + " is corrupt: token " + pieces.size() + " has length " + len
                        + " but the header allows at most " + maxLength + ".");
            }
            if (b.remaining() < len) {
                throw truncated(path, pieces.size(), at, bytes.length);
            }
            pieces.add(new String(bytes, b.position(), len, StandardCharsets.UTF_8));
            b.position(b.position() + len);
            scores.add(score);
        }
        if (pieces.size() < 3) {
            throw new ModelFormatException("The tokenizer file " + path + " holds only " + pieces.size() + " tokens.");
        }
        float[] s = new float[scores.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
        }
        return new SentencePieceTokenizer(pieces.toArray(new String[0]), s, null, 1, 2, 0, true);
    }

    /** The tokenizer, checked to hold exactly {@code vocabSize} tokens. */
    public static SentencePieceTokenizer load(Path path, int vocabSize) {
        SentencePieceTokenizer t = load(path);
        if (t.vocabSize() != vocabSize) {
            throw new ModelFormatException("The tokenizer " + path + " holds " + t.vocabSize() + " tokens but the model has a vocabulary of " + vocabSize + ".");
        }
        return t;
    }

    private static ModelFormatException truncated(Path path, int token, int at, int size) {
        return new ModelFormatException("The tokenizer file " + path + " is truncated: token " + token + " starts at byte " + at
                + " but the file ends at " + size + ".");
    }
}
