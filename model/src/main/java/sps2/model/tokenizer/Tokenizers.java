package sps2.model.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import sps2.model.ModelFormatException;
import sps2.model.ModelWeights;
import sps2.model.gguf.GgufFile;

/** Finds the tokenizer that goes with a model. */
public final class Tokenizers {

    private Tokenizers() {
    }

    /**
     * The given tokenizer file (a llama2.c tokenizer.bin or a GGUF whose vocabulary to use); without one, the
     * vocabulary embedded in a GGUF model, or a llama2.c {@code tok<vocab>.bin} or {@code tokenizer.bin} next to
     * the model (or inside a model directory). Its size must equal the model's vocabulary.
     */
    public static Tokenizer forModel(Path model, Path tokenizerOrNull, ModelWeights weights) {
        return find(model, tokenizerOrNull, weights).orElseThrow(() -> new ModelFormatException(
                "No tokenizer was given for the model " + model + " and none was found next to it (looked for "
                        + String.join(" and ", candidates(model, weights).stream().map(Path::toString).toList()) + ")."));
    }

    /**
     * Like {@link #forModel}, but empty when no tokenizer was given and none lies beside the model (a random
     * checkpoint from make-model, say): such a model still serves requests that send token ids. A tokenizer
     * that is there but unreadable, or whose vocabulary differs from the model's, is still an error.
     */
    public static Optional<Tokenizer> find(Path model, Path tokenizerOrNull, ModelWeights weights) {
        Tokenizer t;
        Path source;
        if (tokenizerOrNull != null) {
            source = tokenizerOrNull;
            t = load(tokenizerOrNull);
        } else if (Files.isRegularFile(model) && isGguf(model)) {
            source = model;
            t = GgufTokenizer.from(GgufFile.open(model));
        } else {
            Optional<Path> found = candidates(model, weights).stream().filter(Files::isRegularFile).findFirst();
            if (found.isEmpty()) {
                return Optional.empty();
            }
            source = found.get();
            t = Llama2cTokenizer.load(source);
        }
        if (t.vocabSize() != weights.config().vocabSize()) {
            throw new ModelFormatException("The tokenizer " + source + " holds " + t.vocabSize() + " tokens but the model " + model
                    + " has a vocabulary of " + weights.config().vocabSize() + ".");
        }
        return Optional.of(t);
    }

    /** Where a llama2.c tokenizer for a model without one inside may lie: beside it, named by vocabulary size first. */
    private static List<Path> candidates(Path model, ModelWeights weights) {
        Path dir = Files.isDirectory(model) ? model : model.toAbsolutePath().getParent();
        return List.of(dir.resolve("tok" + weights.config().vocabSize() + ".bin"), dir.resolve("tokenizer.bin"));
    }

    /** A tokenizer file by its content: GGUF (its embedded vocabulary) or llama2.c tokenizer.bin. */
    public static Tokenizer load(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new ModelFormatException("The tokenizer file " + file + " does not exist.");
        }
        return isGguf(file) ? GgufTokenizer.from(GgufFile.open(file)) : Llama2cTokenizer.load(file);
    }

    private static boolean isGguf(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            byte[] head = in.readNBytes(4);
            return head.length == 4 && ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN).getInt() == GgufFile.MAGIC;
        } catch (IOException e) {
            throw new ModelFormatException("The file " + file + " cannot be read: " + e.getMessage(), e);
        }
    }
}
