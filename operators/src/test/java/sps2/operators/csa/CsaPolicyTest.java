package sps2.operators.csa;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.BitSet;

import org.junit.jupiter.api.Test;

class CsaPolicyTest {
    @Test
    void stridedHeadsTogetherCoverEverySenderToken() {
        CsaPolicy p = CsaPolicy.parse("strided:3");
        for (int start : new int[] {0, 1, 5, 17}) {
            int[][] rows = p.select(start, 29, start + 29, 6);
            BitSet seen = new BitSet();
            for (int g = 0; g < 6; g++) {
                for (int r : rows[g]) {
                    assertEquals(g % 3, (start + r) % 3, "head " + g + " got position " + (start + r));
                    seen.set(r);
                }
            }
            assertEquals(29, seen.cardinality());
        }
    }

    @Test
    void sinkWindowKeepsSinksAndTheTokensJustBeforeTheReceiver() {
        int[][] rows = CsaPolicy.parse("sink-window:2:3").select(0, 10, 20, 2);
        assertArrayEquals(new int[] {0, 1}, rows[0]);
        int[][] near = CsaPolicy.parse("sink-window:2:3").select(10, 10, 20, 2);
        assertArrayEquals(new int[] {7, 8, 9}, near[1]);
    }

    @Test
    void denseSendsAllAndBadSpecsAreRejected() {
        assertEquals(7, CsaPolicy.parse("dense").select(3, 7, 10, 4)[3].length);
        assertThrows(IllegalArgumentException.class, () -> CsaPolicy.parse("strided"));
        assertThrows(IllegalArgumentException.class, () -> CsaPolicy.parse("strided:0"));
        assertThrows(IllegalArgumentException.class, () -> CsaPolicy.parse("topk:4"));
        assertTrue(CsaPolicy.parse(" strided:4 ").name().equals("strided:4"));
    }
}
