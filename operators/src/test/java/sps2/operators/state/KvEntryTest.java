package sps2.operators.state;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

class KvEntryTest {
    @Test
    void serializerRoundTripsTokensSlotsAndValues() throws Exception {
        KvEntry e = KvEntry.empty().append(new int[] {3, 9}, new int[] {5, 6, 7}, 10, new int[] {48, 49, 50},
                new float[] {1, 2, 3, 4, 5, 6}, new float[] {-1, -2, -3, -4, -5, -6});
        DataOutputSerializer out = new DataOutputSerializer(64);
        KvEntrySerializer.INSTANCE.serialize(e, out);
        KvEntry back = KvEntrySerializer.INSTANCE.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
        assertEquals(e, back);
        assertArrayEquals(new int[] {10, 11, 12}, back.positions());
        assertTrue(back.hasValues());
    }

    @Test
    void appendingAtAnEarlierPositionReplacesInsteadOfDuplicating() {
        KvEntry e = KvEntry.empty().append(new int[] {1}, new int[] {5, 6}, 0, new int[] {16, 17}, null, null);
        e = e.append(new int[] {1}, new int[] {7}, 2, new int[] {18}, null, null);
        // the step that appended token 7 at position 2 is re-run after a restore
        KvEntry again = e.append(new int[] {1}, new int[] {7}, 2, new int[] {18}, null, null);
        assertEquals(3, again.tokenCount());
        assertArrayEquals(new int[] {5, 6, 7}, again.tokens());
        assertFalse(again.hasValues());
    }
}
