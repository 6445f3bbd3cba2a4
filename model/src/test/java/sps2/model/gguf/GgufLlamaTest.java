package sps2.model.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.ModelFormatException;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.Rope;

class GgufLlamaTest {

    @TempDir
    Path dir;

    static float[] ramp(int n, float start) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = start + i;
        }
        return a;
    }

    /** dim 8, 2 heads, 1 KV head, hidden 12, 1 layer, vocab 10; tied unless {@code withOutput}. */
    static GgufWriter tinyLlama(boolean withOutput) {
        return tinyLlama(withOutput, 1);
    }

    static GgufWriter tinyLlama(boolean withOutput, int blockCount) {
        GgufWriter w = new GgufWriter().str("general.architecture", "llama")
                .u32("llama.embedding_length", 8).u32("llama.feed_forward_length", 12).u32("llama.block_count", blockCount)
                .u32("llama.attention.head_count", 2).u32("llama.attention.head_count_kv", 1).u32("llama.context_length", 64)
                .f32("llama.rope.freq_base", 500000f).f32("llama.attention.layer_norm_rms_epsilon", 1e-6f)
                .f32Tensor("token_embd.weight", ramp(80, 0), 10, 8)
                .f32Tensor("blk.0.attn_norm.weight", ramp(8, 100), 8)
                .f32Tensor("blk.0.attn_q.weight", ramp(64, 200), 8, 8)
                .f32Tensor("blk.0.attn_k.weight", ramp(32, 300), 4, 8)
                .f32Tensor("blk.0.attn_v.weight", ramp(32, 400), 4, 8)
                .f32Tensor("blk.0.attn_output.weight", ramp(64, 500), 8, 8)
                .f32Tensor("blk.0.ffn_norm.weight", ramp(8, 600), 8)
                .tensor("blk.0.ffn_gate.weight", 1, GgufFileTest.f16(ramp(96, 700)), 12, 8)
                .f32Tensor("blk.0.ffn_down.weight", ramp(96, 800), 8, 12)
                .f32Tensor("blk.0.ffn_up.weight", ramp(96, 900), 12, 8)
                .f32Tensor("output_norm.weight", ramp(8, 1000), 8);
        if (withOutput) {
            w.f32Tensor("output.weight", ramp(80, 2000), 10, 8);
        }
        return w;
    }

    @Test
    void mapsNamesShapesAndConfig() throws IOException {
        ModelWeights m = ModelLoader.load(tinyLlama(false).write(dir.resolve("tied.gguf")));
        assertEquals(new ModelConfig(8, 12, 1, 2, 1, 10, 64, 500000f, 1e-6f, true, null), m.config());
        assertNull(m.tensors().get("output"));
        assertArrayEquals(new long[] {10, 8}, m.get("tok_embeddings").shape());
        assertArrayEquals(ramp(32, 300), m.layer(0, "wk").toFloats());
        assertArrayEquals(ramp(64, 500), m.layer(0, "wo").toFloats());
        assertEquals(DType.F16, m.layer(0, "w1").dtype());
        assertArrayEquals(ramp(96, 700), m.layer(0, "w1").toFloats());
        assertArrayEquals(ramp(96, 800), m.layer(0, "w2").toFloats());
        assertArrayEquals(ramp(96, 900), m.layer(0, "w3").toFloats());
        assertArrayEquals(ramp(8, 1000), m.get("norm").toFloats());
        assertArrayEquals(ramp(80, 0), m.output().toFloats());

        ModelWeights untied = ModelLoader.load(tinyLlama(true).write(dir.resolve("untied.gguf")));
        assertFalse(untied.config().tiedEmbeddings());
        assertArrayEquals(ramp(80, 2000), untied.output().toFloats());
    }

    @Test
    void refusesOtherArchitecturesAndMissingTensors() throws IOException {
        Path qwen = new GgufWriter().str("general.architecture", "qwen2").f32Tensor("token_embd.weight", ramp(8, 0), 1, 8)
                .write(dir.resolve("qwen.gguf"));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(qwen)).getMessage().contains("'qwen2'"));
        Path noKeys = new GgufWriter().str("general.architecture", "llama").f32Tensor("token_embd.weight", ramp(8, 0), 1, 8)
                .write(dir.resolve("nokeys.gguf"));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(noKeys)).getMessage().contains("llama.embedding_length"));
        Path twoLayers = tinyLlama(false, 2).write(dir.resolve("two.gguf"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelLoader.load(twoLayers));
        assertTrue(e.getMessage().contains("blk.1.attn_norm.weight"), e.getMessage());
        Path duplicate = tinyLlama(false).u32("llama.block_count", 2).write(dir.resolve("dup.gguf"));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(duplicate)).getMessage().contains("llama.block_count twice"));
    }

    @Test
    void readsLlama3RopeScalingKeys() throws IOException {
        Path p = tinyLlama(false).str("llama.rope.scaling.type", "llama3").f32("llama.rope.scaling.factor", 8f)
                .f32("llama.rope.scaling.low_freq_factor", 1f).f32("llama.rope.scaling.high_freq_factor", 4f)
                .u32("llama.rope.scaling.original_context_length", 8192).write(dir.resolve("scaled.gguf"));
        assertEquals(new ModelConfig.RopeScaling(8f, 1f, 4f, 8192), ModelLoader.load(p).config().ropeScaling());
        Path yarn = tinyLlama(false).str("llama.rope.scaling.type", "yarn").write(dir.resolve("yarn.gguf"));
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelLoader.load(yarn)).getMessage().contains("'yarn'"));
    }

    @Test
    void fitsLlama3ScalingToRopeFreqsTensor() {
        // Llama 3.1 8B: head size 128, theta 500000, factor 8, low 1, high 4, original context 8192.
        ModelConfig base = new ModelConfig(128, 256, 1, 1, 1, 16, 131072, 500000f, 1e-5f, true, null);
        ModelConfig.RopeScaling truth = new ModelConfig.RopeScaling(8f, 1f, 4f, 8192);
        float[] plain = Rope.inverseFrequencies(base);
        float[] scaled = Rope.inverseFrequencies(new ModelConfig(128, 256, 1, 1, 1, 16, 131072, 500000f, 1e-5f, true, truth));
        float[] divisors = new float[plain.length];
        for (int j = 0; j < plain.length; j++) {
            divisors[j] = plain[j] / scaled[j];
        }
        ModelConfig.RopeScaling fitted = GgufLlama.fitRopeScaling(base, divisors, 8192);
        assertEquals(8f, fitted.factor(), 1e-4);
        assertEquals(1f, fitted.lowFreqFactor(), 1e-3);
        assertEquals(4f, fitted.highFreqFactor(), 1e-3);
        divisors[3] *= 1.5f;
        assertNull(GgufLlama.fitRopeScaling(base, divisors, 8192));
    }
}
