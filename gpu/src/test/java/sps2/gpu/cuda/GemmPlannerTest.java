package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sps2.gpu.cuda.GemmPlanner.GEMMS;
import static sps2.gpu.cuda.GemmPlanner.WGMMAS;
import static sps2.gpu.cuda.GemmPlanner.WGMMA_OPTIONAL;
import static sps2.gpu.cuda.GemmPlanner.WGMMA_PAIR;
import static sps2.gpu.cuda.GemmPlanner.WGMMA_TMA;
import static sps2.gpu.cuda.GemmPlanner.WGMMA_TMA_PAIR;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import sps2.gpu.cuda.GemmPlanner.Device;
import sps2.gpu.cuda.GemmPlanner.Form;
import sps2.gpu.cuda.GemmPlanner.Plan;
import sps2.gpu.cuda.GemmPlanner.Product;

/**
 * The GEMM planner without a GPU: the documented choices on an H100 (132 multiprocessors) and a portable device,
 * split-K, the forced kernels, and, over a sweep of shapes and devices, the same kernel, grid and split-K as the
 * choice CudaBackend made before the planner was split out of it ({@link Before}, kept verbatim).
 */
class GemmPlannerTest {
    private static final Device H100 = new Device(132, true, WGMMA_OPTIONAL);
    private static final Device H100_NO_TMA = new Device(132, true, List.of(WGMMA_PAIR));
    private static final Device PORTABLE = Device.portable(108);

    private static Plan plan(Device d, int m, int n, int k) {
        return new GemmPlanner(d).plan(Product.of(m, n, k, true));
    }

    @Test
    void prefillOnHopperUsesTheTmaKernelAndItsClusterPairForFewTiles() {
        // 4096 x 2048: 32 * 8 tiles of 128x256, plenty for 132 SMs
        Plan big = plan(H100, 4096, 2048, 2048);
        assertEquals(WGMMA_TMA, big.tile());
        assertEquals(Form.TMA, big.form());
        assertEquals(List.of(8, 32, 1, 384, WGMMA_TMA.smem(), 32), List.of(big.gx(), big.gy(), big.gz(), big.threads(), big.smem(),
                big.kTilesPerBlock()));
        // 1000 x 512: 8 * 2 tiles, two blocks each still fit one wave; K = 1032 is 17 tiles: 9 per half
        Plan few = plan(H100, 1000, 512, 1032);
        assertEquals(WGMMA_TMA_PAIR, few.tile());
        assertEquals(List.of(2, 8, 2, 9), List.of(few.gx(), few.gy(), few.gz(), few.kTilesPerBlock()));
        // Without the TMA kernels: the pointer cluster pair for M=4096, 2048->512 (64 tiles), the cost model otherwise
        Plan pair = plan(H100_NO_TMA, 4096, 512, 2048);
        assertEquals(Form.PAIR, pair.form());
        assertEquals(List.of(WGMMA_PAIR.name(), 2, 32, 2, 16), List.of(pair.function(), pair.gx(), pair.gy(), pair.gz(), pair.kTilesPerBlock()));
        assertEquals(WGMMAS.get(0), plan(H100_NO_TMA, 4096, 2048, 2048).tile());
        assertEquals(1, plan(H100_NO_TMA, 4096, 2048, 2048).splits());
    }

    @Test
    void portablePrefillTakesTheTileWithTheFewestWavesTimesArea() {
        // 4096 x 4096 on 108 SMs: 128x256 is 512 blocks (5 waves * 32768 = 163840); 128x128 1024 blocks (10 * 16384 * 1.25 = 204800)
        assertEquals(GEMMS.get(0), new GemmPlanner(PORTABLE).chooseGemm(4096, 4096));
        // 200 x 384: 128x256 is 4 blocks (1 wave, 32768); 128x128 6 (1, 20480); 64x128 12 (1, 10240): the smallest tile
        assertEquals(GEMMS.get(3), new GemmPlanner(PORTABLE).chooseGemm(200, 384));
        // 100 rows: 64x128 (128x128 wgmma on Hopper)
        assertEquals(GEMMS.get(3), new GemmPlanner(PORTABLE).chooseGemm(100, 4096));
        assertEquals(WGMMAS.get(1), new GemmPlanner(H100).chooseGemm(100, 4096));
    }

    @Test
    void skinnyProductsSplitKToFillTheMultiprocessors() {
        // 16 x 4096 x 4096 on 132 SMs: 64x64 tiles give 64 blocks, too few: the 32x64 tile; two waves of 264 blocks want
        // ceil(264 / 64) = 5 K-slices of ceil(64 / 5) = 13 K tiles
        Plan p = plan(Device.portable(132), 16, 4096, 4096);
        assertEquals(GEMMS.get(5), p.tile());
        assertEquals(Form.TILED, p.form());
        assertEquals(List.of(64, 1, 5, 13), List.of(p.gx(), p.gy(), p.gz(), p.kTilesPerBlock()));
        assertEquals(5, p.splits());
        // wgmma tiles aim at one wave: 100 x 4096 on the 128x128 wgmma tile is 32 blocks, 132 / 32 = 4 slices
        Plan h = plan(H100, 100, 4096, 4096);
        assertEquals(List.of(WGMMAS.get(1), 4, 16), List.of(h.tile(), h.gz(), h.kTilesPerBlock()));
        // a short K caps the split at a quarter of its tiles: K = 512 is 8 tiles, 2 slices
        assertEquals(2, plan(Device.portable(132), 16, 4096, 512).splits());
        // enough blocks: no split
        assertEquals(1, new GemmPlanner(H100).chooseSplits(GEMMS.get(4), 64, 16384, 4096));
    }

    @Test
    void forcedSplitsLeaveNoEmptySlice() {
        GemmPlanner planner = new GemmPlanner(PORTABLE);
        // K = 640 is 10 K tiles: 4 splits are 3 + 3 + 3 + 1; 7 splits would be 2 * 5, so 5
        Plan four = planner.plan(new Product(33, 264, 640, true, "gemm_64x64", 4));
        assertEquals(List.of(4, 3, 5, 1), List.of(four.gz(), four.kTilesPerBlock(), four.gx(), four.gy()));
        Plan seven = planner.plan(new Product(33, 264, 640, true, "gemm_64x64", 7));
        assertEquals(List.of(5, 2), List.of(seven.gz(), seven.kTilesPerBlock()));
        // more splits than K tiles: one per tile
        assertEquals(10, planner.plan(new Product(33, 264, 640, true, "gemm_64x64", 99)).splits());
        // a forced kernel with splits 0 runs unsplit (the planner's split-K is for its own choice only)
        assertEquals(1, planner.plan(new Product(33, 264, 4096, true, "gemm_32x64", 0)).splits());
    }

    @Test
    void decodeRowsUseGemvAndOtherActivationsTheSimpleKernel() {
        for (int m = 1; m <= 8; m++) {
            Plan p = plan(H100, m, 4096, 4096);
            assertEquals(Form.GEMV, p.form());
            assertEquals("gemv_" + (m <= 1 ? 1 : m <= 2 ? 2 : m <= 4 ? 4 : 8), p.function());
            assertEquals(List.of(512, 1, 1, 256, 0), List.of(p.gx(), p.gy(), p.gz(), p.threads(), p.smem()));
            assertNull(p.tile());
        }
        // float32 activations or K % 8 != 0: gemm_simple, one block row per input row
        Plan s = new GemmPlanner(H100).plan(Product.of(300, 1000, 4096, false));
        assertEquals(Form.SIMPLE, s.form());
        assertEquals(List.of("gemm_simple", 8, 300, 1, 128, 0), List.of(s.function(), s.gx(), s.gy(), s.gz(), s.threads(), s.smem()));
    }

    @Test
    void forcedKernelsThatCannotRunTheProductAreRefused() {
        GemmPlanner planner = new GemmPlanner(H100);
        IllegalArgumentException tc = assertThrows(IllegalArgumentException.class,
                () -> planner.plan(new Product(64, 64, 60, false, "gemm_64x64", 1)));
        assertEquals("matmul: the gemm_64x64 kernel needs bf16 activations and K % 8 == 0", tc.getMessage());
        assertThrows(IllegalArgumentException.class, () -> planner.plan(new Product(9, 64, 64, true, "gemv", 0)));
        assertThrows(IllegalArgumentException.class, () -> planner.plan(new Product(64, 64, 64, true, "gemm_1x1", 1)));
        assertEquals(Form.SIMPLE, planner.plan(new Product(7, 33, 31, false, "simple", 0)).form());
    }

    @Test
    void batchInvariantPlansNeverSplitKOrUseTheGemvForAnyShape() {
        Device hopper = new Device(132, true, List.of(WGMMA_PAIR, WGMMA_TMA, WGMMA_TMA_PAIR), true);
        Device portable = Device.portable(132).invariant(true);
        for (Device d : List.of(hopper, portable)) {
            GemmPlanner planner = new GemmPlanner(d);
            for (int m : new int[] {1, 2, 7, 8, 9, 16, 17, 32, 64, 100, 128, 129, 512, 4096, 32768}) {
                for (int n : new int[] {512, 2048, 3072, 8192, 128256}) {
                    for (int k : new int[] {64, 2048, 8192}) {
                        Plan p = planner.plan(Product.of(m, n, k, true));
                        String what = m + "x" + n + "x" + k + " on " + d;
                        assertEquals(1, p.gz(), what + ": one block per tile over all of K");
                        assertTrue(p.form() == Form.TILED || p.form() == Form.TMA, what + ": a tile kernel, not " + p.form());
                        assertTrue(!p.tile().pair(), what + ": no cluster pair");
                        assertEquals((k + 63) / 64, p.kTilesPerBlock(), what + ": every K tile in the one block");
                    }
                }
            }
        }
        assertEquals("gemm_16x16", new GemmPlanner(hopper).plan(Product.of(1, 2048, 2048, true)).function());
        assertEquals("gemm_16x32", new GemmPlanner(hopper).plan(Product.of(1, 128256, 2048, true)).function());
        assertEquals(Form.TMA, new GemmPlanner(hopper).plan(Product.of(4096, 2048, 2048, true)).form());
    }

    @Test
    void theKernelListFollowsTheDevice() {
        List<GemmKernel> portable = new ArrayList<>(GEMMS);
        portable.addAll(GemmPlanner.INVARIANT_TILES);
        assertEquals(portable, new GemmPlanner(PORTABLE).kernels());
        List<GemmKernel> hopper = new ArrayList<>(portable);
        hopper.addAll(WGMMAS);
        hopper.addAll(List.of(WGMMA_TMA));
        assertEquals(hopper, new GemmPlanner(new Device(132, true, List.of(WGMMA_TMA))).kernels());
        for (GemmKernel g : hopper) {
            assertEquals(g, GemmPlanner.kernel(g.name()));
        }
        List<GemmKernel> passed = new ArrayList<>(List.of(WGMMA_PAIR));
        Device d = new Device(132, true, passed);
        passed.add(WGMMA_TMA);
        assertEquals(List.of(WGMMA_PAIR), d.optional(), "the device record keeps its own copy");
        assertTrue(new GemmPlanner(d).pairGemm());
    }
}
