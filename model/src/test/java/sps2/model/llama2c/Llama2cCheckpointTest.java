package sps2.model.llama2c;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sps2.model.ModelFormatException;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;

/** Untied classifiers and error cases on small files written per llama2.c's export.py layouts. */
class Llama2cCheckpointTest {

    @TempDir
    Path dir;

    // dim 8, hidden 12, 2 layers, 2 heads, 1 KV head (kvDim 4), vocab 10, seq_len 6
    static final int DIM = 8, HIDDEN = 12, LAYERS = 2, HEADS = 2, KV = 1, VOCAB = 10, SEQ = 6, KVDIM = 4;

    /** Canonical name → values; every value distinct so a misplaced offset shows. */
    static Map<String, float[]> weights() {
        Map<String, float[]> w = new LinkedHashMap<>();
        int[] counter = {0};
        java.util.function.IntFunction<float[]> fill = n -> {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = ++counter[0] * 0.5f;
            }
            return a;
        };
        w.put("tok_embeddings", fill.apply(VOCAB * DIM));
        for (int l = 0; l < LAYERS; l++) {
            String p = "layers." + l + ".";
            w.put(p + "attention_norm", fill.apply(DIM));
            w.put(p + "wq", fill.apply(DIM * DIM));
            w.put(p + "wk", fill.apply(KVDIM * DIM));
            w.put(p + "wv", fill.apply(KVDIM * DIM));
            w.put(p + "wo", fill.apply(DIM * DIM));
            w.put(p + "ffn_norm", fill.apply(DIM));
            w.put(p + "w1", fill.apply(HIDDEN * DIM));
            w.put(p + "w2", fill.apply(DIM * HIDDEN));
            w.put(p + "w3", fill.apply(HIDDEN * DIM));
        }
        w.put("norm", fill.apply(DIM));
        w.put("output", fill.apply(VOCAB * DIM));
        return w;
    }

    static List<float[]> stack(Map<String, float[]> w, String kind) {
        List<float[]> out = new ArrayList<>();
        for (int l = 0; l < LAYERS; l++) {
            out.add(w.get("layers." + l + "." + kind));
        }
        return out;
    }

    static byte[] v0(Map<String, float[]> w) {
        List<float[]> parts = new ArrayList<>();
        parts.add(w.get("tok_embeddings"));
        for (String k : new String[] {"attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"}) {
            parts.addAll(stack(w, k));
        }
        parts.add(w.get("norm"));
        parts.add(new float[SEQ * (DIM / HEADS)]); // freq_cis_real + freq_cis_imag
        parts.add(w.get("output"));
        ByteBuffer b = buffer(28, parts);
        b.putInt(DIM).putInt(HIDDEN).putInt(LAYERS).putInt(HEADS).putInt(KV).putInt(-VOCAB).putInt(SEQ);
        return finish(b, parts);
    }

    static byte[] v1(Map<String, float[]> w, int version) {
        List<float[]> parts = new ArrayList<>(stack(w, "attention_norm"));
        parts.addAll(stack(w, "ffn_norm"));
        parts.add(w.get("norm"));
        parts.add(w.get("tok_embeddings"));
        for (String k : new String[] {"wq", "wk", "wv", "wo", "w1", "w2", "w3"}) {
            parts.addAll(stack(w, k));
        }
        parts.add(w.get("output"));
        ByteBuffer b = buffer(256, parts);
        b.putInt(0x616b3432).putInt(version);
        b.putInt(DIM).putInt(HIDDEN).putInt(LAYERS).putInt(HEADS).putInt(KV).putInt(VOCAB).putInt(SEQ);
        b.put((byte) 0); // own classifier
        b.position(256);
        return finish(b, parts);
    }

    private static ByteBuffer buffer(int header, List<float[]> parts) {
        int n = parts.stream().mapToInt(a -> a.length).sum();
        return ByteBuffer.allocate(header + 4 * n).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] finish(ByteBuffer b, List<float[]> parts) {
        for (float[] p : parts) {
            for (float f : p) {
                b.putFloat(f);
            }
        }
        return b.array();
    }

    @Test
    void untiedClassifierInBothVersions() throws IOException {
        Map<String, float[]> w = weights();
        ModelWeights m0 = ModelLoader.load(Files.write(dir.resolve("v0.bin"), v0(w)));
        ModelWeights m1 = ModelLoader.load(Files.write(dir.resolve("v1.bin"), v1(w, 1)));
        for (ModelWeights m : new ModelWeights[] {m0, m1}) {
            assertFalse(m.config().tiedEmbeddings());
            assertEquals(VOCAB, m.config().vocabSize());
            assertEquals(SEQ, m.config().contextLength());
            assertEquals(KVDIM, m.config().kvDim());
            assertEquals(w.keySet(), m.tensors().keySet());
            for (Map.Entry<String, float[]> e : w.entrySet()) {
                assertArrayEquals(e.getValue(), m.get(e.getKey()).toFloats(), e.getKey());
            }
        }
    }

    /** What the writer puts down, the reader gives back: the config and every tensor, tied and untied. */
    @Test
    void writerRoundTripsRandomModels() {
        for (String shape : new String[] {"stories260k", "tiny"}) {
            ModelWeights want = sps2.model.shapes.RandomWeights.generate(sps2.model.shapes.ModelShapes.get(shape), sps2.model.DType.F32, 5);
            Path file = dir.resolve(shape + ".bin");
            Llama2cWriter.writeV0(want, file);
            ModelWeights got = ModelLoader.load(file);
            assertEquals(want.config(), got.config(), shape);
            assertEquals(want.tensors().keySet(), got.tensors().keySet(), shape);
            for (String name : want.tensors().keySet()) {
                assertArrayEquals(want.get(name).toFloats(), got.get(name).toFloats(), shape + " " + name);
            }
        }
    }

    @Test
    void refusesOtherVersionsAndBadSizes() throws IOException {
        Path v2 = Files.write(dir.resolve("v2.bin"), v1(weights(), 2));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(v2)).getMessage().contains("version 2"));
        byte[] v0 = v0(weights());
        byte[] longer = java.util.Arrays.copyOf(v0, v0.length + 4);
        Path trailing = Files.write(dir.resolve("long.bin"), longer);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelLoader.load(trailing));
        assertTrue(e.getMessage().contains("trailing data") && e.getMessage().contains(String.valueOf(v0.length)), e.getMessage());
        Path headerOnly = Files.write(dir.resolve("h.bin"), java.util.Arrays.copyOf(v1(weights(), 1), 100));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(headerOnly)).getMessage().contains("truncated"));
    }
}
