package sps2.operators.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static sps2.operators.scheduler.SchedulerFixtures.SEGMENTER;
import static sps2.operators.scheduler.SchedulerFixtures.expectedTokens;
import static sps2.operators.scheduler.SchedulerFixtures.request;
import static sps2.operators.scheduler.SchedulerFixtures.scheduler;
import static sps2.operators.scheduler.SchedulerFixtures.settings;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;

import sps2.operators.JobSettings;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.messages.StepSeq;
import sps2.operators.scheduler.SchedulerFixtures.FakeShards;
import sps2.operators.scheduler.SchedulerFixtures.InMemoryRequests;
import sps2.operators.scheduler.SchedulerFixtures.ManualClock;
import sps2.operators.scheduler.SchedulerFixtures.Recorder;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/** The scheduler without Flink: admission, the life of a request, iterations in flight, recovery. */
class SchedulerTest {
    private final InMemoryRequests store = new InMemoryRequests();
    private final Recorder out = new Recorder();
    private final ManualClock clock = new ManualClock();
    private final FakeShards shards = new FakeShards();

    @Test
    void aRequestIsPrefilledInSegmentsOverTheShardsThenDecodedToItsLastToken() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SPS2, 2, 20), store, out, clock);
        Admitted a = request("r", 20, 4);
        scheduler.admit(a);

        List<ShardStep> prefill = out.drainSteps();
        int[] bounds = SEGMENTER.split(a.promptTokens.length, 2);
        assertEquals(bounds.length - 1, prefill.size(), "one step per segment");
        int[] joined = new int[0];
        for (int i = 0; i < prefill.size(); i++) {
            ShardStep step = prefill.get(i);
            assertTrue(step.prefill);
            StepSeq w = step.seqs[0];
            assertEquals(i, w.peerIndex);
            assertEquals(bounds[i], w.startPos);
            assertEquals(i == prefill.size() - 1, w.sample, "the last segment samples");
            joined = concat(joined, w.tokens);
        }
        assertArrayEquals(a.promptTokens, joined, "the segments are the prompt, in order");

        out.steps.addAll(prefill);
        shards.runAll(out.steps, scheduler::onResult);
        assertArrayEquals(expectedTokens(a), shards.tokens("r"));
        List<ShardStep> decode = out.allSteps.stream().filter(s -> !s.prefill).toList();
        assertEquals(a.generation.maxTokens - 1, decode.stream().mapToLong(s -> s.iteration).distinct().count(), "one decode iteration per later token");
        for (ShardStep step : decode) {
            assertArrayEquals(new int[] {0, 1}, step.members, "both shards hold KV of the request");
            StepSeq w = step.seqs[0];
            assertEquals(FakeShards.token("r", w.outputIndex - 1), w.tokens[0], "decode feeds the token sampled last");
            assertEquals(a.promptTokens.length + w.outputIndex - 1, w.startPos);
        }
        assertTrue(store.states.isEmpty(), "a finished request leaves no state");
        assertEquals(0, scheduler.iterationsInFlight());
    }

    @Test
    void aFinishedRequestIsReleasedOnItsShardsWithTheNextStepOfEachPipeline() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SPS2, 2, 30), store, out, clock);
        scheduler.admit(request("short", 12, 2));
        scheduler.admit(request("long", 12, 6));
        int stepsAtFinish = -1;
        while (!out.steps.isEmpty()) {
            int issued = out.allSteps.size();
            scheduler.onResult(shards.answer(out.steps.poll()));
            if (!store.states.containsKey("short") && stepsAtFinish < 0) {
                stepsAtFinish = issued;
                scheduler.admit(request("late", 12, 2));
            }
        }
        List<ShardStep> after = out.allSteps.subList(stepsAtFinish, out.allSteps.size());
        for (boolean prefill : new boolean[] {false, true}) {
            for (int shard = 0; shard < 2; shard++) {
                int s = shard;
                List<ShardStep> toShard = after.stream().filter(x -> x.prefill == prefill && x.shard == s).toList();
                assertFalse(toShard.isEmpty(), "a later " + (prefill ? "prefill" : "decode") + " step goes to shard " + shard);
                assertArrayEquals(new String[] {"short"}, toShard.get(0).released, "the first one tells the shard to drop the request");
                toShard.subList(1, toShard.size()).forEach(x -> assertFalse(Arrays.asList(x.released).contains("short"), "and only the first"));
            }
        }
    }

    @Test
    void aRequestThatCanNeverFitIsRejectedWithTheJobsCapacity() throws Exception {
        JobSettings settings = settings(JobSettings.Mode.SPS2, 2, 10);
        Scheduler scheduler = scheduler(settings, store, out, clock);
        long capacity = (long) settings.shards() * (settings.kvBlocks() - 1) * settings.blockSize();
        Admitted big = request("big", (int) capacity, 1);
        scheduler.admit(big);
        assertEquals(1, out.notices.size());
        TokenEvent notice = out.notices.get(0);
        assertEquals(FinishReason.REJECTED, notice.getFinishReason());
        assertEquals(-1, notice.getIndex());
        assertTrue(notice.getFinished());
        assertTrue(notice.getError().contains("needs KV for " + (capacity + 1) + " tokens but the job holds at most " + capacity), notice.getError());
        assertTrue(out.allSteps.isEmpty());
        assertTrue(store.states.isEmpty());

        scheduler.admit(request("fits", (int) capacity - 8, 8));
        assertEquals(1, out.notices.size(), "a request of exactly the capacity is admitted");
        assertTrue(store.states.containsKey("fits"));
    }

    @Test
    void aRetryRunsOnceAndADifferentRequestUnderARunningIdIsRefusedWithoutEndingIt() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SPS2, 2, 20), store, out, clock);
        Admitted original = request("r", 10, 3);
        scheduler.admit(original);
        int steps = out.allSteps.size();
        Admitted retry = request("r", 10, 3);
        retry.priority = 7;
        scheduler.admit(retry);
        assertEquals(1, out.duplicates);
        assertEquals(steps, out.allSteps.size(), "the copy starts nothing");
        assertTrue(out.notices.isEmpty());

        Admitted other = request("r", 10, 5);
        scheduler.admit(other);
        assertEquals(1, out.conflicts);
        TokenEvent notice = out.notices.get(0);
        assertEquals(FinishReason.ID_CONFLICT, notice.getFinishReason());
        assertEquals(-2, notice.getIndex(), "a notice that consumers of the running stream skip");
        assertFalse(notice.getFinished(), "it does not end the running request's stream");

        shards.runAll(out.steps, scheduler::onResult);
        assertArrayEquals(expectedTokens(original), shards.tokens("r"), "the running request goes on as it was");
    }

    @Test
    void resultsOfIterationsItDidNotIssueAreIgnored() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SPS2, 2, 20), store, out, clock);
        scheduler.admit(request("r", 10, 3));
        ShardStep real = out.steps.peek();
        StepResult stale = shards.answer(real);
        stale.iteration = real.iteration - 1;
        RequestState before = store.get("r");
        int outputs = before.outputs();
        scheduler.onResult(stale);
        assertEquals(outputs, store.get("r").outputs(), "no token taken from a stale result");
        assertEquals(1, scheduler.iterationsInFlight());
        assertEquals(out.allSteps.size(), out.steps.size(), "nothing new issued");
    }

    @Test
    void anIterationsTimingsComeFromTheClockAndWhatTheShardsReport() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SPS2, 2, 20), store, out, clock);
        Admitted a = request("r", 20, 2);
        scheduler.admit(a);
        List<ShardStep> prefill = out.drainSteps();
        long issued = clock.nanos();
        assertTrue(prefill.stream().allMatch(s -> s.issuedNanos == issued && s.issuedAtMs == clock.millis()));
        double[] hopIn = new double[1];
        double[] hopOut = new double[1];
        double[] shard = new double[1];
        double[] compute = new double[1];
        long bytes = 0;
        for (int i = 0; i < prefill.size(); i++) {
            clock.advanceMs(3 + i);
            StepResult r = shards.answer(prefill.get(i));
            r.startedNanos = issued + (i + 1) * 400_000L;
            r.endedNanos = clock.nanos() - 250_000L * (i + 1);
            r.computeSeconds = 0.001 * (i + 1);
            r.bytesSent = 100L * (i + 1);
            hopIn[0] = Math.max(hopIn[0], (r.startedNanos - issued) / 1e6);
            hopOut[0] = Math.max(hopOut[0], (clock.nanos() - r.endedNanos) / 1e6);
            shard[0] = Math.max(shard[0], (r.endedNanos - r.startedNanos) / 1e6);
            compute[0] = Math.max(compute[0], r.computeSeconds * 1e3);
            bytes += r.bytesSent;
            scheduler.onResult(r);
            assertEquals(i == prefill.size() - 1 ? 1 : 0, out.iterations.size(), "the iteration is done with its last shard's result");
        }
        assertEquals(1, out.iterations.size());
        StepTimings.Step t = out.iterations.get(0);
        assertTrue(t.prefill());
        assertEquals(a.promptTokens.length, t.rows());
        assertEquals((clock.nanos() - issued) / 1e6, t.wallMs(), 1e-9);
        assertEquals(compute[0], t.computeMs(), 1e-9);
        assertEquals(bytes, t.bytes());
        assertEquals(hopIn[0], t.hopInMs(), 1e-9);
        assertEquals(hopOut[0], t.hopOutMs(), 1e-9);
        assertEquals(shard[0], t.shardMs(), 1e-9);
        assertEquals(0, t.gapMs(), "prefill has no decode gap");
    }

    @Test
    void theWatchdogIsAskedForOnlyWhileRequestsAreHeld() throws Exception {
        Scheduler scheduler = scheduler(settings(JobSettings.Mode.SARATHI, 1, 20), store, out, clock);
        scheduler.onTimer();
        assertEquals(0, out.wakeUps, "nothing to watch");
        scheduler.admit(request("r", 6, 2));
        assertTrue(out.wakeUps > 0);
        shards.runAll(out.steps, scheduler::onResult);
        int wakeUps = out.wakeUps;
        scheduler.onTimer();
        assertEquals(wakeUps, out.wakeUps, "no watchdog once every request is done");
    }

    @Test
    void afterARestoreRunningRequestsArePrefilledAgainFromTheirHistory() throws Exception {
        JobSettings settings = settings(JobSettings.Mode.SPS2, 2, 20);
        Scheduler before = scheduler(settings, store, out, clock);
        Admitted first = request("first", 12, 6);
        Admitted second = request("second", 9, 6);
        before.admit(first);
        before.admit(second);
        while (shards.sampled.getOrDefault("first", Map.of()).size() < 3) {
            before.onResult(shards.answer(out.steps.poll()));
        }
        InMemoryRequests restored = checkpoint(store);
        Recorder afterOut = new Recorder();
        Scheduler after = scheduler(settings, restored, afterOut, clock);
        assertTrue(afterOut.allSteps.isEmpty(), "nothing happens before the first input or timer");

        after.onTimer();
        assertEquals(1, afterOut.recoveries.size());
        assertArrayEquals(new int[] {0, 2}, afterOut.recoveries.get(0), "both running requests are prefilled again");
        RequestState firstState = restored.get("first");
        int[] history = concat(first.promptTokens, Arrays.copyOf(shards.tokens("first"), firstState.outputs()));
        int[] prefilled = new int[0];
        for (ShardStep s : afterOut.steps) {
            assertTrue(s.prefill);
            assertEquals("first", s.seqs[0].requestId, "the earlier arrival first");
            assertEquals(firstState.outputs(), s.seqs[0].outputIndex, "its next token continues the stream");
            prefilled = concat(prefilled, s.seqs[0].tokens);
        }
        assertArrayEquals(history, prefilled, "the prompt and the tokens generated before the restore");

        after.admit(request("third", 5, 2));
        assertEquals(2, restored.get("third").arrival, "arrival order continues after the restored requests");
        shards.runAll(afterOut.steps, after::onResult);
        assertArrayEquals(expectedTokens(first), shards.tokens("first"));
        assertArrayEquals(expectedTokens(second), shards.tokens("second"));
    }

    @Test
    void withSnapshotKvADecodingRequestResumesInPlaceAfterItsRestoreStep() throws Exception {
        JobSettings settings = settings("unused", JobSettings.Mode.SPS2, 2, 20, JobSettings.AppendPolicy.TAIL, JobSettings.KvRecovery.SNAPSHOT);
        Scheduler before = scheduler(settings, store, out, clock);
        Admitted a = request("r", 20, 8);
        before.admit(a);
        while (out.steps.stream().allMatch(s -> s.prefill) || shards.sampled.getOrDefault("r", Map.of()).size() < 3) {
            before.onResult(shards.answer(out.steps.poll()));
        }
        List<ShardStep> inFlight = out.drainSteps();
        assertTrue(inFlight.stream().noneMatch(s -> s.prefill), "a decode step is in flight at the checkpoint");
        InMemoryRequests restored = checkpoint(store);

        Recorder afterOut = new Recorder();
        Scheduler after = scheduler(settings, restored, afterOut, clock);
        after.onTimer();
        assertArrayEquals(new int[] {1, 0}, afterOut.recoveries.get(0), "resumed, not prefilled again");
        List<ShardStep> restore = afterOut.drainSteps();
        assertEquals(inFlight.size(), restore.size(), "one restore step per shard of the request");
        for (ShardStep s : restore) {
            assertTrue(s.restoreOnly && s.prefill, "restore steps go to the prefill pipeline");
            StepSeq was = seqOn(inFlight, s.shard);
            assertEquals(0, s.seqs[0].rows());
            assertEquals(was.kvBefore, s.seqs[0].kvBefore, "the KV of the step in flight is rolled back");
            assertArrayEquals(was.blockTable, s.seqs[0].blockTable, "the request keeps its blocks");
        }
        after.onResult(shards.answer(restore.get(0)));
        assertTrue(afterOut.steps.isEmpty(), "decoding waits until every shard has put the KV back");
        after.onResult(shards.answer(restore.get(1)));
        List<ShardStep> again = afterOut.drainSteps();
        assertEquals(inFlight.size(), again.size());
        for (ShardStep s : again) {
            StepSeq was = seqOn(inFlight, s.shard);
            StepSeq now = s.seqs[0];
            assertArrayEquals(was.tokens, now.tokens, "the step in flight is issued again");
            assertEquals(was.startPos, now.startPos);
            assertEquals(was.kvBefore, now.kvBefore);
            assertEquals(was.appendKv, now.appendKv);
            assertArrayEquals(s.members, inFlight.get(0).members);
        }
        afterOut.steps.addAll(again);
        shards.runAll(afterOut.steps, after::onResult);
        assertArrayEquals(expectedTokens(a), shards.tokens("r"));
    }

    private static StepSeq seqOn(List<ShardStep> steps, int shard) {
        return steps.stream().filter(s -> s.shard == shard).findFirst().orElseThrow().seqs[0];
    }

    /** The store as a checkpoint keeps it: every state through its Flink serializer. */
    private static InMemoryRequests checkpoint(InMemoryRequests store) throws Exception {
        TypeSerializer<RequestState> serializer = TypeInformation.of(RequestState.class).createSerializer(new SerializerConfigImpl());
        InMemoryRequests copy = new InMemoryRequests();
        for (Map.Entry<String, RequestState> e : store.entries()) {
            DataOutputSerializer bytes = new DataOutputSerializer(256);
            serializer.serialize(e.getValue(), bytes);
            copy.put(e.getKey(), serializer.deserialize(new DataInputDeserializer(bytes.getCopyOfBuffer())));
        }
        return copy;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
