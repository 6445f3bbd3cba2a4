package sps2.gpu.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * Plans a product out[m, n] = x[m, k] * w[n, k]^T on the GEMM kernels: which kernel, its grid and its split-K,
 * from the product's shape and what the device offers ({@link Device}). Pure: no JCuda, nothing on a device, so
 * every choice is unit-tested without a GPU (GemmPlannerTest); {@link CudaBackend#matmul} launches the plan.
 */
final class GemmPlanner {
    /** wgmma kernels (sm_90a module), used only where that module loads and passes the start-up check. */
    static final List<GemmKernel> WGMMAS = List.of(
            new GemmKernel("wgmma_128x256", 128, 256, 256, 4 * (128 + 256) * 128),
            new GemmKernel("wgmma_128x128", 128, 128, 256, 5 * (128 + 128) * 128));

    /**
     * The 128x256 wgmma tile with K split over a cluster of two blocks that sum through distributed shared
     * memory: for prefill products with too few tiles to fill the SMs (M=4096, 2048->512: 64 tiles).
     */
    static final GemmKernel WGMMA_PAIR = new GemmKernel("wgmma_128x256_pair", 128, 256, 256, 4 * (128 + 256) * 128);

    /**
     * wgmma kernels that are checked at start-up like the others, each dropped alone if it fails, and used only
     * where chosen by name or by a rule: {@link #WGMMA_PAIR} for products with few tiles. Variants under
     * measurement go here too, so that the tests and the benchmark cover them.
     */
    static final GemmKernel WGMMA_TMA = new GemmKernel("wgmma_tma_128x256", 128, 256, 384, 4 * (128 + 256) * 128 + 64);
    static final GemmKernel WGMMA_TMA_PAIR = new GemmKernel("wgmma_tma_128x256_pair", 128, 256, 384, 4 * (128 + 256) * 128 + 64);
    static final List<GemmKernel> WGMMA_OPTIONAL = List.of(WGMMA_PAIR, WGMMA_TMA, WGMMA_TMA_PAIR);

    /** The portable mma.sync kernels (gemm.cu), on every device. */
    static final List<GemmKernel> GEMMS = List.of(
            new GemmKernel("gemm_128x256", 128, 256, 256, 3 * (128 + 256) * 128),
            new GemmKernel("gemm_256x128", 256, 128, 256, 3 * (256 + 128) * 128),
            new GemmKernel("gemm_128x128", 128, 128, 256, 4 * (128 + 128) * 128),
            new GemmKernel("gemm_64x128", 64, 128, 256, 4 * (64 + 128) * 128),
            new GemmKernel("gemm_64x64", 64, 64, 128, 4 * (64 + 64) * 128),
            new GemmKernel("gemm_32x64", 32, 64, 128, 4 * (32 + 64) * 128));

    /**
     * Small tiles for decode-sized products of a batch-invariant device (8 stages: 28 KB of weights in flight per
     * warp instead of the split-K or GEMV that other devices use there).
     */
    static final List<GemmKernel> INVARIANT_TILES = List.of(
            new GemmKernel("gemm_16x16", 16, 16, 32, 8 * (16 + 16) * 128),
            new GemmKernel("gemm_16x32", 16, 32, 64, 8 * (16 + 32) * 128));

    private static final Map<String, GemmKernel> BY_NAME = Stream.of(GEMMS, INVARIANT_TILES, WGMMAS, WGMMA_OPTIONAL).flatMap(List::stream)
            .collect(Collectors.toUnmodifiableMap(GemmKernel::name, g -> g));

    /**
     * The device as the planner sees it: its multiprocessors, whether the wgmma kernels are in use, the
     * {@link #WGMMA_OPTIONAL} kernels that passed the start-up check, and whether products must be batch-invariant.
     */
    record Device(int multiprocessors, boolean hopper, List<GemmKernel> optional, boolean batchInvariant) {
        Device {
            optional = List.copyOf(optional);
        }

        Device(int multiprocessors, boolean hopper, List<GemmKernel> optional) {
            this(multiprocessors, hopper, optional, false);
        }

        /** This device planning batch-invariant products ({@link GemmPlanner#invariantGemm}). */
        Device invariant(boolean on) {
            return new Device(multiprocessors, hopper, optional, on);
        }

        /** A device with only the portable kernels. */
        static Device portable(int multiprocessors) {
            return new Device(multiprocessors, false, List.of());
        }
    }

    /**
     * A product out[m, n] = x[m, k] * w[n, k]^T. {@code tensorCores}: x is bfloat16 and k % 8 == 0 (the tensor-core
     * kernels need both). {@code kernel} forces a kernel: a {@link #GEMMS} (or wgmma) name, "gemv", "simple", or null
     * for the planner's choice; {@code splits} > 0 forces split-K on a tile kernel, 0 lets the planner choose.
     */
    record Product(int m, int n, int k, boolean tensorCores, String kernel, int splits) {
        /** The planner's choice of kernel and split-K. */
        static Product of(int m, int n, int k, boolean tensorCores) {
            return new Product(m, n, k, tensorCores, null, 0);
        }
    }

    /** How a plan is launched (its kernel arguments differ). */
    enum Form {
        /** gemm_simple: any activations and K; grid [ceil(n / 128), m], 128 threads. */
        SIMPLE,
        /** gemv_1/2/4/8 for m <= 8 rows (rounded up to a power of two); grid [ceil(n / 8)], 256 threads. */
        GEMV,
        /** A TMA wgmma tile: x and w as tensor maps; gz = 1, or 2 blocks per tile (a _pair cluster), each gz-th of K. */
        TMA,
        /** wgmma_128x256_pair: a cluster of gz = 2 blocks per tile, each half of K. */
        PAIR,
        /** A tile kernel over gz K-slices: gz = 1 writes out, gz > 1 float32 partial sums [gz, m * n] that splitk_reduce adds. */
        TILED
    }

    /**
     * One product's launch: {@code function} on the grid [gx, gy, gz] of {@code threads} threads with {@code smem}
     * dynamic shared bytes. {@code tile}: the tile kernel (null for SIMPLE and GEMV); {@code kTilesPerBlock}: the
     * 64-wide K tiles each block sums, the tile kernels' last argument (0 for SIMPLE and GEMV).
     */
    record Plan(Form form, String function, GemmKernel tile, int gx, int gy, int gz, int threads, int smem, int kTilesPerBlock) {
        /** K-slices summed by splitk_reduce (TILED with gz > 1), or 1. */
        int splits() {
            return form == Form.TILED ? gz : 1;
        }
    }

    private final Device device;

    GemmPlanner(Device device) {
        this.device = device;
    }

    Device device() {
        return device;
    }

    /**
     * The launch for {@code p}: the forced kernel, or "simple" without tensor cores, "gemv" for at most 8 rows, and
     * else {@link #chooseGemm} with {@link #chooseSplits}. Raises IllegalArgumentException for a forced kernel that
     * cannot run the product.
     */
    Plan plan(Product p) {
        int m = p.m(), n = p.n(), k = p.k();
        String kernel = p.kernel();
        int splits = p.splits();
        if (kernel == null) {
            if (!p.tensorCores()) {
                kernel = "simple";
            } else if (device.batchInvariant()) {
                kernel = invariantGemm(m, n).name();
                splits = 1;
            } else if (m <= 8) {
                kernel = "gemv";
            } else {
                GemmKernel g = chooseGemm(m, n);
                kernel = g.name();
                if (splits == 0) {
                    splits = chooseSplits(g, m, n, k);
                }
            }
        }
        if (kernel.equals("simple")) {
            return new Plan(Form.SIMPLE, "gemm_simple", null, blocks(n, 128), m, 1, 128, 0, 0);
        }
        if (!p.tensorCores()) {
            throw new IllegalArgumentException("matmul: the " + kernel + " kernel needs bf16 activations and K % 8 == 0");
        }
        if (kernel.equals("gemv")) {
            if (m > 8) {
                throw new IllegalArgumentException("gemv takes at most 8 rows");
            }
            return new Plan(Form.GEMV, gemvName(m), null, blocks(n, 8), 1, 1, 256, 0, 0);
        }
        GemmKernel g = kernel(kernel);
        int kTiles = (k + 63) / 64;
        int gx = blocks(n, g.bn()), gy = blocks(m, g.bm());
        if (g.tma()) {
            int halves = g.pair() ? 2 : 1;
            return new Plan(Form.TMA, g.name(), g, gx, gy, halves, g.threads(), g.smem(), (kTiles + halves - 1) / halves);
        }
        if (g.pair()) {
            return new Plan(Form.PAIR, g.name(), g, gx, gy, 2, g.threads(), g.smem(), (kTiles + 1) / 2);
        }
        splits = Math.max(1, Math.min(splits, kTiles));
        int ktPer = (kTiles + splits - 1) / splits;
        splits = (kTiles + ktPer - 1) / ktPer; // no empty slice: 10 K tiles in 4 splits are 3 + 3 + 3 + 1
        return new Plan(Form.TILED, g.name(), g, gx, gy, splits, g.threads(), g.smem(), ktPer);
    }

    /** The GEMV kernel for m <= 8 rows: gemv_1, gemv_2, gemv_4 or gemv_8. */
    static String gemvName(int m) {
        return m <= 1 ? "gemv_1" : m <= 2 ? "gemv_2" : m <= 4 ? "gemv_4" : "gemv_8";
    }

    /**
     * Prefill-sized products: the tile with the least estimated time, counted as waves of blocks over the
     * multiprocessors times the tile area (larger tile first on ties). Decode-sized products (m <= 128):
     * small tiles plus split-K ({@link #chooseSplits}).
     */
    GemmKernel chooseGemm(int m, int n) {
        int smCount = device.multiprocessors();
        List<GemmKernel> optional = device.optional();
        boolean fewTiles = 2L * blocks(m, WGMMA_TMA.bm()) * blocks(n, WGMMA_TMA.bn()) <= smCount;
        if (m > 128 && optional.contains(WGMMA_TMA_PAIR) && fewTiles) {
            return WGMMA_TMA_PAIR; // too few 128x256 tiles to fill the SMs: two blocks per tile, each half of K
        }
        if (m > 128 && optional.contains(WGMMA_TMA)) {
            return WGMMA_TMA; // TMA loads and a producer warp: 71-93% of cuBLAS where the others reach 57-68% (notes v10)
        }
        if (m > 128 && optional.contains(WGMMA_PAIR) && 2L * blocks(m, WGMMA_PAIR.bm()) * blocks(n, WGMMA_PAIR.bn()) <= smCount) {
            return WGMMA_PAIR; // too few 128x256 tiles to fill the SMs: two blocks per tile, each half of K
        }
        if (m > 128) {
            List<GemmKernel> order = device.hopper() ? WGMMAS : List.of(GEMMS.get(0), GEMMS.get(2), GEMMS.get(3));
            GemmKernel best = null;
            double bestCost = Double.MAX_VALUE;
            for (GemmKernel g : order) {
                long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
                // Measured on the H100: a 128x128 tile runs about 1.25x slower per element than 128x256.
                double cost = (double) ((b + smCount - 1) / smCount) * g.bm() * g.bn() * (g.bm() * g.bn() < 32768 ? 1.25 : 1.0);
                if (cost < bestCost) {
                    best = g;
                    bestCost = cost;
                }
            }
            return best;
        }
        if (m > 64) {
            return device.hopper() ? WGMMAS.get(1) : GEMMS.get(3);
        }
        for (GemmKernel g : List.of(GEMMS.get(3), GEMMS.get(4))) {
            long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
            if (b >= smCount) {
                return g;
            }
        }
        return m <= 32 ? GEMMS.get(5) : GEMMS.get(4);
    }

    /**
     * The tile of a batch-invariant product: never split-K, a cluster pair or the GEMV, whose sums depend on the row
     * count. Every tensor-core tile kernel adds a row's K in the same order with the same instruction results (measured
     * on the H200 for every mma.sync and wgmma tile, any row count, operands either way: CudaInvarianceProbe), so the
     * tile may follow the shape: small tiles while few rows would leave multiprocessors idle, then the usual choice.
     */
    GemmKernel invariantGemm(int m, int n) {
        int smCount = device.multiprocessors();
        if (m <= 64 || (m <= 128 && (long) blocks(m, 64) * blocks(n, 64) < smCount)) {
            return (long) blocks(m, 16) * blocks(n, 32) >= smCount ? INVARIANT_TILES.get(1) : INVARIANT_TILES.get(0);
        }
        GemmKernel g = chooseGemm(m, n);
        if (g == WGMMA_TMA_PAIR) {
            return WGMMA_TMA;
        }
        return g.pair() ? WGMMAS.get(0) : g;
    }

    /** Split-K for skinny products that leave multiprocessors idle (decode batches against tall weights). */
    int chooseSplits(GemmKernel g, int m, int n, int k) {
        int smCount = device.multiprocessors();
        long b = (long) blocks(m, g.bm()) * blocks(n, g.bn());
        if (m > 128 || b >= smCount) {
            return 1;
        }
        int kTiles = (k + 63) / 64;
        // wgmma tiles: one wave of blocks; mma.sync tiles: about two (measured best on the H100).
        long target = g.hopper() ? smCount : 2L * smCount;
        int want = (int) Math.max(1, g.hopper() ? target / b : (target + b - 1) / b);
        return Math.max(1, Math.min(want, kTiles / 4));
    }

    /** The tensor-core GEMM kernels this device runs: the portable ones, and with wgmma also those that passed. */
    List<GemmKernel> kernels() {
        List<GemmKernel> all = new ArrayList<>(GEMMS);
        all.addAll(INVARIANT_TILES);
        if (device.hopper()) {
            all.addAll(WGMMAS);
            all.addAll(device.optional());
        }
        return all;
    }

    /** Whether the cluster split-K GEMM passed its start-up check (it is chosen for prefill products with few tiles). */
    boolean pairGemm() {
        return device.optional().contains(WGMMA_PAIR);
    }

    /** Every GEMM kernel by name ({@link #GEMMS}, {@link #WGMMAS}, {@link #WGMMA_OPTIONAL}). */
    static GemmKernel kernel(String name) {
        GemmKernel g = name == null ? null : BY_NAME.get(name);
        if (g == null) {
            throw new IllegalArgumentException("No GEMM kernel " + name);
        }
        return g;
    }

    /** ceil(total / per). */
    static int blocks(long total, int per) {
        return (int) ((total + per - 1) / per);
    }
}
