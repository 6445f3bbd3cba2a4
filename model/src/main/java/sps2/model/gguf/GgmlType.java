package sps2.model.gguf;

import sps2.model.DType;

/**
 * The tensor element types a GGUF file may name, with their block layout (values per block, bytes per
 * block). Only some map to a {@link DType} this system computes with; the others are known by name so
 * that refusing them gives a clear message.
 */
public enum GgmlType {
    F32(0, 1, 4, DType.F32),
    F16(1, 1, 2, DType.F16),
    Q4_0(2, 32, 18, null),
    Q4_1(3, 32, 20, null),
    Q5_0(6, 32, 22, null),
    Q5_1(7, 32, 24, null),
    Q8_0(8, 32, 34, DType.Q8_0),
    Q8_1(9, 32, 36, null),
    Q2_K(10, 256, 84, null),
    Q3_K(11, 256, 110, null),
    Q4_K(12, 256, 144, null),
    Q5_K(13, 256, 176, null),
    Q6_K(14, 256, 210, null),
    Q8_K(15, 256, 292, null),
    IQ2_XXS(16, 256, 66, null),
    IQ2_XS(17, 256, 74, null),
    IQ3_XXS(18, 256, 98, null),
    IQ1_S(19, 256, 50, null),
    IQ4_NL(20, 32, 18, null),
    IQ3_S(21, 256, 110, null),
    IQ2_S(22, 256, 82, null),
    IQ4_XS(23, 256, 136, null),
    I8(24, 1, 1, null),
    I16(25, 1, 2, null),
    I32(26, 1, 4, DType.I32),
    I64(27, 1, 8, null),
    F64(28, 1, 8, null),
    IQ1_M(29, 256, 56, null),
    BF16(30, 1, 2, DType.BF16);

    private final int id;
    private final int blockValues;
    private final int blockBytes;
    private final DType dtype;

    GgmlType(int id, int blockValues, int blockBytes, DType dtype) {
        this.id = id;
        this.blockValues = blockValues;
        this.blockBytes = blockBytes;
        this.dtype = dtype;
    }

    public int id() {
        return id;
    }

    /** The element type this system computes with, or null when the type is not supported. */
    public DType dtype() {
        return dtype;
    }

    /** Values per quantization block (1 for plain types). */
    public int blockValues() {
        return blockValues;
    }

    /** Bytes taken by {@code n} values; -1 when n is not a whole number of blocks. */
    public long byteSize(long n) {
        return n % blockValues != 0 ? -1 : n / blockValues * blockBytes;
    }

    /** The type with the given GGUF id, or null when the id is unknown. */
    public static GgmlType byId(int id) {
        for (GgmlType t : values()) {
            if (t.id == id) {
                return t;
            }
        }
        return null;
    }
}
