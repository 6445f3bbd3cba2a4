package sps2.model;

/** Element types of stored tensors. Q8_0 is GGUF's block format: 32 int8 values sharing one f16 scale. */
public enum DType {
    F32(4), F16(2), BF16(2), Q8_0(-1), I32(4);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes taken by {@code n} elements of this type. */
    public long byteSize(long n) {
        if (this == Q8_0) {
            if (n % 32 != 0) {
                throw new IllegalArgumentException("Q8_0 tensors hold a multiple of 32 values, got " + n);
            }
            return n / 32 * 34;
        }
        return n * bytes;
    }
}
