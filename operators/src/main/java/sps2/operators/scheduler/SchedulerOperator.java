package sps2.operators.scheduler;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import org.apache.flink.api.common.operators.MailboxExecutor;
import org.apache.flink.api.common.state.MapState;
import org.apache.flink.api.common.state.MapStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.Histogram;
import org.apache.flink.runtime.metrics.DescriptiveStatisticsHistogram;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.InternalTimer;
import org.apache.flink.streaming.api.operators.InternalTimerService;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.operators.Triggerable;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.mailbox.TaskMailbox;
import org.apache.flink.util.OutputTag;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.operators.JobSettings;
import sps2.operators.feedback.FeedbackChannel;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.placement.Segmenter;
import sps2.schemas.TokenEvent;

/**
 * The scheduler's Flink operator: one subtask that runs the {@link Scheduler} on its task thread. Admitted requests
 * are its input; the shards' step results come through the in-JVM feedback edge ({@link FeedbackChannel}) into this
 * task's mailbox. It gives the scheduler its keyed state (the request states, key 0), a processing-time watchdog,
 * its outputs (decode or mixed steps on the main output, sps2 prefill steps and notices on side outputs), its
 * metrics and the job's {@link sps2.operators.JobHooks}.
 */
public final class SchedulerOperator extends AbstractStreamOperator<ShardStep>
        implements OneInputStreamOperator<Admitted, ShardStep>, Triggerable<Integer, VoidNamespace> {
    private static final Logger LOG = LoggerFactory.getLogger(SchedulerOperator.class);
    public static final OutputTag<TokenEvent> REJECTIONS = new OutputTag<>("rejections", TypeInformation.of(TokenEvent.class));
    /** sps2 mode: prefill iterations go to their own pipeline of shard operators, so decode never queues behind them. */
    public static final OutputTag<ShardStep> PREFILL_STEPS = new OutputTag<>("prefill-steps", TypeInformation.of(ShardStep.class));
    static final long WATCHDOG_MS = 100;

    private final JobSettings settings;

    private transient Scheduler scheduler;
    private transient InternalTimerService<VoidNamespace> timers;
    private transient boolean timerSet;
    private transient Histogram decodeWallMs;
    private transient Histogram decodeOverheadMs;
    private transient Counter duplicatesIgnored;
    private transient Counter idConflicts;
    /** Checkpoints taken and not yet complete: how many requests were decoding when each was taken. */
    private transient TreeMap<Long, Integer> decodingAtCheckpoint;

    public SchedulerOperator(JobSettings settings) {
        this.settings = settings;
    }

    @Override
    public void open() throws Exception {
        super.open();
        MapState<String, RequestState> requests = getKeyedStateStore().getMapState(new MapStateDescriptor<>("requests", Types.STRING,
                TypeInformation.of(RequestState.class)));
        timers = getInternalTimerService("scheduler-watchdog", VoidNamespaceSerializer.INSTANCE, this);
        decodeWallMs = getMetricGroup().histogram("decodeStepWallMs", new DescriptiveStatisticsHistogram(1000));
        decodeOverheadMs = getMetricGroup().histogram("decodeStepOverheadMs", new DescriptiveStatisticsHistogram(1000));
        duplicatesIgnored = getMetricGroup().counter("duplicateRequestsIgnored");
        idConflicts = getMetricGroup().counter("requestIdConflicts");
        // the segment cost model needs the model's shape, read from its header here rather than when the graph is built
        ModelConfig config = ModelLoader.load(Path.of(settings.modelPath())).config();
        scheduler = Scheduler.create(settings, new Segmenter(config, settings.minSegment()), new KeyedRequests(requests), new Outputs(),
                new Metrics(), Scheduler.Clock.SYSTEM);
        getMetricGroup().gauge("iterationsInFlight", (Gauge<Integer>) scheduler::iterationsInFlight);
        MailboxExecutor mailbox = getContainingTask().getMailboxExecutorFactory().createExecutor(TaskMailbox.MIN_PRIORITY);
        decodingAtCheckpoint = new TreeMap<>();
        FeedbackChannel.register(settings.runtimeId(), r -> mailbox.execute(() -> onResult(r), "step result"));
        LOG.info("The scheduler runs in {} mode over {} shards with {} KV blocks of {} tokens each.", settings.mode(), settings.shards(),
                settings.kvBlocks(), settings.blockSize());
    }

    @Override
    public void close() throws Exception {
        FeedbackChannel.unregister(settings.runtimeId());
        super.close();
    }

    @Override
    public void processElement(StreamRecord<Admitted> element) throws Exception {
        scheduler.admit(element.getValue());
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        setCurrentKey(0);
        decodingAtCheckpoint.put(context.getCheckpointId(), scheduler.decodingRequests());
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) throws Exception {
        super.notifyCheckpointComplete(checkpointId);
        Integer decoding = decodingAtCheckpoint.get(checkpointId);
        decodingAtCheckpoint.headMap(checkpointId, true).clear(); // older ones were subsumed
        if (decoding != null) {
            LOG.debug("Checkpoint {} is complete; {} requests were decoding when it was taken.", checkpointId, decoding);
            settings.hooks().checkpointCompleted(checkpointId, decoding);
        }
    }

    @Override
    public void onProcessingTime(InternalTimer<Integer, VoidNamespace> timer) throws Exception {
        timerSet = false;
        scheduler.onTimer();
    }

    @Override
    public void onEventTime(InternalTimer<Integer, VoidNamespace> timer) {
    }

    private void onResult(StepResult r) throws Exception {
        setCurrentKey(0); // the request states live under the one key of the scheduler's input
        scheduler.onResult(r);
    }

    /** The request states in this operator's keyed state. */
    private static final class KeyedRequests implements RequestStore {
        private final MapState<String, RequestState> state;

        KeyedRequests(MapState<String, RequestState> state) {
            this.state = state;
        }

        @Override
        public RequestState get(String id) throws Exception {
            return state.get(id);
        }

        @Override
        public void put(String id, RequestState s) throws Exception {
            state.put(id, s);
        }

        @Override
        public void remove(String id) throws Exception {
            state.remove(id);
        }

        @Override
        public Iterable<Map.Entry<String, RequestState>> entries() throws Exception {
            return state.entries();
        }
    }

    /** The scheduler's decisions onto this operator's outputs and timers. */
    private final class Outputs implements Scheduler.Output {
        @Override
        public void step(ShardStep step) {
            if (step.prefill) {
                output.collect(PREFILL_STEPS, new StreamRecord<>(step));
            } else {
                output.collect(new StreamRecord<>(step));
            }
        }

        @Override
        public void notice(TokenEvent event) {
            output.collect(REJECTIONS, new StreamRecord<>(event));
        }

        @Override
        public void wakeUpLater() {
            if (!timerSet) {
                timers.registerProcessingTimeTimer(VoidNamespace.INSTANCE, getProcessingTimeService().getCurrentProcessingTime() + WATCHDOG_MS);
                timerSet = true;
            }
        }
    }

    /** What the scheduler observes, as this operator's metrics. */
    private final class Metrics implements Scheduler.Listener {
        @Override
        public void duplicateIgnored() {
            duplicatesIgnored.inc();
        }

        @Override
        public void idConflict() {
            idConflicts.inc();
        }

        @Override
        public void recovered(int resumedFromSnapshot, int prefilledAgain) {
            settings.hooks().recovered(resumedFromSnapshot, prefilledAgain);
        }

        @Override
        public void iterationDone(StepTimings.Step step) {
            settings.hooks().iterationDone(step);
            if (!step.prefill()) {
                decodeWallMs.update(Math.round(step.wallMs() * 1000));
                decodeOverheadMs.update(Math.round(Math.max(0, step.wallMs() - step.computeMs()) * 1000));
            }
        }
    }
}
