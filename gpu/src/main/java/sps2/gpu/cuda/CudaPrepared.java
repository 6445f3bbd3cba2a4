package sps2.gpu.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jcuda.driver.CUdeviceptr;
import sps2.gpu.AttentionBatch;

/**
 * An attention batch as device int arrays, uploaded once per step and reused by every layer. Sequences
 * with at least {@link #TILE_MIN_ROWS} query rows are cut into query tiles for the tensor-core prefill
 * kernel (longest tiles first, for load balance); every query row also has a work item for the row kernel
 * (decode and short chunks), the rows of short sequences first, so that the row kernel can cover just
 * those ({@link #shortRows}) or all rows (head sizes without a prefill kernel).
 *
 * <p>Device layout (int32): qStart[S] qLen[S] kvLen[S] tableOff[S] tables[T] wRow[R] wSeq[R] wLimit[R]
 * then, per prefill tile height in {@link #TILE_ROWS}, tSeq[n] and tQ0[n].
 */
final class CudaPrepared implements AttentionBatch.Prepared {
    static final int TILE_MIN_ROWS = 16;
    /** Tile heights; 16-row tiles hold one short sequence each (the batch-invariant decode kernel), the others cut long ones. */
    static final int[] TILE_ROWS = {16, 32, 48, 64, 128, 192, 256};
    static final int SHORT_TILE_ROWS = 16;

    private final CudaBackend owner;
    private final CudaTensor ints;
    private AttentionBatch batch;
    private Layout layout;
    int sequences;
    int rows;
    /** One past the last query row any sequence uses (max of qStart + qLen): the rows of the batch's q and output. */
    int rowSpan;
    int shortRows;
    int maxLimit;
    int maxShortLimit;

    CudaPrepared(CudaBackend owner, AttentionBatch batch) {
        this.owner = owner;
        Layout l = new Layout(batch);
        this.ints = (CudaTensor) owner.upload(l.all);
        take(batch, l);
    }

    /**
     * Rewrites the device arrays in place for a batch of the same layout (same sequences, rows, block-table and
     * tile sizes), so that kernels recorded over this batch read the new one; false when the layout differs.
     */
    boolean update(AttentionBatch next) {
        Layout l = new Layout(next);
        if (!l.sameShape(layout)) {
            return false;
        }
        owner.writeInts(ints, l.all);
        take(next, l);
        return true;
    }

    private void take(AttentionBatch b, Layout l) {
        this.batch = b;
        this.layout = l;
        this.sequences = b.sequences();
        this.rows = l.rows;
        this.rowSpan = l.rowSpan;
        this.shortRows = l.shortRows;
        // With a key bound, splits are planned for the bound (the same launches for every batch under it).
        this.maxLimit = Math.max(l.maxLimit, b.keyBound());
        this.maxShortLimit = Math.max(l.maxShortLimit, b.keyBound() > 0 && l.shortRows > 0 ? b.keyBound() : 0);
    }

    /** The int32 arrays of a batch laid out one after another, and where each starts. */
    private static final class Layout {
        final int[] all;
        final int[] offsets = new int[8];
        final int[] tileOffset = new int[TILE_ROWS.length];
        final int[] tileCount = new int[TILE_ROWS.length];
        final int rows;
        final int rowSpan;
        final int shortRows;
        final int maxLimit;
        final int maxShortLimit;

        Layout(AttentionBatch batch) {
            int s = batch.sequences();
            this.rows = batch.rows();
            int span = 0;
            for (int i = 0; i < s; i++) {
                span = Math.max(span, batch.qStart()[i] + batch.qLen()[i]);
            }
            this.rowSpan = span;
            List<int[]> parts = new ArrayList<>();
            int[] tableOff = new int[s];
            int total = 0;
            for (int i = 0; i < s; i++) {
                tableOff[i] = total;
                total += batch.blockTables()[i].length;
            }
            int[] tables = new int[Math.max(total, 1)];
            for (int i = 0; i < s; i++) {
                System.arraycopy(batch.blockTables()[i], 0, tables, tableOff[i], batch.blockTables()[i].length);
            }
            int[] wRow = new int[Math.max(rows, 1)];
            int[] wSeq = new int[Math.max(rows, 1)];
            int[] wLimit = new int[Math.max(rows, 1)];
            int at = 0;
            int maxL = 0;
            int maxShort = 0;
            int shortCount = 0;
            for (int pass = 0; pass < 2; pass++) {
                for (int i = 0; i < s; i++) {
                    boolean isShort = batch.qLen()[i] < TILE_MIN_ROWS;
                    if (isShort != (pass == 0)) {
                        continue;
                    }
                    // a decode row with no keys on this shard (kvLen 0) gets limit 0: zero output, lse -inf
                    int off = batch.kvLen()[i] - batch.qLen()[i];
                    for (int j = 0; j < batch.qLen()[i]; j++) {
                        wRow[at] = batch.qStart()[i] + j;
                        wSeq[at] = i;
                        wLimit[at] = off + j + 1;
                        maxL = Math.max(maxL, wLimit[at]);
                        if (isShort) {
                            maxShort = Math.max(maxShort, wLimit[at]);
                        }
                        at++;
                    }
                }
                if (pass == 0) {
                    shortCount = at;
                }
            }
            this.shortRows = shortCount;
            this.maxLimit = maxL;
            this.maxShortLimit = maxShort;
            parts.add(batch.qStart());
            parts.add(batch.qLen());
            parts.add(batch.kvLen());
            parts.add(tableOff);
            parts.add(tables);
            parts.add(wRow);
            parts.add(wSeq);
            parts.add(wLimit);
            for (int t = 0; t < TILE_ROWS.length; t++) {
                int bq = TILE_ROWS[t];
                List<long[]> tiles = new ArrayList<>();
                for (int i = 0; i < s; i++) {
                    if ((batch.qLen()[i] < TILE_MIN_ROWS) != (bq == SHORT_TILE_ROWS) || batch.qLen()[i] == 0) {
                        continue;
                    }
                    int off = batch.kvLen()[i] - batch.qLen()[i];
                    for (int q0 = 0; q0 < batch.qLen()[i]; q0 += bq) {
                        int keys = off + Math.min(batch.qLen()[i], q0 + bq);
                        tiles.add(new long[] {keys, i, q0});
                    }
                }
                tiles.sort((a, b) -> Long.compare(b[0], a[0]));
                int[] tSeq = new int[Math.max(tiles.size(), 1)];
                int[] tQ0 = new int[Math.max(tiles.size(), 1)];
                for (int k = 0; k < tiles.size(); k++) {
                    tSeq[k] = (int) tiles.get(k)[1];
                    tQ0[k] = (int) tiles.get(k)[2];
                }
                tileCount[t] = tiles.size();
                parts.add(tSeq);
                parts.add(tQ0);
            }
            int n = 0;
            for (int[] p : parts) {
                n += p.length;
            }
            all = new int[n];
            int pos = 0;
            for (int k = 0; k < parts.size(); k++) {
                int[] p = parts.get(k);
                if (k < 8) {
                    offsets[k] = pos;
                } else if ((k - 8) % 2 == 0) {
                    tileOffset[(k - 8) / 2] = pos;
                }
                System.arraycopy(p, 0, all, pos, p.length);
                pos += p.length;
            }
        }

        boolean sameShape(Layout o) {
            return o != null && all.length == o.all.length && rows == o.rows && shortRows == o.shortRows && Arrays.equals(offsets, o.offsets)
                    && Arrays.equals(tileOffset, o.tileOffset) && Arrays.equals(tileCount, o.tileCount);
        }
    }

    CUdeviceptr qStart() {
        return ints.ptr().withByteOffset(4L * layout.offsets[0]);
    }

    CUdeviceptr qLen() {
        return ints.ptr().withByteOffset(4L * layout.offsets[1]);
    }

    CUdeviceptr kvLen() {
        return ints.ptr().withByteOffset(4L * layout.offsets[2]);
    }

    CUdeviceptr tableOff() {
        return ints.ptr().withByteOffset(4L * layout.offsets[3]);
    }

    CUdeviceptr tables() {
        return ints.ptr().withByteOffset(4L * layout.offsets[4]);
    }

    CUdeviceptr wRow() {
        return ints.ptr().withByteOffset(4L * layout.offsets[5]);
    }

    CUdeviceptr wSeq() {
        return ints.ptr().withByteOffset(4L * layout.offsets[6]);
    }

    CUdeviceptr wLimit() {
        return ints.ptr().withByteOffset(4L * layout.offsets[7]);
    }

    /** Index into {@link #TILE_ROWS} of a tile height. */
    static int tileKind(int bq) {
        int k = Arrays.binarySearch(TILE_ROWS, bq);
        if (k < 0) {
            throw new IllegalArgumentException("No prefill tiles of " + bq + " rows");
        }
        return k;
    }

    int tiles(int kind) {
        return layout.tileCount[kind];
    }

    CUdeviceptr tSeq(int kind) {
        return ints.ptr().withByteOffset(4L * layout.tileOffset[kind]);
    }

    CUdeviceptr tQ0(int kind) {
        return ints.ptr().withByteOffset(4L * (layout.tileOffset[kind] + Math.max(layout.tileCount[kind], 1)));
    }

    CudaBackend owner() {
        return owner;
    }

    @Override
    public AttentionBatch batch() {
        return batch;
    }

    @Override
    public void close() {
        ints.close();
    }
}
