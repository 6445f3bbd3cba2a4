package sps2.model.llama2c;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

import sps2.model.ModelConfig;
import sps2.model.ModelWeights;

/**
 * Writes a model as a legacy (v0) llama2.c checkpoint, the layout {@link Llama2cCheckpoint} reads and llama2.c's
 * {@code run.c} and llama.cpp's {@code llama-convert-llama2c-to-ggml} accept: the peers of the CPU benchmark then
 * run the very weights sps2 runs. The format has no RoPE theta, epsilon or scaling: those must be llama2.c's.
 */
public final class Llama2cWriter {
    private Llama2cWriter() {
    }

    /** Writes {@code weights} (canonical names, interleaved q/k rows) to {@code file} as fp32. */
    public static void writeV0(ModelWeights weights, Path file) {
        ModelConfig c = weights.config();
        if (c.ropeTheta() != 10000f || c.rmsEps() != 1e-5f || c.ropeScaling() != null) {
            throw new IllegalArgumentException("A llama2.c checkpoint implies RoPE theta 10000, epsilon 1e-5 and no RoPE scaling; this model has "
                    + c.ropeTheta() + ", " + c.rmsEps() + (c.ropeScaling() != null ? " and scaling" : ""));
        }
        if (c.nHeads() * c.headSize() != c.dim()) {
            throw new IllegalArgumentException("llama2.c needs heads x head size = dim; this model has " + c.nHeads() + " x " + c.headSize() + " != " + c.dim());
        }
        try (OutputStream out = new BufferedOutputStream(Files.newOutputStream(file), 1 << 20)) {
            ByteBuffer header = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
            header.putInt(c.dim()).putInt(c.hiddenDim()).putInt(c.nLayers()).putInt(c.nHeads()).putInt(c.nKvHeads())
                    .putInt(c.tiedEmbeddings() ? c.vocabSize() : -c.vocabSize()).putInt(c.contextLength());
            out.write(header.array());
            floats(out, weights.get("tok_embeddings").toFloats());
            for (String kind : new String[] {"attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"}) {
                for (int l = 0; l < c.nLayers(); l++) {
                    floats(out, weights.layer(l, kind).toFloats());
                }
            }
            floats(out, weights.get("norm").toFloats());
            // freq_cis_real, freq_cis_imag [seq_len, head_size / 2] each: unused by every reader, written as export.py does
            int half = c.headSize() / 2;
            float[] re = new float[c.contextLength() * half];
            float[] im = new float[re.length];
            for (int t = 0; t < c.contextLength(); t++) {
                for (int i = 0; i < half; i++) {
                    double angle = t / Math.pow(10000.0, 2.0 * i / c.headSize());
                    re[t * half + i] = (float) Math.cos(angle);
                    im[t * half + i] = (float) Math.sin(angle);
                }
            }
            floats(out, re);
            floats(out, im);
            if (!c.tiedEmbeddings()) {
                floats(out, weights.get("output").toFloats());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Could not write the llama2.c checkpoint " + file + ": " + e.getMessage(), e);
        }
    }

    private static void floats(OutputStream out, float[] values) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        out.write(b.array());
    }
}
