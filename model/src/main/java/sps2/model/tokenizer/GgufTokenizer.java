package sps2.model.tokenizer;

import sps2.model.ModelFormatException;
import sps2.model.gguf.GgufFile;

/**
 * The vocabulary embedded in a GGUF file ({@code tokenizer.ggml.*}), for the SentencePiece ("llama") model:
 * pieces with U+2581 for spaces, scores, token types, BOS/EOS/unknown ids and the dummy-prefix flag.
 */
public final class GgufTokenizer {

    private GgufTokenizer() {
    }

    public static SentencePieceTokenizer from(GgufFile gguf) {
        if (!gguf.has("tokenizer.ggml.tokens")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " has no embedded vocabulary (tokenizer.ggml.tokens); give a tokenizer file.");
        }
        String model = gguf.getString("tokenizer.ggml.model", "llama");
        if (!model.equals("llama")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " embeds a '" + model
                    + "' tokenizer; only the SentencePiece ('llama') tokenizer is supported.");
        }
        String[] tokens = gguf.getStringArray("tokenizer.ggml.tokens");
        if (!gguf.has("tokenizer.ggml.scores")) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " lacks tokenizer.ggml.scores, which a SentencePiece vocabulary needs.");
        }
        float[] scores = gguf.getFloatArray("tokenizer.ggml.scores");
        int[] types = gguf.has("tokenizer.ggml.token_type") ? gguf.getIntArray("tokenizer.ggml.token_type") : null;
        if (scores.length != tokens.length || (types != null && types.length != tokens.length)) {
            throw new ModelFormatException("The GGUF file " + gguf.path() + " has " + tokens.length + " tokens but " + scores.length + " scores"
                    + (types == null ? "" : " and " + types.length + " token types") + ".");
        }
        String[] pieces = new String[tokens.length];
        for (int i = 0; i < tokens.length; i++) {
            pieces[i] = tokens[i].replace('\u2581', ' ');
        }
        int bos = gguf.getInt("tokenizer.ggml.bos_token_id", 1);
        int eos = gguf.getInt("tokenizer.ggml.eos_token_id", 2);
        int unk = gguf.getInt("tokenizer.ggml.unknown_token_id", 0);
        for (int id : new int[] {bos, eos, unk}) {
            if (id < 0 || id >= tokens.length) {
                throw new ModelFormatException("The GGUF file " + gguf.path() + " names special token id " + id + ", outside its " + tokens.length + " tokens.");
            }
        }
        return new SentencePieceTokenizer(pieces, scores, types, bos, eos, unk, gguf.getBoolean("tokenizer.ggml.add_space_prefix", true));
    }
}
