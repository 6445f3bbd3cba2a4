package sps2.gpu.cuda;

import static sps2.gpu.cuda.CudaChecks.need;
import static sps2.gpu.cuda.CudaChecks.t;
import static sps2.gpu.cuda.GemmPlanner.blocks;

import java.util.List;
import java.util.Set;
import jcuda.driver.CUdeviceptr;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sps2.gpu.AttentionBatch;
import sps2.gpu.CompactKv;
import sps2.gpu.KvPool;
import sps2.gpu.Tensor;

/**
 * Attention of the CUDA backend (attention.cu): a prefill kernel (tiles of 16 * warps query rows) for head
 * sizes 64 and 128 with bfloat16 queries, and the row kernels (attn_rows_d*_g*, one block per query row and KV
 * head, split over the keys when too few blocks would fill the multiprocessors) for the rest.
 */
final class CudaAttention {
    private static final Logger LOG = LoggerFactory.getLogger(CudaAttention.class);

    /**
     * A prefill attention kernel: name suffix, warps (16 query rows each), K/V pipeline stages, whether it is a
     * Hopper kernel of attention_sm90a.cu (a producer warpgroup besides the warps, 128-key tiles) or one of
     * attention.cu (64-key tiles), and how many query heads of a KV head a block packs into its rows (1: a block per
     * query head; GQA packing: a block per KV head, only for models with that many query heads per KV head).
     */
    record PrefillKernel(String variant, int warps, int stages, boolean hopper, int pack) {
        PrefillKernel(String variant, int warps, int stages) {
            this(variant, warps, stages, false, 1);
        }

        PrefillKernel(String variant, int warps, int stages, boolean hopper) {
            this(variant, warps, stages, hopper, 1);
        }

        String name(int d) {
            return "attn_prefill_d" + d + "_" + variant;
        }

        /** Query rows of a block (its MMA rows). */
        int rows() {
            return 16 * warps;
        }

        /** Query positions of a tile (CudaPrepared's tile height): a block's rows hold {@link #pack} heads of each. */
        int tileRows() {
            return rows() / pack;
        }

        /** Whether it runs a model with these heads: a packing kernel needs exactly {@link #pack} query heads per KV head. */
        boolean suits(int nHeads, int nKvHeads) {
            return pack == 1 || nHeads == pack * nKvHeads;
        }

        int threads() {
            return 32 * warps + (hopper ? 128 : 0);
        }

        int smem(int d) {
            int keys = hopper ? 128 : 64;
            return (rows() * d + 2 * stages * keys * d) * 2 + (hopper ? 16 * stages : 0);
        }
    }

    /**
     * Every prefill kernel in attention.cu. Suffixes after the warps/stages part name the softmax variant
     * (docs/gpu-notes.md, v6): _sk skips key tiles wholly after a warp's rows, _rs1 / _rs8 rescale O only when a
     * row max moved / grew by more than 8 (log2), _poly makes every second exp on the FMA pipe, _bx2 makes two
     * exps per ex2.bf16x2 with the row sums on the tensor cores, _all = _rs8 + _bx2 + _sk.
     */
    static final List<PrefillKernel> PREFILLS = List.of(new PrefillKernel("w4", 4, 2), new PrefillKernel("w8", 8, 2),
            new PrefillKernel("w4_s3", 4, 3), new PrefillKernel("w8_s3", 8, 3), new PrefillKernel("w8_s4", 8, 4),
            new PrefillKernel("w8_sk", 8, 2), new PrefillKernel("w8_rs1", 8, 2), new PrefillKernel("w8_rs8", 8, 2),
            new PrefillKernel("w8_poly", 8, 2), new PrefillKernel("w8_bx2", 8, 2), new PrefillKernel("w8_all", 8, 2),
            new PrefillKernel("w4_all", 4, 2), new PrefillKernel("w8_s3_all", 8, 3), new PrefillKernel("w8_poly_all", 8, 2),
            new PrefillKernel("w8_s3_sk", 8, 3), new PrefillKernel("w8_s4_all", 8, 4));

    /**
     * The batch-invariant kernels (attention.cu, DET_KERNEL): det_w8 for sequences of at least
     * {@link CudaPrepared#TILE_MIN_ROWS} query rows, det_w1 (16-row tiles, one per sequence) for decode rows and short
     * chunks. Both take two more arguments (po, plse) for det_w1's segment-per-block form.
     */
    static final List<PrefillKernel> INVARIANT = List.of(new PrefillKernel("det_w8", 8, 2), new PrefillKernel("det_w1", 1, 2),
            new PrefillKernel("det_w8_lb1", 8, 2));

    /**
     * The Hopper prefill kernels (attention_sm90a.cu, head size 64): both products on wgmma, K/V loaded by a producer
     * warpgroup, two consumer warpgroups of 64 rows (c3: three, 192-row tiles, as FA3 at head size 64); wg2 / wg3: 2
     * or 3 K/V slots; the _p forms overlap each tile's softmax with the previous tile's P V product (FA3's
     * intra-warpgroup pipeline); the x forms make two exponentials per ex2.bf16x2 and rescale O only when a row max
     * grew by more than 8 (log2); the g4 forms pack the 4 query heads of a KV head into a block's rows (a block per KV
     * head and tile of 32 or 48 positions: every K/V tile loaded serves 4 heads). wg3 is the default where these
     * kernels load ({@link #HOPPER_DEFAULT}); the others are selected by name ({@link #prefillVariant(String)}, or the
     * system property sps2.cuda.prefillVariant). All are checked by CudaBackendTest#everyHopperPrefillVariantMatchesFloat64
     * and timed by CudaBench in a JVM of their own (a kernel that traps leaves the device context unusable for the
     * rest of the process); wg2, wg3, wg2p and wg3p passed that check on an H100 (session 8), the rest have not run yet.
     */
    static final List<PrefillKernel> HOPPER_PREFILLS = List.of(new PrefillKernel("wg2", 8, 2, true), new PrefillKernel("wg3", 8, 3, true),
            new PrefillKernel("wg2p", 8, 2, true), new PrefillKernel("wg3p", 8, 3, true), new PrefillKernel("wg3x", 8, 3, true),
            new PrefillKernel("wg2c3", 12, 2, true), new PrefillKernel("wg3c3", 12, 3, true), new PrefillKernel("wg2c3x", 12, 2, true),
            new PrefillKernel("wg3c3x", 12, 3, true), new PrefillKernel("wg3g4", 8, 3, true, 4), new PrefillKernel("wg3xg4", 8, 3, true, 4),
            new PrefillKernel("wg3c3xg4", 12, 3, true, 4));

    /** Keys per fixed segment of the batch-invariant kernels (DET_SEG in attention.cu). */
    static final int SEGMENT = 1024;

    /** Head size 128 has only these (head size 64 has every one of {@link #PREFILLS} and {@link #INVARIANT}). */
    private static final Set<String> PREFILLS_D128 = Set.of("w4", "w8", "w8_s3", "w8_all", "w4_all", "w8_s3_all", "det_w8", "det_w1");

    /** Whether attention.cu / attention_sm90a.cu build kernel {@code k} for head size {@code d}. */
    static boolean hasPrefill(int d, PrefillKernel k) {
        return d == 64 || (!k.hopper() && d == 128 && PREFILLS_D128.contains(k.variant()));
    }

    private final CudaBackend backend;
    private final CudaKernels kernels;
    private final int smCount;
    private final boolean batchInvariant;
    /** The det kernel for long sequences: det_w8, or det_w8_lb1 (one block per multiprocessor, no spills) to compare. */
    private volatile String invariantLong = "det_w8";
    private volatile boolean warnedNotInvariant;

    /**
     * The default prefill kernel where the Hopper kernels load: wg3, 1.30x w8_all's speed on an H100 at 8K and 32K
     * (67.4% and 64.6% of torch SDPA) and 1B prefill 32K in 380 ms against 437 (docs/gpu-notes.md, session 8).
     */
    static final String HOPPER_DEFAULT = "wg3";
    /**
     * The default elsewhere, and the fallback of a variant that a head size or a model's heads do not have: w8_all,
     * the fastest portable kernel on the H100 at 8K and 32K (session 2, notes v12: 53.5% and 51.3% of torch SDPA).
     */
    static final String PORTABLE_DEFAULT = "w8_all";

    /** The prefill kernel variant in use ({@link #PREFILLS}, {@link #HOPPER_PREFILLS}); the benchmark and tests switch it. */
    private volatile String prefillVariant;

    CudaAttention(CudaBackend backend, CudaKernels kernels, int smCount, boolean batchInvariant) {
        this.backend = backend;
        this.kernels = kernels;
        this.smCount = smCount;
        this.batchInvariant = batchInvariant;
        this.prefillVariant = System.getProperty("sps2.cuda.prefillVariant", loadedPrefill(64, HOPPER_DEFAULT) != null ? HOPPER_DEFAULT
                : PORTABLE_DEFAULT);
    }

    void invariantLong(String variant) {
        this.invariantLong = variant;
    }

    String prefillVariant() {
        return prefillVariant;
    }

    void prefillVariant(String variant) {
        this.prefillVariant = variant;
    }

    /**
     * The kernel of the variant in use for head size d and these heads. Where that variant is not built (or not
     * loaded) for d or does not suit the heads: its unpacked twin (a g4 kernel without "g4"), then
     * {@link #HOPPER_DEFAULT}, then {@link #PORTABLE_DEFAULT}, and w8 where even that is missing.
     */
    private PrefillKernel prefillKernel(int d, int nHeads, int nKvHeads) {
        Choice c = choice;
        if (c != null && c.is(prefillVariant, d, nHeads, nKvHeads)) {
            return c.kernel; // every layer of every step asks the same: resolved once
        }
        PrefillKernel chosen = PREFILLS.get(1);
        for (String v : fallbacks(prefillVariant)) {
            PrefillKernel k = usable(d, nHeads, nKvHeads, v);
            if (k != null) {
                chosen = k;
                break;
            }
        }
        choice = new Choice(prefillVariant, d, nHeads, nKvHeads, chosen);
        return chosen;
    }

    /** The last {@link #prefillKernel} resolution. */
    private volatile Choice choice;

    private record Choice(String variant, int d, int nHeads, int nKvHeads, PrefillKernel kernel) {
        boolean is(String v, int dd, int h, int kv) {
            return variant.equals(v) && d == dd && nHeads == h && nKvHeads == kv;
        }
    }

    /** {@code variant}, then what stands in for it where it does not run, in order (see {@link #prefillKernel}). */
    static List<String> fallbacks(String variant) {
        return List.of(variant, variant.replace("g4", ""), HOPPER_DEFAULT, PORTABLE_DEFAULT);
    }

    /** Whether {@code variant} itself (no fallback) runs head size d with these heads on this device. */
    boolean runs(int d, int nHeads, int nKvHeads, String variant) {
        return usable(d, nHeads, nKvHeads, variant) != null;
    }

    /** The kernel of {@code variant} if it is loaded for head size d and suits these heads, else null. */
    private PrefillKernel usable(int d, int nHeads, int nKvHeads, String variant) {
        PrefillKernel k = loadedPrefill(d, variant);
        return k != null && k.suits(nHeads, nKvHeads) ? k : null;
    }

    /** The kernel of {@code variant} for head size d, or null where it is not built for d or not loaded on this device. */
    PrefillKernel loadedPrefill(int d, String variant) {
        for (List<PrefillKernel> list : List.of(PREFILLS, HOPPER_PREFILLS)) {
            for (PrefillKernel k : list) {
                if (k.variant().equals(variant) && hasPrefill(d, k) && kernels.has(k.name(d))) {
                    return k;
                }
            }
        }
        return null;
    }

    /** Attention over the paged KV pool, for a batch that {@link CudaPrepared} laid out on the device. */
    void paged(Tensor out, Tensor lse, Tensor q, KvPool pool, int layer, AttentionBatch.Prepared batch, int nHeads, int nKvHeads,
            int headSize) {
        CudaKvPool p = backend.kv(pool);
        if (!(batch instanceof CudaPrepared b) || b.owner() != backend) {
            throw new IllegalArgumentException("The attention batch was prepared by another backend");
        }
        CudaTensor o = t(out), l = t(lse), qq = t(q);
        checkAttention(o, l, qq, nHeads, nKvHeads, headSize);
        need(p.kvDim() == nKvHeads * headSize, () -> "attention: the KV pool holds " + p.kvDim()
                + " values per slot, not nKvHeads * headSize");
        boolean fast = (headSize == 64 || headSize == 128) && qq.dtype() == CudaTensor.DType.BF16;
        if (fast && batchInvariant) {
            invariantPaged(o, l, qq, p, layer, b, nHeads, nKvHeads, headSize);
            return;
        }
        if (batchInvariant && !warnedNotInvariant) {
            warnedNotInvariant = true;
            LOG.warn("The batch-invariant attention kernels exist for head sizes 64 and 128 with bfloat16 queries only; head size {} "
                    + "uses the row kernel, so its tokens may depend on how requests were batched.", headSize);
        }
        PrefillKernel pk = prefillKernel(headSize, nHeads, nKvHeads);
        int kind = CudaPrepared.tileKind(pk.tileRows());
        if (fast && b.tiles(kind) > 0) {
            kernels.launch(pk.name(headSize), nHeads / pk.pack(), b.tiles(kind), 1, pk.threads(), pk.smem(headSize),
                    o.ptr(), o.dtype().code, l.ptr(), qq.ptr(), b.tSeq(kind), b.tQ0(kind), b.qStart(), b.qLen(), b.kvLen(), p.k(layer), p.v(layer),
                    b.tables(), b.tableOff(), p.blockSize(), p.kvDim(), 0, null, nHeads, nKvHeads, scaleLog2(headSize));
        }
        int work = fast ? b.shortRows : b.rows;
        int maxLimit = fast ? b.maxShortLimit : b.maxLimit;
        if (work > 0) {
            rowsAttention(o, l, qq, work, maxLimit, b.wRow(), b.wSeq(), b.wLimit(), p.k(layer), p.v(layer), b.tables(), b.tableOff(),
                    p.blockSize(), p.kvDim(), 0, null, nHeads, nKvHeads, headSize);
        }
    }

    /**
     * Batch-invariant paged attention: long sequences in 128-row det_w8 tiles, short ones (decode) in one 16-row
     * det_w1 tile each; both fold the fixed segments of their keys the same way. When a short row has keys in more
     * than one segment, det_w1 runs a block per segment (so that a decode step over a long context still fills the
     * multiprocessors) and attn_fold_segments folds them in order, with the arithmetic of the in-register fold.
     */
    private void invariantPaged(CudaTensor o, CudaTensor l, CudaTensor q, CudaKvPool p, int layer, CudaPrepared b, int nHeads, int nKvHeads,
            int d) {
        float sl = scaleLog2(d);
        PrefillKernel chosen = invariantKernel(invariantLong);
        PrefillKernel wide = hasPrefill(d, chosen) ? chosen : invariantKernel("det_w8"), narrow = invariantKernel("det_w1");
        int wideKind = CudaPrepared.tileKind(wide.rows()), narrowKind = CudaPrepared.tileKind(narrow.rows());
        if (b.tiles(wideKind) > 0) {
            kernels.launch(wide.name(d), nHeads, b.tiles(wideKind), 1, wide.threads(), wide.smem(d), o.ptr(), o.dtype().code, l.ptr(), q.ptr(),
                    b.tSeq(wideKind), b.tQ0(wideKind), b.qStart(), b.qLen(), b.kvLen(), p.k(layer), p.v(layer), b.tables(), b.tableOff(),
                    p.blockSize(), p.kvDim(), 0, null, nHeads, nKvHeads, sl, null, null);
        }
        int tiles = b.tiles(narrowKind);
        if (tiles == 0) {
            return;
        }
        int segs = Math.max(1, blocks(b.maxShortLimit, SEGMENT));
        if (segs == 1) {
            kernels.launch(narrow.name(d), nHeads, tiles, 1, 32, narrow.smem(d), o.ptr(), o.dtype().code, l.ptr(), q.ptr(), b.tSeq(narrowKind),
                    b.tQ0(narrowKind), b.qStart(), b.qLen(), b.kvLen(), p.k(layer), p.v(layer), b.tables(), b.tableOff(), p.blockSize(), p.kvDim(),
                    0, null, nHeads, nKvHeads, sl, null, null);
            return;
        }
        // partials [query row of the batch][segment][head]: one per row that exists, not 16 per tile (a decode tile has one
        // valid row, and a graph keeps every layer's partials while it is recorded)
        int rows = Math.max(1, b.rowSpan);
        int partialRows = tiles * narrow.rows(); // the fold's warps: one per (row slot of a tile, head)
        try (CudaTensor po = backend.allocate(rows, segs * nHeads * d, CudaTensor.DType.F32);
                CudaTensor pl = backend.allocate(rows, segs * nHeads, CudaTensor.DType.F32)) {
            kernels.launch(narrow.name(d), nHeads, tiles, segs, 32, narrow.smem(d), o.ptr(), o.dtype().code, l.ptr(), q.ptr(), b.tSeq(narrowKind),
                    b.tQ0(narrowKind), b.qStart(), b.qLen(), b.kvLen(), p.k(layer), p.v(layer), b.tables(), b.tableOff(), p.blockSize(), p.kvDim(),
                    0, null, nHeads, nKvHeads, sl, po.ptr(), pl.ptr());
            kernels.launch("attn_fold_segments", blocks((long) partialRows * nHeads * 32, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, l.ptr(),
                    po.ptr(), pl.ptr(), b.tSeq(narrowKind), b.qStart(), b.qLen(), tiles, nHeads, d, segs);
        }
    }

    private static PrefillKernel invariantKernel(String variant) {
        for (PrefillKernel k : INVARIANT) {
            if (k.variant().equals(variant)) {
                return k;
            }
        }
        throw new IllegalArgumentException("No batch-invariant attention kernel " + variant);
    }

    /** Attention of n query rows over compact K and V [nKvHeads * maxLen, headSize] with one length per KV head. */
    void compact(Tensor out, Tensor lse, Tensor q, int n, CompactKv kv, int nHeads, int nKvHeads, int headSize) {
        CudaTensor o = t(out), l = t(lse), qq = t(q), k = t(kv.k()), v = t(kv.v());
        checkAttention(o, l, qq, nHeads, nKvHeads, headSize);
        need(k.cols() == headSize && v.cols() == headSize && k.rows() >= nKvHeads * kv.maxLen(),
                "attention: compact K and V must be [nKvHeads * maxLen, headSize]");
        need(kv.lens().length == nKvHeads, "attention: compact KV needs one length per KV head");
        if (n == 0) {
            return;
        }
        CudaTensor kb = k, vb = v;
        if (k.dtype() != CudaTensor.DType.BF16 || v.dtype() != CudaTensor.DType.BF16) {
            kb = backend.allocate(k.rows(), k.cols(), CudaTensor.DType.BF16);
            vb = backend.allocate(v.rows(), v.cols(), CudaTensor.DType.BF16);
            backend.copyRows(kb, 0, k, 0, k.rows());
            backend.copyRows(vb, 0, v, 0, v.rows());
        }
        int maxLen = 0;
        for (int len : kv.lens()) {
            need(len >= 0 && len <= kv.maxLen(), "attention: a compact KV length is outside 0..maxLen");
            maxLen = Math.max(maxLen, len);
        }
        boolean fast = (headSize == 64 || headSize == 128) && qq.dtype() == CudaTensor.DType.BF16 && n >= CudaPrepared.TILE_MIN_ROWS;
        PrefillKernel pk = prefillKernel(headSize, nHeads, nKvHeads);
        int bq = pk.tileRows();
        int tiles = fast ? (n + bq - 1) / bq : 0;
        // ints: lens[nKv] qStart[1] qLen[1] tSeq[tiles] tQ0[tiles]
        int[] ints = new int[nKvHeads + 2 + 2 * tiles];
        System.arraycopy(kv.lens(), 0, ints, 0, nKvHeads);
        ints[nKvHeads + 1] = n;
        for (int i = 0; i < tiles; i++) {
            ints[nKvHeads + 2 + tiles + i] = i * bq;
        }
        try (CudaTensor dev = (CudaTensor) backend.upload(ints)) {
            CUdeviceptr lens = dev.ptr();
            if (fast) {
                CUdeviceptr base = dev.ptr();
                kernels.launch(pk.name(headSize), nHeads / pk.pack(), tiles, 1, pk.threads(), pk.smem(headSize), o.ptr(),
                        o.dtype().code, l.ptr(), qq.ptr(), base.withByteOffset(4L * (nKvHeads + 2)),
                        base.withByteOffset(4L * (nKvHeads + 2 + tiles)), base.withByteOffset(4L * nKvHeads),
                        base.withByteOffset(4L * (nKvHeads + 1)), lens, kb.ptr(), vb.ptr(), null, null, 0, headSize, kv.maxLen(), lens, nHeads,
                        nKvHeads, scaleLog2(headSize));
            } else {
                rowsAttention(o, l, qq, n, maxLen, null, null, null, kb.ptr(), vb.ptr(), null, null, 0, headSize, kv.maxLen(), lens, nHeads,
                        nKvHeads, headSize);
            }
        } finally {
            if (kb != k) {
                kb.close();
                vb.close();
            }
        }
    }

    private static void checkAttention(CudaTensor o, CudaTensor l, CudaTensor q, int nHeads, int nKvHeads, int headSize) {
        need(l.dtype() == CudaTensor.DType.F32, "attention: lse must be a float32 tensor (allocate it with allocateFloat)");
        need(o.dtype() != CudaTensor.DType.I32 && q.dtype() != CudaTensor.DType.I32, "attention: q and out must be float tensors");
        need(nKvHeads > 0 && nHeads % nKvHeads == 0, "attention: nHeads must be a multiple of nKvHeads");
        need(q.cols() == nHeads * headSize && o.cols() == nHeads * headSize && l.cols() == nHeads,
                "attention: q and out must be [n, nHeads * headSize] and lse [n, nHeads]");
    }

    private static float scaleLog2(int headSize) {
        return (float) (1.0 / Math.sqrt(headSize) / Math.log(2));
    }

    /**
     * How the row kernel splits the keys of its rows (at most {@code maxLimit} each): {@code splits} slices of
     * {@code chunk} keys, a multiple of 64, when {@code work * nKvHeads} blocks would leave the multiprocessors
     * idle on rows longer than 128 (aiming at two blocks per multiprocessor; attn_merge_splits then merges the
     * slices), else one slice of all of them ({@code chunk} = maxLimit, at least 1).
     */
    record RowSplit(int splits, int chunk) {
    }

    /** The {@link RowSplit} for {@code work} query rows of {@code nKvHeads} KV heads on {@code smCount} multiprocessors. */
    static RowSplit rowSplit(int work, int nKvHeads, int maxLimit, int smCount) {
        long base = (long) work * nKvHeads;
        int splits = 1;
        int chunk = Math.max(maxLimit, 1);
        if (base < 2L * smCount && maxLimit > 128) {
            int want = (int) ((2L * smCount + base - 1) / base);
            chunk = Math.max(64, (maxLimit + want - 1) / want);
            chunk = (chunk + 63) / 64 * 64;
            splits = (maxLimit + chunk - 1) / chunk;
        }
        return new RowSplit(splits, chunk);
    }

    private void rowsAttention(CudaTensor o, CudaTensor l, CudaTensor q, int work, int maxLimit, CUdeviceptr wRow, CUdeviceptr wSeq,
            CUdeviceptr wLimit, CUdeviceptr k, CUdeviceptr v, CUdeviceptr tables, CUdeviceptr tableOff, int bs, int rowStride, int maxLen,
            CUdeviceptr lens, int nHeads, int nKvHeads, int headSize) {
        int g = nHeads / nKvHeads;
        boolean rowKernel = headSize == 8 || headSize == 16 || headSize == 32 || headSize == 64 || headSize == 128;
        need(rowKernel && (g == 1 || g == 2 || g == 4 || g == 8),
                () -> "attention: the CUDA backend supports head sizes 8, 16, 32, 64, 128 and 1, 2, 4 or 8 query heads per KV head; got "
                        + headSize + " and " + g);
        String name = "attn_rows_d" + headSize + "_g" + g;
        RowSplit split = rowSplit(work, nKvHeads, maxLimit, smCount);
        int splits = split.splits();
        int chunk = split.chunk();
        float sl = scaleLog2(headSize);
        if (splits == 1) {
            kernels.launch(name, work, nKvHeads, 1, 128, 0, o.ptr(), o.dtype().code, l.ptr(), null, null, q.ptr(), q.dtype().code, wRow, wSeq, wLimit,
                    work, k, v, tables, tableOff, bs, rowStride, maxLen, lens, nHeads, chunk, sl);
            return;
        }
        try (CudaTensor po = backend.allocate(splits, work * nHeads * headSize, CudaTensor.DType.F32);
                CudaTensor pl = backend.allocate(splits, work * nHeads, CudaTensor.DType.F32)) {
            kernels.launch(name, work, nKvHeads, splits, 128, 0, o.ptr(), o.dtype().code, l.ptr(), po.ptr(), pl.ptr(), q.ptr(), q.dtype().code, wRow,
                    wSeq, wLimit, work, k, v, tables, tableOff, bs, rowStride, maxLen, lens, nHeads, chunk, sl);
            kernels.launch("attn_merge_splits", blocks((long) work * nHeads * 32, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, l.ptr(), po.ptr(),
                    pl.ptr(), wRow, work, nHeads, headSize, splits);
        }
    }

    /** Merges two partial attentions of the same rows by their lse: out, lse = the merge of (out, lse) and (out2, lse2). */
    void merge(Tensor out, Tensor lse, Tensor out2, Tensor lse2, int n, int nHeads, int headSize) {
        CudaTensor o = t(out), l = t(lse), o2 = t(out2), l2 = t(lse2);
        need(l.dtype() == CudaTensor.DType.F32 && l2.dtype() == CudaTensor.DType.F32, "mergeAttention: lse tensors must be float32");
        need(o.cols() == nHeads * headSize && o2.cols() == nHeads * headSize, "mergeAttention: outputs must be [n, nHeads * headSize]");
        long warps = (long) n * nHeads;
        if (warps > 0) {
            kernels.launch("merge_attention", blocks(warps * 32, 256), 1, 1, 256, 0, o.ptr(), o.dtype().code, l.ptr(), o2.ptr(), o2.dtype().code,
                    l2.ptr(), (int) warps, headSize);
        }
    }
}
