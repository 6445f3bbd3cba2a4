package sps2.model;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A named tensor in host memory, in the element type it was stored with (often a slice of a
 * memory-mapped checkpoint). Row-major; for a weight matrix the shape is [out, in] as in PyTorch's
 * {@code nn.Linear.weight}.
 */
public record HostTensor(String name, DType dtype, long[] shape, ByteBuffer data) {

    public HostTensor {
        data = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        long need = dtype.byteSize(elementCount(shape));
        if (data.remaining() < need) {
            throw new IllegalArgumentException("Tensor " + name + " of shape " + Arrays.toString(shape) + " needs " + need
                    + " bytes of " + dtype + " but only " + data.remaining() + " are there (truncated file?)");
        }
    }

    public static long elementCount(long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public static HostTensor ofFloats(String name, float[] values, long... shape) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        return new HostTensor(name, DType.F32, shape, b);
    }

    public long size() {
        return elementCount(shape);
    }

    /** Rows of a 2-D tensor (1 for a vector). */
    public int rows() {
        return shape.length == 1 ? 1 : Math.toIntExact(shape[0]);
    }

    /** Columns of a 2-D tensor (the length of a vector). */
    public int cols() {
        return Math.toIntExact(shape[shape.length - 1]);
    }

    /** All values converted to float32 (dequantized where needed). */
    public float[] toFloats() {
        int n = Math.toIntExact(size());
        float[] out = new float[n];
        ByteBuffer b = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case F32 -> b.asFloatBuffer().get(out);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Half.toFloat(b.getShort(b.position() + 2 * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((b.getShort(b.position() + 2 * i) & 0xffff) << 16);
                }
            }
            case Q8_0 -> {
                int base = b.position();
                for (int blk = 0; blk < n / 32; blk++) {
                    int at = base + blk * 34;
                    float scale = Half.toFloat(b.getShort(at));
                    for (int j = 0; j < 32; j++) {
                        out[blk * 32 + j] = scale * b.get(at + 2 + j);
                    }
                }
            }
            case I32 -> throw new IllegalStateException("Tensor " + name + " holds integers, not floats");
        }
        return out;
    }

    /** Float32 to bfloat16 with round-to-nearest-even (NaN stays NaN). */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
