package sps2.job;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

import sps2.operators.JobSettings;
import sps2.operators.ShardKeys;
import sps2.operators.feedback.FeedbackTail;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.ParsedRequest;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepResult;
import sps2.operators.prepare.RequestPreparer;
import sps2.operators.scheduler.SchedulerOperator;
import sps2.operators.shard.ShardOperator;
import sps2.schemas.TokenEvent;

/**
 * The sps2 job graph:
 *
 * <pre>
 * Kafka requests ─► validate+tokenize ─┬─► dead letters (Kafka)
 *                                      ├─► rejections ─────────────────────────────┐
 *                                      ▼                                           │
 *                          scheduler (1 subtask) ─► shard (keyed by shard, one subtask each) ─► tokens (Kafka)
 *                               ▲                     every layer of the shard's step;          │
 *                               │                     peers exchange on the device              │
 *                               └──────────── feedback tail ◄── step results ◄─────────────────┘
 * </pre>
 *
 * A decode step crosses two Flink hops (scheduler to shard, shard to the feedback tail, whose hand-off to the
 * scheduler is in-JVM) whatever the SP degree and the model depth; one where the shards share the scheduler's JVM,
 * since a shard then hands its result to the scheduler itself. sps2 mode runs two shard operators over the
 * same shards, one for prefill iterations and one for decode, so a decode step never waits behind a long
 * prefill. Every operator has a stable uid so state maps across restarts. Building the graph reads nothing of
 * the model: the operators load it when they open, so {@code flink run} works from a machine without it.
 */
public final class Sps2Job {
    /** Max parallelism of the shard operators: shard keys are computed for it. */
    public static final int MAX_PARALLELISM = 128;

    private Sps2Job() {
    }

    public static void build(StreamExecutionEnvironment env, JobSettings settings, KafkaIo io) {
        int[] shardKeys = ShardKeys.keys(settings.shards(), MAX_PARALLELISM);

        DataStream<ParsedRequest> parsed = env.fromSource(io.requestSource(), WatermarkStrategy.noWatermarks(), "requests from Kafka")
                .uid("kafka-requests").setParallelism(1);
        SingleOutputStreamOperator<Admitted> admitted = parsed.process(new RequestPreparer(settings))
                .returns(Admitted.class).uid("prepare").name("validate and tokenize").setParallelism(1);
        admitted.getSideOutput(RequestPreparer.DEAD_LETTERS).sinkTo(io.deadLetterSink()).uid("dead-letters").name("dead letters to Kafka")
                .setParallelism(1);

        SingleOutputStreamOperator<ShardStep> steps = admitted.keyBy(a -> 0, Types.INT)
                .transform("scheduler", TypeInformation.of(ShardStep.class), new SchedulerOperator(settings))
                .uid("scheduler").setParallelism(1).setMaxParallelism(1);
        steps.getTransformation().setCoLocationGroupKey("sps2-scheduler");

        String first = settings.sarathi() ? "mixed" : "decode";
        SingleOutputStreamOperator<StepResult> results = shards(steps, settings, first, !settings.sarathi(), shardKeys);
        DataStream<TokenEvent> shardTokens = results.getSideOutput(ShardOperator.TOKENS);
        DataStream<StepResult> allResults = results;
        if (!settings.sarathi()) {
            SingleOutputStreamOperator<StepResult> prefill = shards(steps.getSideOutput(SchedulerOperator.PREFILL_STEPS), settings, "prefill", false,
                    shardKeys);
            shardTokens = shardTokens.union(prefill.getSideOutput(ShardOperator.TOKENS));
            allResults = allResults.union(prefill);
        }

        DataStream<TokenEvent> tokens = shardTokens
                .union(admitted.getSideOutput(RequestPreparer.ERRORS), steps.getSideOutput(SchedulerOperator.REJECTIONS));
        tokens.sinkTo(io.tokenSink()).uid("token-sink").name("tokens to Kafka").setParallelism(1);

        SingleOutputStreamOperator<Void> tail = allResults.keyBy(r -> 0, Types.INT).process(new FeedbackTail(settings.runtimeId()))
                .returns(Types.VOID).uid("feedback-tail").name("feedback to scheduler").setParallelism(1).setMaxParallelism(1);
        tail.getTransformation().setCoLocationGroupKey("sps2-scheduler");
    }

    /**
     * The Flink network hops one decode step crosses in the job these settings build, read off its job graph: the
     * edges between tasks on the way from the scheduler's task through the decode shards to the feedback tail's
     * (whose hand-off back to the scheduler is in-JVM). Builds the graph only; nothing runs or connects.
     */
    public static int decodeStepHops(JobSettings settings) {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        build(env, settings, new KafkaIo("localhost:9", "hops", sps2.operators.io.KafkaTopics.defaults()));
        org.apache.flink.runtime.jobgraph.JobGraph graph = env.getStreamGraph().getJobGraph();
        org.apache.flink.runtime.jobgraph.JobVertex from = null;
        org.apache.flink.runtime.jobgraph.JobVertex to = null;
        for (org.apache.flink.runtime.jobgraph.JobVertex v : graph.getVertices()) {
            if (v.getName().contains("scheduler")) {
                from = v;
            }
            if (v.getName().contains("feedback to scheduler")) {
                to = v;
            }
        }
        if (from == null || to == null) {
            throw new IllegalStateException("The job graph has no scheduler or feedback tail task");
        }
        // breadth-first from the scheduler's task, not through the prefill pipeline's
        java.util.Map<org.apache.flink.runtime.jobgraph.JobVertex, Integer> hops = new java.util.HashMap<>();
        java.util.ArrayDeque<org.apache.flink.runtime.jobgraph.JobVertex> queue = new java.util.ArrayDeque<>();
        hops.put(from, 0);
        queue.add(from);
        while (!queue.isEmpty()) {
            org.apache.flink.runtime.jobgraph.JobVertex v = queue.poll();
            if (v == to) {
                return hops.get(v);
            }
            for (org.apache.flink.runtime.jobgraph.IntermediateDataSet out : v.getProducedDataSets()) {
                for (org.apache.flink.runtime.jobgraph.JobEdge e : out.getConsumers()) {
                    org.apache.flink.runtime.jobgraph.JobVertex next = e.getTarget();
                    if (!next.getName().contains("prefill shards") && !hops.containsKey(next)) {
                        hops.put(next, hops.get(v) + 1);
                        queue.add(next);
                    }
                }
            }
        }
        throw new IllegalStateException("The job graph has no path from the scheduler to the feedback tail");
    }

    /** One shard operator over the steps of one pipeline, one subtask per shard. */
    private static SingleOutputStreamOperator<StepResult> shards(DataStream<ShardStep> steps, JobSettings settings, String pipeline,
            boolean latencyCritical, int[] shardKeys) {
        String uid = pipeline.equals("prefill") ? "prefill-shards" : "shards";
        SingleOutputStreamOperator<StepResult> op = steps.keyBy(m -> shardKeys[m.shard], Types.INT)
                .process(new ShardOperator(settings, pipeline, latencyCritical))
                .returns(StepResult.class)
                .uid(uid)
                .name(pipeline + " shards: every layer, device exchange between peers")
                .setParallelism(settings.shards())
                .setMaxParallelism(MAX_PARALLELISM);
        op.getTransformation().setCoLocationGroupKey("sps2-shards");
        return op;
    }
}
