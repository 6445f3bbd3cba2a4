package sps2.gpu.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import sps2.gpu.cuda.CudaAttention.RowSplit;

/** How the attention row kernel splits long rows over the keys, without a GPU. */
class AttentionRowSplitTest {
    @Test
    void fewBlocksOnLongRowsSplitTheKeysInto64KeyMultiples() {
        // one decode row, 8 KV heads, 4096 keys on 132 SMs: 8 blocks want ceil(264 / 8) = 33 slices of 125 keys,
        // rounded up to 128: 32 slices
        assertEquals(new RowSplit(32, 128), CudaAttention.rowSplit(1, 8, 4096, 132));
        // a short longest row never splits: one slice of the longest row
        assertEquals(new RowSplit(1, 128), CudaAttention.rowSplit(1, 8, 128, 132));
        assertEquals(new RowSplit(1, 1), CudaAttention.rowSplit(1, 8, 0, 132), "an empty batch still has a chunk of 1");
        // enough blocks (264 = two per SM): no split
        assertEquals(new RowSplit(1, 32768), CudaAttention.rowSplit(33, 8, 32768, 132));
        // slices are at least 64 keys: 129 keys with 1 block and 132 SMs are 3 slices of 64
        assertEquals(new RowSplit(3, 64), CudaAttention.rowSplit(1, 1, 129, 132));
    }

    @Test
    void theSlicesCoverTheLongestRowWithoutAnEmptyOne() {
        for (int sm : new int[] {1, 46, 108, 132}) {
            for (int work = 1; work <= 40; work += 3) {
                for (int kv : new int[] {1, 2, 8}) {
                    for (int maxLimit : new int[] {1, 64, 128, 129, 1000, 4096, 8191, 131072}) {
                        RowSplit s = CudaAttention.rowSplit(work, kv, maxLimit, sm);
                        String what = sm + " SMs, " + work + " rows, " + kv + " KV heads, " + maxLimit + " keys: " + s;
                        assertTrue((long) s.splits() * s.chunk() >= maxLimit, what);
                        assertTrue((long) (s.splits() - 1) * s.chunk() < maxLimit, what);
                        assertTrue(s.splits() == 1 || s.chunk() % 64 == 0, what);
                    }
                }
            }
        }
    }
}
