package sps2.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sps2.model.ModelFormatException;
import sps2.model.ModelLoader;
import sps2.model.ModelLoaderTest;
import sps2.model.ModelWeights;
import sps2.model.gguf.GgufFile;

class TokenizerTest {

    @TempDir
    Path dir;

    static final String[] TEXTS = {
        "Once upon a time",
        "",
        " ",
        "Lily and Ben went to the park.\nThey saw a big dog!",
        "naïve café — 東京 🙂 ",
        "  two  spaces, trailing tab\t",
        "ÿ\u0000\u007f<s></s><0x41>",
    };

    static Path tok512() {
        return ModelLoaderTest.sharedModel("tok512.bin");
    }

    @Test
    void tok512AndTheGgufVocabularyGiveTheSameIds() {
        SentencePieceTokenizer bin = Llama2cTokenizer.load(tok512(), 512);
        SentencePieceTokenizer gguf = GgufTokenizer.from(GgufFile.open(ModelLoaderTest.sharedModel("stories260K.gguf")));
        assertEquals(512, gguf.vocabSize());
        assertEquals(1, gguf.bos());
        assertEquals(2, gguf.eos());
        int[] ids = bin.encode("Once upon a time", true);
        assertArrayEquals(ids, gguf.encode("Once upon a time", true));
        assertEquals(1, ids[0]);
        StringBuilder pieces = new StringBuilder();
        for (int i = 1; i < ids.length; i++) {
            pieces.append(bin.piece(ids[i]));
        }
        assertEquals(" Once upon a time", pieces.toString());
        for (String text : TEXTS) {
            assertArrayEquals(bin.encode(text, false), gguf.encode(text, false), text);
        }
    }

    @Test
    void roundTripsIncludingByteFallbackAndEmptyText() {
        for (Tokenizer t : new Tokenizer[] {Llama2cTokenizer.load(tok512()), Llama2cTokenizer.load(ModelLoaderTest.sharedModel("llama2_tokenizer.bin")),
                GgufTokenizer.from(GgufFile.open(ModelLoaderTest.sharedModel("stories260K.gguf")))}) {
            for (String text : TEXTS) {
                int[] ids = t.encode(text, true);
                assertEquals(text, t.decode(ids), text);
                TextStream stream = new TextStream(t, ids[0]);
                StringBuilder out = new StringBuilder();
                for (int i = 1; i < ids.length; i++) {
                    String piece = stream.append(ids[i]);
                    assertTrue(piece.chars().noneMatch(c -> c == '\uFFFD'), "no partial characters come out");
                    out.append(piece);
                }
                assertEquals("", stream.flush());
                assertEquals(text, out.toString(), text);
            }
            assertArrayEquals(new int[0], t.encode("", false));
            assertArrayEquals(new int[] {t.bos()}, t.encode("", true));
        }
    }

    @Test
    void byteFallbackTokensAreHeldBackUntilTheCharacterIsComplete() {
        SentencePieceTokenizer t = Llama2cTokenizer.load(tok512());
        int[] ids = t.encode("東", false); // not in the 512 vocabulary: ' ' then 3 byte tokens
        assertArrayEquals(new int[] {3 + 0xE6, 3 + 0x9D, 3 + 0xB1}, Arrays.copyOfRange(ids, ids.length - 3, ids.length));
        TextStream s = new TextStream(t, t.bos());
        assertEquals("", s.append(ids[ids.length - 3]));
        assertEquals("", s.append(ids[ids.length - 2]));
        TextStream restored = new TextStream(t, s.prevToken(), s.pendingBytes());
        assertEquals("東", restored.append(ids[ids.length - 1]));
        assertEquals("\uFFFD", new TextStream(t, t.bos(), new byte[] {(byte) 0xE6}).flush());
        assertEquals("\uFFFD", t.decode(t.bos(), 3 + 0xE6), "a lone byte decoded alone is a replacement character");
    }

    @Test
    void llama2VocabularyGivesItsKnownIds() {
        SentencePieceTokenizer t = Llama2cTokenizer.load(ModelLoaderTest.sharedModel("llama2_tokenizer.bin"), 32000);
        // Ids of Meta's Llama 2 tokenizer (SentencePiece) for these texts.
        assertArrayEquals(new int[] {1, 15043, 3186}, t.encode("Hello world", true));
        assertArrayEquals(new int[] {1, 9038, 2501, 263, 931}, t.encode("Once upon a time", true));
        assertArrayEquals(new int[] {29871, 13}, t.encode("\n", false));
        assertEquals("Hello", t.decode(1, 15043), "the space after BOS is dropped");
        assertEquals(" Hello", t.decode(3186, 15043));
    }

    /** llama2.c's encode, transcribed literally (quadratic): the priority-queue version must agree with it. */
    static int[] reference(SentencePieceTokenizer t, String text) {
        Map<String, Integer> lookup = new HashMap<>();
        for (int i = t.vocabSize() - 1; i >= 0; i--) {
            lookup.put(t.piece(i), i);
        }
        List<Integer> tokens = new ArrayList<>();
        String s = text.isEmpty() ? text : " " + text;
        s.codePoints().forEach(cp -> {
            Integer id = lookup.get(new String(Character.toChars(cp)));
            if (id != null) {
                tokens.add(id);
            } else {
                for (byte b : new String(Character.toChars(cp)).getBytes(java.nio.charset.StandardCharsets.UTF_8)) {
                    tokens.add((b & 0xff) + 3);
                }
            }
        });
        while (true) {
            float best = -1e10f;
            int bestId = -1;
            int bestIdx = -1;
            for (int i = 0; i + 1 < tokens.size(); i++) {
                Integer id = lookup.get(t.piece(tokens.get(i)) + t.piece(tokens.get(i + 1)));
                if (id != null && t.score(id) > best) {
                    best = t.score(id);
                    bestId = id;
                    bestIdx = i;
                }
            }
            if (bestIdx < 0) {
                break;
            }
            tokens.set(bestIdx, bestId);
            tokens.remove(bestIdx + 1);
        }
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void agreesWithLlama2cEncodeOnRandomTexts() {
        String alphabet = "aaaeeeiioouu nnttrrssllhh  ..,,!?\n'\"THELOé中🙂ß";
        int[] cps = alphabet.codePoints().toArray();
        Random random = new Random(42);
        for (Path vocab : new Path[] {tok512(), ModelLoaderTest.sharedModel("llama2_tokenizer.bin")}) {
            SentencePieceTokenizer t = Llama2cTokenizer.load(vocab);
            for (int trial = 0; trial < 60; trial++) {
                StringBuilder sb = new StringBuilder();
                int len = random.nextInt(120);
                for (int i = 0; i < len; i++) {
                    sb.appendCodePoint(cps[random.nextInt(cps.length)]);
                }
                String text = sb.toString();
                assertArrayEquals(reference(t, text), t.encode(text, false), vocab + ": " + text);
            }
        }
    }

    @Test
    void mergesAcrossWordsWhenTheVocabularyHasSuchPieces() {
        // A made-up vocabulary with a piece spanning two words: it must still be found.
        String[] pieces = {"<unk>", "<s>", "</s>", " ", "a", "b", " a", " b", " a b"};
        float[] scores = {0, 0, 0, -10, -10, -10, -1, -2, -3};
        SentencePieceTokenizer t = new SentencePieceTokenizer(pieces, scores, null, 1, 2, 0, true);
        assertArrayEquals(new int[] {8}, t.encode("a b", false));
        assertArrayEquals(reference(t, "a b a b"), t.encode("a b a b", false));
        assertEquals("a b", t.decode(t.encode("a b", true)));
        assertArrayEquals(new int[] {1, 6, 0}, t.encode("aé", true), "no byte tokens: unknown");
    }

    @Test
    void findsAndChecksTheTokenizerForAModel() throws IOException {
        Path gguf = ModelLoaderTest.sharedModel("stories260K.gguf");
        Path v0 = ModelLoaderTest.sharedModel("stories260K.bin");
        ModelWeights w = ModelLoader.load(v0);
        Tokenizer embedded = Tokenizers.forModel(gguf, null, ModelLoader.load(gguf));
        Tokenizer nextTo = Tokenizers.forModel(v0, null, w); // finds tok512.bin beside it
        assertArrayEquals(embedded.encode("Once upon a time", true), nextTo.encode("Once upon a time", true));
        Tokenizer given = Tokenizers.forModel(v0, gguf, w); // a GGUF's vocabulary for a llama2.c model
        assertArrayEquals(embedded.encode("The end.", false), given.encode("The end.", false));

        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Tokenizers.forModel(v0, ModelLoaderTest.sharedModel("llama2_tokenizer.bin"), w));
        assertTrue(e.getMessage().contains("32000") && e.getMessage().contains("512"), e.getMessage());

        Path alone = Files.copy(v0, dir.resolve("model.bin"));
        e = assertThrows(ModelFormatException.class, () -> Tokenizers.forModel(alone, null, w));
        assertTrue(e.getMessage().contains("tok512.bin") && e.getMessage().contains("tokenizer.bin"), e.getMessage());
        Files.copy(tok512(), dir.resolve("tokenizer.bin"));
        assertEquals(512, Tokenizers.forModel(alone, null, w).vocabSize());

        byte[] bytes = Files.readAllBytes(tok512());
        Path cut = Files.write(dir.resolve("cut.bin"), Arrays.copyOf(bytes, bytes.length - 3));
        e = assertThrows(ModelFormatException.class, () -> Tokenizers.forModel(alone, cut, w));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("token 511"), e.getMessage());
        Path missing = dir.resolve("none.bin");
        assertTrue(assertThrows(ModelFormatException.class, () -> Tokenizers.forModel(alone, missing, w)).getMessage().contains("does not exist"));
    }
}
