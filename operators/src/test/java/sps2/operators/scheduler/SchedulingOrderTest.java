package sps2.operators.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.junit.jupiter.api.Test;

import sps2.operators.messages.Admitted;
import sps2.operators.messages.Generation;

class SchedulingOrderTest {

    private static Map.Entry<String, RequestState> waiting(String id, int priority, long arrival) {
        RequestState state = new RequestState();
        state.request = admitted(priority);
        state.arrival = arrival;
        return Map.entry(id, state);
    }

    private static Admitted admitted(int priority) {
        Admitted a = new Admitted();
        a.requestId = "r";
        a.promptTokens = new int[] {1, 5, 9};
        a.generation = new Generation();
        a.generation.maxTokens = 8;
        a.generation.temperature = 0.7f;
        a.generation.topK = 40;
        a.generation.topP = 0.9f;
        a.generation.minP = 0.05f;
        a.generation.seed = 11;
        a.generation.stopTokens = new int[] {2};
        a.generation.stopStrings = new String[] {"The end"};
        a.priority = priority;
        a.admittedAtMs = 1000;
        return a;
    }

    @Test
    void higherPriorityFirstOverTheWholeIntRangeThenArrival() {
        int[] priorities = {Integer.MIN_VALUE, Integer.MIN_VALUE + 1, -1, 0, 0, 1, Integer.MAX_VALUE - 1, Integer.MAX_VALUE};
        List<Map.Entry<String, RequestState>> entries = new ArrayList<>();
        for (int i = 0; i < priorities.length; i++) {
            entries.add(waiting("p" + i, priorities[i], i));
        }
        List<Map.Entry<String, RequestState>> shuffled = new ArrayList<>(entries);
        Collections.shuffle(shuffled, new Random(6));
        shuffled.sort(Scheduler.SCHEDULING_ORDER);
        List<String> order = shuffled.stream().map(Map.Entry::getKey).toList();
        assertEquals(List.of("p7", "p6", "p5", "p3", "p4", "p2", "p1", "p0"), order,
                "Integer.MIN_VALUE is the lowest priority and goes last; equal priorities go by arrival");
        assertEquals("p0", entries.stream().max(Scheduler.SCHEDULING_ORDER).orElseThrow().getKey());
    }

    @Test
    void aRetryIsTheSameRequestWhateverItsPriorityAndArrivalButAnyGenerationParameterMakesItAnother() {
        Admitted original = admitted(0);
        Admitted retry = admitted(5);
        retry.admittedAtMs = 99_999;
        assertTrue(Scheduler.sameRequest(original, retry));
        List<java.util.function.Consumer<Admitted>> changes = List.of(
                a -> a.promptTokens = new int[] {1, 5, 10}, a -> a.generation.maxTokens = 9, a -> a.generation.temperature = 0.8f,
                a -> a.generation.topK = 41, a -> a.generation.topP = 0.95f, a -> a.generation.minP = 0f, a -> a.generation.seed = 12,
                a -> a.generation.ignoreEos = true, a -> a.generation.stopTokens = new int[0],
                a -> a.generation.stopStrings = new String[] {"The End"});
        for (java.util.function.Consumer<Admitted> change : changes) {
            Admitted other = admitted(0);
            change.accept(other);
            assertFalse(Scheduler.sameRequest(original, other));
        }
    }
}
