package sps2.operators.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static sps2.operators.scheduler.SchedulerFixtures.expectedTokens;
import static sps2.operators.scheduler.SchedulerFixtures.request;
import static sps2.operators.scheduler.SchedulerFixtures.settings;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Queue;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.mailbox.Mail;
import org.apache.flink.streaming.runtime.tasks.mailbox.TaskMailbox;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.junit.jupiter.api.Test;

import sps2.operators.JobHooks;
import sps2.operators.JobSettings;
import sps2.operators.SharedRef;
import sps2.operators.feedback.FeedbackChannel;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.scheduler.SchedulerFixtures.FakeShards;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * The scheduler operator in Flink's keyed operator test harness: its outputs, its keyed state through a snapshot and
 * a restore, its processing-time watchdog, and the feedback edge into its mailbox, with stand-in shards answering.
 */
class SchedulerOperatorTest {
    private final FakeShards shards = new FakeShards();

    @Test
    void prefillStepsGoToTheirOwnPipelineDecodeStepsToTheMainOutputAndRejectionsAside() throws Exception {
        try (Counts counts = new Counts(); Harness job = new Harness(sps2(JobSettings.KvRecovery.RECOMPUTE).withHooks(counts), null)) {
            Admitted a = request("r", 20, 3);
            job.admit(a);
            job.admit(request("huge", 500, 10));
            assertTrue(job.main.isEmpty(), "no decode before the prefill");
            assertTrue(!job.prefill.isEmpty() && job.prefill.stream().allMatch(s -> s.prefill));
            assertEquals(1, job.rejections.size());
            assertEquals("huge", job.rejections.get(0).getRequestId());
            assertEquals(FinishReason.REJECTED, job.rejections.get(0).getFinishReason());

            job.runAll();
            assertArrayEquals(expectedTokens(a), shards.tokens("r"));
            assertTrue(!job.main.isEmpty() && job.main.stream().noneMatch(s -> s.prefill), "decode steps on the main output");
            long iterations = job.allSteps().stream().mapToLong(s -> s.iteration).distinct().count();
            assertEquals(iterations, counts.iterationsDone(), "the hooks see every iteration end");
        }
    }

    @Test
    void sarathiSendsEveryStepToTheMainOutput() throws Exception {
        JobSettings settings = settings(model(), JobSettings.Mode.SARATHI, 2, 20, JobSettings.AppendPolicy.TAIL, JobSettings.KvRecovery.RECOMPUTE);
        try (Harness job = new Harness(settings, null)) {
            Admitted a = request("r", 20, 3);
            job.admit(a);
            job.runAll();
            assertArrayEquals(expectedTokens(a), shards.tokens("r"));
            assertTrue(job.prefill.isEmpty());
            assertTrue(job.main.size() >= 3, "the prompt's chunks and the decodes");
        }
    }

    @Test
    void aRestoredSchedulerBringsItsRequestsBackOnItsWatchdogAndIgnoresResultsFromBefore() throws Exception {
        JobSettings settings = sps2(JobSettings.KvRecovery.RECOMPUTE);
        Admitted first = request("first", 16, 6);
        Admitted second = request("second", 9, 5);
        OperatorSubtaskState checkpoint;
        List<ShardStep> inFlight;
        try (Harness before = new Harness(settings, null)) {
            before.admit(first);
            before.admit(second);
            while (shards.sampled.getOrDefault("first", Map.of()).size() < 2) {
                before.answer();
            }
            checkpoint = before.h.snapshot(1, before.h.getProcessingTime());
            inFlight = new ArrayList<>(before.pending);
        }
        int[] generated = shards.tokens("first");

        try (Counts counts = new Counts(); Harness after = new Harness(settings.withHooks(counts), checkpoint)) {
            assertEquals(1, after.h.numProcessingTimeTimers(), "the watchdog timer is part of the checkpoint");
            after.pending.addAll(inFlight);
            after.answer();
            assertTrue(after.allSteps().isEmpty(), "a result of an iteration from before the restore is ignored");
            after.pending.clear();

            after.time(after.h.getProcessingTime() + SchedulerOperator.WATCHDOG_MS);
            assertEquals(0, counts.resumed());
            assertEquals(2, counts.prefilledAgain(), "both running requests are prefilled again");
            int[] prefilled = after.prefill.stream().flatMap(s -> Arrays.stream(s.seqs)).flatMapToInt(w -> Arrays.stream(w.tokens)).toArray();
            int[] history = Arrays.copyOf(first.promptTokens, first.promptTokens.length + generated.length);
            System.arraycopy(generated, 0, history, first.promptTokens.length, generated.length);
            assertArrayEquals(history, prefilled, "the first request's prompt and the tokens it had before the checkpoint");
            assertTrue(after.prefill.stream().allMatch(s -> s.seqs[0].outputIndex == generated.length));

            after.runAll();
            assertArrayEquals(expectedTokens(first), shards.tokens("first"));
            assertArrayEquals(expectedTokens(second), shards.tokens("second"));
        }
    }

    @Test
    void withSnapshotKvTheRestoreStepGoesToThePrefillPipelineAndDecodingWaitsForIt() throws Exception {
        JobSettings settings = sps2(JobSettings.KvRecovery.SNAPSHOT);
        Admitted a = request("r", 20, 8);
        OperatorSubtaskState checkpoint;
        try (Harness before = new Harness(settings, null)) {
            before.admit(a);
            while (shards.sampled.getOrDefault("r", Map.of()).size() < 3) {
                before.answer();
            }
            checkpoint = before.h.snapshot(1, before.h.getProcessingTime());
        }
        try (Counts counts = new Counts(); Harness after = new Harness(settings.withHooks(counts), checkpoint)) {
            after.time(after.h.getProcessingTime() + SchedulerOperator.WATCHDOG_MS);
            assertEquals(1, counts.resumed());
            assertTrue(after.main.isEmpty(), "no decode before the KV is back");
            assertEquals(2, after.prefill.size());
            assertTrue(after.prefill.stream().allMatch(s -> s.restoreOnly && s.seqs[0].requestId.equals("r")));
            after.answer();
            assertTrue(after.main.isEmpty(), "nor before every shard has put it back");
            after.runAll();
            assertArrayEquals(expectedTokens(a), shards.tokens("r"));
        }
    }

    @Test
    void theWatchdogRunsWhileTheSchedulerHoldsRequests() throws Exception {
        try (Harness job = new Harness(sps2(JobSettings.KvRecovery.RECOMPUTE), null)) {
            assertEquals(0, job.h.numProcessingTimeTimers());
            job.admit(request("r", 10, 2));
            assertEquals(1, job.h.numProcessingTimeTimers());
            job.time(job.h.getProcessingTime() + SchedulerOperator.WATCHDOG_MS);
            assertEquals(1, job.h.numProcessingTimeTimers(), "set again: the request still runs");
            job.runAll();
            job.time(job.h.getProcessingTime() + SchedulerOperator.WATCHDOG_MS);
            assertEquals(0, job.h.numProcessingTimeTimers(), "not set again once no request is left");
        }
    }

    private static JobSettings sps2(JobSettings.KvRecovery recovery) {
        return settings(model(), JobSettings.Mode.SPS2, 2, 20, JobSettings.AppendPolicy.TAIL, recovery);
    }

    /** The scheduler reads the model's shape when it opens. */
    private static String model() {
        Path p = Path.of(System.getenv().getOrDefault("SPS2_SHARED", "../../shared"), "models", "stories260K.gguf");
        assumeTrue(Files.exists(p), "Skipped: " + p + " is absent (no shared data beside the checkout).");
        return p.toAbsolutePath().toString();
    }

    /** The operator in the harness, its outputs, and the steps the stand-in shards have not answered yet. */
    private final class Harness implements AutoCloseable {
        final JobSettings settings;
        final KeyedOneInputStreamOperatorTestHarness<Integer, Admitted, ShardStep> h;
        final Deque<ShardStep> pending = new ArrayDeque<>();
        final List<ShardStep> main = new ArrayList<>();
        final List<ShardStep> prefill = new ArrayList<>();
        final List<TokenEvent> rejections = new ArrayList<>();

        Harness(JobSettings settings, OperatorSubtaskState restored) throws Exception {
            this.settings = settings;
            h = new KeyedOneInputStreamOperatorTestHarness<>(new SchedulerOperator(settings), a -> 0, Types.INT);
            if (restored != null) {
                h.initializeState(restored);
            }
            h.open();
        }

        void admit(Admitted a) throws Exception {
            h.processElement(new StreamRecord<>(a));
            collect();
        }

        /** The first step not yet answered: its shard's result goes down the feedback edge, and the mailbox runs. */
        void answer() throws Exception {
            assertTrue(FeedbackChannel.deliver(settings.runtimeId(), shards.answer(pending.poll())), "the scheduler listens on the edge");
            TaskMailbox mailbox = h.getTaskMailbox();
            for (Optional<Mail> mail = mailbox.tryTake(TaskMailbox.MIN_PRIORITY); mail.isPresent(); mail = mailbox.tryTake(TaskMailbox.MIN_PRIORITY)) {
                mail.get().run();
            }
            collect();
        }

        void runAll() throws Exception {
            for (int i = 0; !pending.isEmpty(); i++) {
                assertTrue(i < 10_000, "the scheduler keeps issuing steps");
                answer();
            }
        }

        void time(long processingTime) throws Exception {
            h.setProcessingTime(processingTime);
            collect();
        }

        List<ShardStep> allSteps() {
            List<ShardStep> all = new ArrayList<>(prefill);
            all.addAll(main);
            return all;
        }

        private void collect() {
            for (Object o : h.getOutput()) {
                if (o instanceof StreamRecord<?> r) {
                    main.add((ShardStep) r.getValue());
                    pending.add((ShardStep) r.getValue());
                }
            }
            h.getOutput().clear();
            drain(h.getSideOutput(SchedulerOperator.PREFILL_STEPS), s -> {
                prefill.add(s);
                pending.add(s);
            });
            drain(h.getSideOutput(SchedulerOperator.REJECTIONS), rejections::add);
        }

        private <T> void drain(Queue<StreamRecord<T>> records, java.util.function.Consumer<T> to) {
            if (records != null) {
                for (StreamRecord<T> r = records.poll(); r != null; r = records.poll()) {
                    to.accept(r.getValue());
                }
            }
        }

        @Override
        public void close() throws Exception {
            h.close();
        }
    }

    /** Hooks that count what the scheduler reports: iterations done, requests resumed and prefilled again. */
    private static final class Counts implements JobHooks, AutoCloseable {
        private final SharedRef<AtomicIntegerArray> counts = SharedRef.of(new AtomicIntegerArray(3), "scheduler counts");

        @Override
        public void iterationDone(StepTimings.Step step) {
            counts.get().incrementAndGet(0);
        }

        @Override
        public void recovered(int resumedFromSnapshot, int prefilledAgain) {
            counts.get().addAndGet(1, resumedFromSnapshot);
            counts.get().addAndGet(2, prefilledAgain);
        }

        int iterationsDone() {
            return counts.get().get(0);
        }

        int resumed() {
            return counts.get().get(1);
        }

        int prefilledAgain() {
            return counts.get().get(2);
        }

        @Override
        public void close() {
            counts.close();
        }
    }
}
