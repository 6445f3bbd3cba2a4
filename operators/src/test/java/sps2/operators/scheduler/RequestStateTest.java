package sps2.operators.scheduler;

import static org.apache.flink.types.PojoTestUtils.assertSerializedAsPojoWithoutKryo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sps2.operators.scheduler.SchedulerFixtures.request;
import static sps2.operators.scheduler.SchedulerFixtures.waiting;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

import sps2.model.generation.StopRule;
import sps2.operators.messages.Admitted;

class RequestStateTest {

    @Test
    void appendingKeepsEveryTokenInOrderAndGrowsTheArrayGeometrically() {
        Admitted a = request("r", 5, 100_000);
        RequestState r = waiting(a, 0);
        int n = 20_000;
        int reallocations = 0;
        int[] array = r.generated;
        for (int i = 0; i < n; i++) {
            r.append(i * 3, "");
            if (r.generated != array) {
                reallocations++;
                array = r.generated;
            }
        }
        assertEquals(n, r.outputs());
        assertEquals((n - 1) * 3, r.lastToken());
        int[] history = r.history();
        assertArrayEquals(a.promptTokens, Arrays.copyOf(history, 5));
        for (int i = 0; i < n; i++) {
            assertEquals(i * 3, history[5 + i]);
        }
        assertTrue(reallocations <= 32 - Integer.numberOfLeadingZeros(n), "copied " + reallocations + " times for " + n + " tokens");
    }

    @Test
    void theTextKeptDecidesStopStringsAsTheWholeTextWould() {
        Admitted a = request("r", 3, 1000);
        a.generation.stopStrings = new String[] {"the end", "zz"};
        RequestState r = waiting(a, 0);
        StopRule rule = new StopRule(1000, -1, false, Set.of(), List.of(a.generation.stopStrings), 1 << 20);
        StringBuilder whole = new StringBuilder();
        SplittableRandom rnd = new SplittableRandom(3);
        String[] pieces = {"the", " ", "end", "z", "e", "n", "d", "th", "", "the end"};
        int stops = 0;
        for (int i = 0; i < 2000; i++) {
            String piece = pieces[rnd.nextInt(pieces.length)];
            String kept = r.newSeq().textSoFar;
            assertTrue(kept.length() <= "the end".length(), "no more than the longest stop string is kept");
            StopRule.Reason onKept = rule.after(1, i, i, kept + piece);
            whole.append(piece);
            assertEquals(rule.after(1, i, i, whole), onKept, "after " + whole.length() + " characters");
            stops += onKept == StopRule.Reason.STOP ? 1 : 0;
            r.append(i, piece);
        }
        assertTrue(stops > 0, "the pieces make stop strings now and then");
    }

    @Test
    void withoutStopStringsNoTextIsKept() {
        RequestState r = waiting(request("r", 3, 10), 0);
        r.append(5, "hello");
        assertEquals("", r.text);
    }

    @Test
    void stateWrittenBeforeTheCountExistedReadsTheSame() {
        RequestState old = waiting(request("r", 3, 10), 0);
        old.generated = new int[] {7, 8, 9};
        old.generatedCount = 0;
        old.text = "a long text from before";
        assertEquals(3, old.outputs());
        assertEquals(9, old.lastToken());
        old.append(10, " more");
        assertEquals(4, old.outputs());
        int[] history = old.history();
        assertArrayEquals(new int[] {7, 8, 9, 10}, Arrays.copyOfRange(history, 3, 7));
    }

    @Test
    void itIsAFlinkPojoAndSurvivesItsSerializer() throws Exception {
        TypeInformation<RequestState> type = TypeInformation.of(RequestState.class);
        assertInstanceOf(PojoTypeInfo.class, type, "a POJO, so that keyed state needs no Kryo and its schema may evolve");
        assertSerializedAsPojoWithoutKryo(RequestState.class);
        TypeSerializer<RequestState> serializer = type.createSerializer(new SerializerConfigImpl());
        Admitted a = request("r", 4, 50);
        a.generation.stopStrings = new String[] {"stop"};
        RequestState r = waiting(a, 3);
        for (int i = 0; i < 11; i++) {
            r.append(100 + i, "p" + i);
        }
        r.phase = RequestState.DECODE;
        r.peers = new int[] {0, 2};
        r.blockTables = new int[][] {{1, 2}, {3}};
        r.kvTokens = new int[] {6, 9};
        DataOutputSerializer bytes = new DataOutputSerializer(256);
        serializer.serialize(r, bytes);
        RequestState back = serializer.deserialize(new DataInputDeserializer(bytes.getCopyOfBuffer()));
        assertArrayEquals(r.history(), back.history());
        assertEquals(a.generation, back.request.generation);
        assertEquals(r.outputs(), back.outputs());
        assertEquals(r.text, back.text);
        assertEquals(r.arrival, back.arrival);
        assertArrayEquals(r.blockTables, back.blockTables);
        assertArrayEquals(r.kvTokens, back.kvTokens);
        back.append(7, "x");
        assertEquals(r.outputs() + 1, back.outputs());
    }
}
