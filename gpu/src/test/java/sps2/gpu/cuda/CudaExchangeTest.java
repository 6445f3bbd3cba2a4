package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import sps2.gpu.PendingRead;
import sps2.gpu.Tensor;
import sps2.gpu.WireType;
import sps2.model.HostTensor;

/**
 * The exchange copies of the CUDA backend: bf16 and float32 rows through page-locked buffers, gathered on the
 * device and copied on a copy stream. Payloads are compared byte for byte with what was written. Skipped
 * without a GPU.
 */
class CudaExchangeTest extends CudaTestBase {

    @AfterAll
    static void close() {
        if (be != null) {
            be.close();
        }
    }

    /** Random finite values as a payload of {@code type}. */
    private byte[] payload(WireType type, int count) {
        byte[] b = new byte[count * type.bytes()];
        for (int i = 0; i < count; i++) {
            type.put(b, 0, i, (float) (rnd.nextGaussian() * 3));
        }
        return b;
    }

    private Tensor tensor(WireType type, int rows, int cols, byte[] values) {
        Tensor t = type == WireType.BF16 ? be.allocate(rows, cols) : be.allocateFloat(rows, cols);
        be.write(t, 0, type, values, 0, rows);
        return t;
    }

    /** The pieces of each source's bytes, one source after another: what readAsync must deliver. */
    private static byte[] gather(byte[][] sources, int pieceBytes, int[] pieces) {
        byte[] out = new byte[sources.length * pieces.length * pieceBytes];
        int at = 0;
        for (byte[] s : sources) {
            for (int p : pieces) {
                System.arraycopy(s, p * pieceBytes, out, at, pieceBytes);
                at += pieceBytes;
            }
        }
        return out;
    }

    private int[] randomPieces(int count, int of) {
        int[] p = new int[count];
        for (int i = 0; i < count; i++) {
            p[i] = rnd.nextInt(of);
        }
        return p;
    }

    @Test
    void asyncReadsReturnTheExactBytesOfSelectedPieces() {
        // K/V shaped: [n, 8 heads * 64] bf16, pieces of one head (128 bytes: 16-byte words), and narrower pieces
        // that take the 8-, 4- and 2-byte gathers; float32 as lse is; a contiguous run (device-to-device path).
        int n = 1000;
        for (int[] shape : new int[][] {{512, 64}, {512, 4}, {512, 2}, {512, 1}, {96, 3}}) {
            for (WireType type : WireType.values()) {
                int cols = shape[0], width = shape[1];
                byte[] k = payload(type, n * cols);
                byte[] v = payload(type, n * cols);
                try (Tensor kt = tensor(type, n, cols, k); Tensor vt = tensor(type, n, cols, v)) {
                    assertEquals(type, be.wireType(kt));
                    int of = n * cols / width;
                    int start = rnd.nextInt(of / 2);
                    int[] run = new int[of / 3];
                    for (int i = 0; i < run.length; i++) {
                        run[i] = start + i;
                    }
                    for (int[] pieces : new int[][] {randomPieces(777, of), run, {of - 1}, {}}) {
                        PendingRead r = be.readAsync(new Tensor[] {kt, vt}, width, pieces);
                        assertEquals(type, r.type());
                        byte[] want = gather(new byte[][] {k, v}, width * type.bytes(), pieces);
                        assertEquals(want.length, r.bytes());
                        byte[] got = new byte[want.length + 5];
                        r.awaitInto(got, 5);
                        assertArrayEquals(want, java.util.Arrays.copyOfRange(got, 5, got.length),
                                type + " pieces of width " + width + " in rows of " + cols + " (" + pieces.length + " pieces)");
                    }
                }
            }
        }
        assertTrue(be.pinnedBytes() > 0);
    }

    @Test
    void aReadSeesTheWorkBeforeItAndNotAfterAndRunsBesideLaterKernels() {
        int rows = 2048, cols = 512;
        byte[] x = payload(WireType.BF16, rows * cols);
        byte[] y = payload(WireType.BF16, rows * cols);
        int[] pieces = randomPieces(4000, rows * cols / 64);
        try (Tensor a = tensor(WireType.BF16, rows, cols, x); Tensor ySrc = tensor(WireType.BF16, rows, cols, y);
                Tensor big = be.allocate(8192, 4096); Tensor w = be.allocate(4096, 4096); Tensor out = be.allocate(8192, 4096)) {
            be.fill(big, 0.01f);
            be.fill(w, 0.02f);
            be.readAsync(new Tensor[] {a}, 64, pieces).close(); // warm: the gather kernel, the buffers
            be.sync();
            for (int rep = 0; rep < 3; rep++) {
                for (int i = 0; i < 4; i++) {
                    be.matmul(out, big, w, 8192);
                }
                be.copyRows(a, 0, ySrc, 0, rows); // the last write before the read: the read must see y
                long t0 = System.nanoTime();
                PendingRead r = be.readAsync(new Tensor[] {a}, 64, pieces);
                // work queued after the read: must neither change what it returns nor hold it back
                be.write(a, 0, WireType.BF16, x, 0, rows);
                be.fill(a, Float.NaN);
                for (int i = 0; i < 24; i++) {
                    be.matmul(out, big, w, 8192);
                }
                byte[] got = r.await();
                long awaited = System.nanoTime() - t0;
                be.sync();
                long drained = System.nanoTime() - t0;
                assertArrayEquals(gather(new byte[][] {y}, 128, pieces), got);
                // 24 products of 8192x4096x4096 take tens of ms; the 512 KB copy needs well under one
                assertTrue(awaited < drained / 2, "the read waited " + awaited / 1e6 + " ms of " + drained / 1e6
                        + " ms of later work: it did not overlap with the kernels issued after it");
                System.out.printf("exchange read beside later kernels: awaited %.2f ms, later work drained at %.2f ms%n", awaited / 1e6,
                        drained / 1e6);
            }
        }
    }

    @Test
    void stagedWritesLandIntactWhileManyAreQueuedBehindAKernel() {
        int rows = 64, cols = 4096;
        byte[][] parts = new byte[rows][];
        try (Tensor t = be.allocate(rows, cols); Tensor big = be.allocate(8192, 4096); Tensor w = be.allocate(4096, 4096);
                Tensor out = be.allocate(8192, 4096)) {
            be.fill(big, 0.01f);
            be.fill(w, 0.02f);
            for (int i = 0; i < 8; i++) {
                be.matmul(out, big, w, 8192);
            }
            // more queued copies than the pool keeps busy buffers per size class, one source array reused
            byte[] src = new byte[cols * 2];
            for (int r = 0; r < rows; r++) {
                parts[r] = payload(WireType.BF16, cols);
                System.arraycopy(parts[r], 0, src, 0, src.length);
                be.write(t, r, WireType.BF16, src, 0, 1);
                java.util.Arrays.fill(src, (byte) 0x7f);
            }
            byte[] got = be.readAsync(new Tensor[] {t}, cols, new int[] {0}).await();
            byte[] all = be.readAsync(new Tensor[] {t}, cols * rows, new int[] {0}).await();
            assertArrayEquals(parts[0], got);
            for (int r = 0; r < rows; r++) {
                assertArrayEquals(parts[r], java.util.Arrays.copyOfRange(all, r * cols * 2, (r + 1) * cols * 2), "row " + r);
            }
        }
    }

    @Test
    void writesConvertBetweenWireAndTensorTypes() {
        int rows = 5, cols = 40;
        float[] x = new float[rows * cols];
        byte[] f32 = new byte[x.length * 4];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) rnd.nextGaussian();
            WireType.F32.put(f32, 0, i, x[i]);
        }
        byte[] bf16 = payload(WireType.BF16, rows * cols);
        try (Tensor b = be.allocate(rows, cols); Tensor f = be.allocateFloat(rows, cols)) {
            be.write(b, 0, WireType.F32, f32, 0, rows);
            be.write(f, 0, WireType.BF16, bf16, 0, rows);
            float[] gotB = new float[x.length];
            float[] gotF = new float[x.length];
            be.read(b, 0, gotB, 0, rows);
            be.read(f, 0, gotF, 0, rows);
            for (int i = 0; i < x.length; i++) {
                assertEquals(Float.intBitsToFloat((HostTensor.toBf16(x[i]) & 0xffff) << 16), gotB[i]);
                assertEquals(WireType.BF16.get(bf16, 0, i), gotF[i]);
            }
        }
    }
}
