package sps2.model.shapes;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import sps2.model.DType;
import sps2.model.Half;
import sps2.model.HostTensor;
import sps2.model.ModelConfig;
import sps2.model.ModelWeights;

/**
 * Deterministic random Llama weights. Row {@code r} of canonical tensor {@code name} depends only on
 * (seed, name, r): it is drawn from a {@link SplittableRandom} seeded with a SplitMix64 mix of the three,
 * so rows can be generated in any order and in parallel. Matrices get N(0, 0.02^2) values; norm
 * weights get 1 + N(0, 0.02^2).
 */
public final class RandomWeights {
    private RandomWeights() {
    }

    public static final double STD = 0.02;

    /** A canonical tensor's name and shape [rows, cols] (cols only for a vector, which is one row). */
    public record Spec(String name, int rows, int cols, boolean vector) {
        public long[] shape() {
            return vector ? new long[] {cols} : new long[] {rows, cols};
        }

        public long elements() {
            return (long) rows * cols;
        }
    }

    /** The canonical tensors of a model, in file order: embeddings, layers, final norm, output head. */
    public static List<Spec> specs(ModelConfig c) {
        List<Spec> specs = new ArrayList<>();
        int qDim = c.nHeads() * c.headSize();
        specs.add(new Spec("tok_embeddings", c.vocabSize(), c.dim(), false));
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "layers." + l + ".";
            specs.add(new Spec(p + "attention_norm", 1, c.dim(), true));
            specs.add(new Spec(p + "wq", qDim, c.dim(), false));
            specs.add(new Spec(p + "wk", c.kvDim(), c.dim(), false));
            specs.add(new Spec(p + "wv", c.kvDim(), c.dim(), false));
            specs.add(new Spec(p + "wo", c.dim(), qDim, false));
            specs.add(new Spec(p + "ffn_norm", 1, c.dim(), true));
            specs.add(new Spec(p + "w1", c.hiddenDim(), c.dim(), false));
            specs.add(new Spec(p + "w3", c.hiddenDim(), c.dim(), false));
            specs.add(new Spec(p + "w2", c.dim(), c.hiddenDim(), false));
        }
        specs.add(new Spec("norm", 1, c.dim(), true));
        if (!c.tiedEmbeddings()) {
            specs.add(new Spec("output", c.vocabSize(), c.dim(), false));
        }
        return specs;
    }

    /** Fills {@code out[0 .. cols)} with row {@code row} of tensor {@code spec}. */
    public static void fillRow(long seed, Spec spec, int row, float[] out) {
        SplittableRandom rnd = new SplittableRandom(mix64(mix64(seed ^ spec.name().hashCode()) + 0x9E3779B97F4A7C15L * (row + 1L)));
        double mean = spec.vector() ? 1.0 : 0.0;
        for (int i = 0; i < spec.cols(); i++) {
            out[i] = (float) (mean + STD * rnd.nextGaussian());
        }
    }

    /** Writes {@code n} floats as {@code dtype} little-endian values at the buffer's position. */
    public static void encode(float[] values, int n, DType dtype, ByteBuffer dst) {
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    dst.putFloat(values[i]);
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst.putShort(HostTensor.toBf16(values[i]));
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst.putShort(Half.fromFloat(values[i]));
                }
            }
            default -> throw new IllegalArgumentException("Random weights can be F32, F16 or BF16, not " + dtype);
        }
    }

    /**
     * The whole model in memory, in canonical names and the interleaved q/k layout. Only for small shapes
     * (tests); large checkpoints go to disk with {@link RandomCheckpointWriter}.
     */
    public static ModelWeights generate(ModelConfig config, DType dtype, long seed) {
        Map<String, HostTensor> tensors = new LinkedHashMap<>();
        for (Spec spec : specs(config)) {
            ByteBuffer b = ByteBuffer.allocate(Math.toIntExact(dtype.byteSize(spec.elements()))).order(ByteOrder.LITTLE_ENDIAN);
            float[] row = new float[spec.cols()];
            for (int r = 0; r < spec.rows(); r++) {
                fillRow(seed, spec, r, row);
                encode(row, row.length, dtype, b);
            }
            b.flip();
            tensors.put(spec.name(), new HostTensor(spec.name(), dtype, spec.shape(), b));
        }
        return new ModelWeights(config, tensors, "random(seed=" + seed + ")");
    }

    /** SplitMix64's finalizer (Stafford's mix 13): a bijection that scrambles all 64 bits. */
    public static long mix64(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
