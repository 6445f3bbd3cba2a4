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
    static final int[] TILE_ROWS = {64, 128, 256};

    private final CudaBackend owner;
    private final AttentionBatch batch;
    private final CudaTensor ints;
    final int sequences;
    final int rows;
    final int shortRows;
    final int maxLimit;
    final int maxShortLimit;
    private final int[] offsets = new int[8];
    private final int[] tileOffset = new int[TILE_ROWS.length];
    private final int[] tileCount = new int[TILE_ROWS.length];

    CudaPrepared(CudaBackend owner, AttentionBatch batch) {
        this.owner = owner;
        this.batch = batch;
        int s = batch.sequences();
        this.sequences = s;
        this.rows = batch.rows();
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
                if (batch.qLen()[i] < TILE_MIN_ROWS) {
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
        int[] all = new int[n];
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
        this.ints = (CudaTensor) owner.upload(all);
    }

    CUdeviceptr qStart() {
        return ints.ptr().withByteOffset(4L * offsets[0]);
    }

    CUdeviceptr qLen() {
        return ints.ptr().withByteOffset(4L * offsets[1]);
    }

    CUdeviceptr kvLen() {
        return ints.ptr().withByteOffset(4L * offsets[2]);
    }

    CUdeviceptr tableOff() {
        return ints.ptr().withByteOffset(4L * offsets[3]);
    }

    CUdeviceptr tables() {
        return ints.ptr().withByteOffset(4L * offsets[4]);
    }

    CUdeviceptr wRow() {
        return ints.ptr().withByteOffset(4L * offsets[5]);
    }

    CUdeviceptr wSeq() {
        return ints.ptr().withByteOffset(4L * offsets[6]);
    }

    CUdeviceptr wLimit() {
        return ints.ptr().withByteOffset(4L * offsets[7]);
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
        return tileCount[kind];
    }

    CUdeviceptr tSeq(int kind) {
        return ints.ptr().withByteOffset(4L * tileOffset[kind]);
    }

    CUdeviceptr tQ0(int kind) {
        return ints.ptr().withByteOffset(4L * (tileOffset[kind] + Math.max(tileCount[kind], 1)));
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
