package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

import jcuda.driver.JCudaDriver;
import sps2.gpu.AttentionBatch;
import sps2.gpu.Fence;
import sps2.gpu.StepGraph;
import sps2.gpu.Tensor;
import sps2.gpu.TestArrays;

/**
 * What the shard engine's device hand-off relies on: a gather on the device, a fence recorded on one thread's
 * stream that another thread's stream waits for, peer copies between two GPUs (skipped with fewer), in-place
 * updates of a prepared attention batch, and recorded graphs that replay over refreshed inputs. Fresh random
 * inputs and poisoned outputs each run. Skipped without a GPU.
 */
class CudaHandoffTest extends CudaTestBase {

    private float[] random(int n) {
        return TestArrays.randn(rnd, n);
    }

    private static float bf16(float x) {
        return Float.intBitsToFloat((sps2.model.HostTensor.toBf16(x) & 0xffff) << 16);
    }

    @Test
    void gatherPicksThePiecesOnTheDevice() {
        int rows = 300;
        int width = 64;
        float[] v = random(rows * 2 * width);
        int[] pieces = new int[500];
        for (int i = 0; i < pieces.length; i++) {
            pieces[i] = rnd.nextInt(rows * 2);
        }
        try (Tensor src = be.allocate(rows, 2 * width)) {
            be.write(src, 0, v, 0, rows);
            try (Tensor g = be.gather(src, width, pieces)) {
                assertEquals(pieces.length, g.rows());
                float[] got = new float[pieces.length * width];
                be.read(g, 0, got, 0, pieces.length);
                for (int i = 0; i < pieces.length; i++) {
                    for (int e = 0; e < width; e++) {
                        assertEquals(bf16(v[pieces[i] * width + e]), got[i * width + e], "piece " + i);
                    }
                }
            }
        }
    }

    /** A reader thread that waits on the writer's fence sees the writer's last kernel's result, never the poison before it. */
    @Test
    void aFenceOrdersAnotherThreadsReadsAfterTheWrites() throws Exception {
        int n = 4096;
        int width = 1024;
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try (Tensor t = be.allocateFloat(n, width)) {
            for (int round = 0; round < 5; round++) {
                float value = rnd.nextFloat() + 1;
                CompletableFuture<Fence> written = CompletableFuture.supplyAsync(() -> {
                    be.fill(t, Float.NaN);
                    for (int i = 0; i < 20; i++) { // long enough that an unordered read would see the NaN
                        be.fill(t, i == 19 ? value : Float.NaN);
                    }
                    return be.fence();
                }, pool);
                float[] row = pool.submit(() -> {
                    Fence f = written.get();
                    be.await(f);
                    float[] out = new float[width];
                    try (Tensor copy = be.allocateFloat(n, width)) {
                        be.copyRows(copy, 0, t, 0, n);
                        be.read(copy, n - 1, out, 0, 1);
                    }
                    f.release();
                    return out;
                }).get(60, TimeUnit.SECONDS);
                for (float x : row) {
                    assertEquals(value, x);
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aPeerCopyBetweenTwoGpusKeepsEveryValue() {
        int[] count = {0};
        JCudaDriver.cuDeviceGetCount(count);
        assumeTrue(count[0] >= 2, "Only " + count[0] + " GPU here: the peer copy test needs two, skipping");
        try (CudaBackend other = new CudaBackend(1)) {
            int rows = 1000;
            int cols = 512;
            float[] v = random(rows * cols);
            try (Tensor src = be.allocate(rows, cols)) {
                be.write(src, 0, v, 0, rows);
                Fence f = be.fence();
                other.await(f);
                assertTrue(!other.holds(src) && be.holds(src));
                try (Tensor copy = other.copyFrom(src)) {
                    float[] got = new float[rows * cols];
                    other.read(copy, 0, got, 0, rows);
                    for (int i = 0; i < got.length; i++) {
                        assertEquals(bf16(v[i]), got[i]);
                    }
                }
                f.release();
            }
        }
    }

    @Test
    void aPreparedBatchOfTheSameShapeIsRewrittenInPlace() {
        int[][] tables = {{3, 4}, {5, 6}};
        AttentionBatch a = new AttentionBatch(new int[] {0, 1}, new int[] {1, 1}, new int[] {20, 5}, tables, 32);
        AttentionBatch b = new AttentionBatch(new int[] {0, 1}, new int[] {1, 1}, new int[] {7, 0}, new int[][] {{9, 8}, {0, 0}}, 32);
        AttentionBatch c = new AttentionBatch(new int[] {0}, new int[] {1}, new int[] {7}, new int[][] {{9}}, 16);
        AttentionBatch.Prepared p = be.prepare(a);
        AttentionBatch.Prepared q = be.prepare(b, p);
        assertTrue(q == p, "same shape: the same device arrays");
        assertEquals(b, q.batch());
        AttentionBatch.Prepared r = be.prepare(c, q);
        assertNotSame(q, r);
        r.close();
    }

    /** A recorded graph replays its kernels over whatever its input tensors hold at replay time. */
    @Test
    void aRecordedGraphReplaysOverRefreshedInputs() {
        int n = 64;
        int dim = 256;
        try (Tensor table = be.allocate(n, dim); Tensor ids = be.upload(new int[4]); Tensor out = be.allocate(4, dim)) {
            float[] t = random(n * dim);
            be.write(table, 0, t, 0, n);
            Runnable work = () -> be.embed(out, table, ids, 4);
            work.run();
            try (StepGraph g = be.capture(work)) {
                assertTrue(g != null);
                for (int round = 0; round < 3; round++) {
                    int[] pick = {rnd.nextInt(n), rnd.nextInt(n), rnd.nextInt(n), rnd.nextInt(n)};
                    be.writeInts(ids, pick);
                    be.fill(out, Float.NaN);
                    g.replay();
                    float[] got = new float[4 * dim];
                    be.read(out, 0, got, 0, 4);
                    float[] want = new float[4 * dim];
                    for (int i = 0; i < 4; i++) {
                        for (int e = 0; e < dim; e++) {
                            want[i * dim + e] = bf16(t[pick[i] * dim + e]);
                        }
                    }
                    assertArrayEquals(want, got, "round " + round);
                }
            }
        }
    }
}
