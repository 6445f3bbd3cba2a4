package sps2.job.cli;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

import sps2.model.DType;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomCheckpointWriter;

/**
 * The model the demo uses when none is given: random weights of the stories260K shape and a byte-level
 * tokenizer with some common English pieces, both written by sps2 itself. Its text is gibberish (the
 * weights are random), but every part of the serving path runs for real.
 */
final class DemoModel {
    static final String SHAPE = "stories260k";

    private DemoModel() {
    }

    /** The demo model directory, written on first use. */
    static Path ensure(Path dir) throws IOException {
        Path config = dir.resolve("config.json");
        Path tokenizer = dir.resolve("tokenizer.bin");
        if (!Files.exists(config) || !Files.exists(tokenizer)) {
            Files.createDirectories(dir);
            RandomCheckpointWriter.write(ModelShapes.get(SHAPE), SHAPE, dir, DType.F32, 260, RandomCheckpointWriter.Progress.NONE);
            writeTokenizer(tokenizer, ModelShapes.get(SHAPE).vocabSize());
        }
        return dir;
    }

    /** A llama2.c tokenizer.bin: unk, BOS, EOS, the 256 byte tokens, then English pieces up to the vocabulary size. */
    static void writeTokenizer(Path file, int vocab) throws IOException {
        Set<String> pieces = new LinkedHashSet<>();
        String[] words = ("the and was to a she he it they her his in on of with said day one big little time Lily Tom mom dog cat "
                + "ball park tree sun play happy saw had wanted went very there once upon friend house box fun help go what look").split(" ");
        for (String w : words) {
            pieces.add(" " + w);
        }
        String letters = "etaoinshrdlucmfwypvbgkqjxz";
        for (char a : letters.toCharArray()) {
            pieces.add(" " + a);
            pieces.add(String.valueOf(a));
            for (char b : "etaoinshr".toCharArray()) {
                pieces.add("" + a + b);
            }
        }
        for (char c : ".,!?'\"".toCharArray()) {
            pieces.add(String.valueOf(c));
        }
        pieces.add(" ");
        try (OutputStream os = Files.newOutputStream(file); DataOutputStream out = new DataOutputStream(os)) {
            out.write(le(16));
            int written = 0;
            written += entry(out, "<unk>", 0f);
            written += entry(out, "\n<s>\n", 0f);
            written += entry(out, "\n</s>\n", 0f);
            for (int b = 0; b < 256; b++) {
                written += entry(out, String.format("<0x%02X>", b), 0f);
            }
            int rank = 0;
            for (String p : pieces) {
                if (written == vocab) {
                    break;
                }
                written += entry(out, p, -rank++ - (p.length() == 1 ? 1000 : 0));
            }
            while (written < vocab) {
                written += entry(out, "<unused" + written + ">", -1e6f);
            }
        }
    }

    private static int entry(DataOutputStream out, String piece, float score) throws IOException {
        byte[] b = piece.getBytes(StandardCharsets.UTF_8);
        out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(score).putInt(b.length).array());
        out.write(b);
        return 1;
    }

    private static byte[] le(int v) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array();
    }
}
