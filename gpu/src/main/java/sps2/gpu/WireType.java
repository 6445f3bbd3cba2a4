package sps2.gpu;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import sps2.model.HostTensor;

/**
 * The element type of rows exchanged between shards (prefill K/V, decode partial attention). Every payload
 * carries its type, so that a backend can send what its device holds without widening it: bfloat16 for the
 * CUDA backend's activations and KV (lossless, half the bytes of float32), float32 for the CPU backend and
 * for log-sum-exp values everywhere. Payloads are little-endian.
 */
public enum WireType {
    /** IEEE float32, 4 bytes. */
    F32(1, 4),
    /** bfloat16 (the upper half of a float32), 2 bytes. */
    BF16(2, 2);

    private static final VarHandle FLOAT = MethodHandles.byteArrayViewVarHandle(float[].class, ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle SHORT = MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);

    private final int code;
    private final int bytes;

    WireType(int code, int bytes) {
        this.code = code;
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** The tag written into messages (never 0, so that an unset tag is caught). */
    public int code() {
        return code;
    }

    /** The type of a tag written by {@link #code()}. */
    public static WireType of(int code) {
        for (WireType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        throw new IllegalArgumentException("A payload carries the unknown element type tag " + code + " (known: 1 = float32, 2 = bfloat16)");
    }

    /** Element {@code i} of a payload in this type that starts at byte {@code offset}. */
    public float get(byte[] src, int offset, int i) {
        return this == F32 ? (float) FLOAT.get(src, offset + 4 * i) : Float.intBitsToFloat(((short) SHORT.get(src, offset + 2 * i) & 0xffff) << 16);
    }

    /** Stores {@code v} as element {@code i} of a payload in this type (bfloat16 rounds to nearest even). */
    public void put(byte[] dst, int offset, int i, float v) {
        if (this == F32) {
            FLOAT.set(dst, offset + 4 * i, v);
        } else {
            SHORT.set(dst, offset + 2 * i, HostTensor.toBf16(v));
        }
    }

    /** Copies {@code count} elements between payloads, converting where the types differ. */
    public static void copy(WireType from, byte[] src, int srcOffset, WireType to, byte[] dst, int dstOffset, int count) {
        if (from == to) {
            System.arraycopy(src, srcOffset, dst, dstOffset, count * from.bytes);
            return;
        }
        for (int i = 0; i < count; i++) {
            to.put(dst, dstOffset, i, from.get(src, srcOffset, i));
        }
    }

    /** Fills {@code count} elements of a payload with {@code v}. */
    public void fill(byte[] dst, int offset, int count, float v) {
        for (int i = 0; i < count; i++) {
            put(dst, offset, i, v);
        }
    }
}
