package sps2.gpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;

import org.junit.jupiter.api.Test;

import sps2.gpu.cpu.CpuBackend;
import sps2.model.HostTensor;

/** The exchange copies of the CPU backend (float32 on the wire) and the wire element types. */
class ExchangeCopyTest {
    private final SplittableRandom rnd = new SplittableRandom(7);

    private float[] random(int n) {
        return TestArrays.randn(rnd, n);
    }

    @Test
    void cpuReadGathersThePiecesOfEverySourceInOrderBitForBit() {
        int rows = 7, cols = 12, width = 4; // 3 pieces per row
        float[] k = random(rows * cols);
        float[] v = random(rows * cols);
        int[] pieces = {20, 0, 5, 5, 13};
        try (CpuBackend b = new CpuBackend(1); Tensor kt = b.allocate(rows, cols); Tensor vt = b.allocate(rows, cols)) {
            b.write(kt, 0, k, 0, rows);
            b.write(vt, 0, v, 0, rows);
            assertEquals(WireType.F32, b.wireType(kt));
            PendingRead r = b.readAsync(new Tensor[] {kt, vt}, width, pieces);
            // the copy holds the values as they were when it was made
            b.write(kt, 0, new float[rows * cols], 0, rows);
            assertEquals(WireType.F32, r.type());
            assertEquals(2 * pieces.length * width * 4, r.bytes());
            byte[] got = r.await();
            for (int s = 0; s < 2; s++) {
                float[] src = s == 0 ? k : v;
                for (int p = 0; p < pieces.length; p++) {
                    for (int e = 0; e < width; e++) {
                        int at = (s * pieces.length + p) * width + e;
                        assertEquals(Float.floatToRawIntBits(src[pieces[p] * width + e]), Float.floatToRawIntBits(WireType.F32.get(got, 0, at)));
                    }
                }
            }
            assertThrows(IllegalArgumentException.class, () -> b.readAsync(new Tensor[] {kt}, width, new int[] {21}));
        }
    }

    @Test
    void cpuWriteTakesEitherWireTypeAtAnOffset() {
        int rows = 3, cols = 5;
        float[] x = random(rows * cols);
        byte[] f32 = new byte[8 + rows * cols * 4];
        byte[] bf16 = new byte[6 + rows * cols * 2];
        for (int i = 0; i < x.length; i++) {
            WireType.F32.put(f32, 8, i, x[i]);
            WireType.BF16.put(bf16, 6, i, x[i]);
        }
        try (CpuBackend b = new CpuBackend(1); Tensor t = b.allocate(rows + 1, cols)) {
            float[] back = new float[rows * cols];
            b.write(t, 1, WireType.F32, f32, 8, rows);
            b.read(t, 1, back, 0, rows);
            assertArrayEquals(x, back);
            b.write(t, 1, WireType.BF16, bf16, 6, rows);
            b.read(t, 1, back, 0, rows);
            for (int i = 0; i < x.length; i++) {
                assertEquals(Float.intBitsToFloat((HostTensor.toBf16(x[i]) & 0xffff) << 16), back[i]);
                assertTrue(Math.abs(back[i] - x[i]) <= Math.abs(x[i]) / 128);
            }
        }
    }

    @Test
    void wireTypesRoundTripTheirTagsAndConvert() {
        for (WireType t : WireType.values()) {
            assertEquals(t, WireType.of(t.code()));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> WireType.of(0));
        assertTrue(e.getMessage().contains("unknown element type tag 0"), e.getMessage());
        float[] x = random(33);
        byte[] f32 = new byte[x.length * 4];
        for (int i = 0; i < x.length; i++) {
            WireType.F32.put(f32, 0, i, x[i]);
        }
        byte[] bf16 = new byte[2 + x.length * 2];
        WireType.copy(WireType.F32, f32, 0, WireType.BF16, bf16, 2, x.length);
        byte[] again = new byte[x.length * 4];
        WireType.copy(WireType.BF16, bf16, 2, WireType.F32, again, 0, x.length);
        for (int i = 0; i < x.length; i++) {
            float rounded = Float.intBitsToFloat((HostTensor.toBf16(x[i]) & 0xffff) << 16);
            assertEquals(rounded, WireType.BF16.get(bf16, 2, i));
            assertEquals(rounded, WireType.F32.get(again, 0, i));
        }
        WireType.F32.fill(f32, 0, 2, Float.NEGATIVE_INFINITY);
        assertEquals(Float.NEGATIVE_INFINITY, WireType.F32.get(f32, 0, 1));
        assertEquals(x[2], WireType.F32.get(f32, 0, 2));
    }
}
