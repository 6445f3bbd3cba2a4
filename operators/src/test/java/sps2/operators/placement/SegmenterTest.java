package sps2.operators.placement;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import sps2.model.shapes.ModelShapes;

class SegmenterTest {
    @Test
    void segmentsAreContiguousNonEmptyAndBalancedInCost() {
        Segmenter s = new Segmenter(ModelShapes.get("llama-3.2-1b"), 64);
        int[] b = s.split(32768, 4);
        assertEquals(5, b.length);
        assertEquals(0, b[0]);
        assertEquals(32768, b[4]);
        double first = s.cost(b[1]) - s.cost(b[0]);
        for (int i = 0; i < 4; i++) {
            assertTrue(b[i + 1] > b[i]);
            double cost = s.cost(b[i + 1]) - s.cost(b[i]);
            assertTrue(Math.abs(cost - first) / first < 0.01, "segment " + i + " costs " + cost + " vs " + first);
        }
        // attention makes later tokens dearer: later segments hold fewer tokens
        assertTrue(b[4] - b[3] < b[1] - b[0]);
    }

    @Test
    void shortPromptsUseFewerShards() {
        Segmenter s = new Segmenter(ModelShapes.get("stories260k"), 16);
        assertEquals(2, s.split(10, 4).length);       // one segment
        assertEquals(3, s.split(40, 4).length);       // two segments of >= 16
        int[] one = new Segmenter(ModelShapes.get("stories260k"), 1).split(3, 4);
        assertEquals(4, one.length);                   // prompt shorter than the SP degree: one token per shard
    }
}
