package sps2.job;

import java.nio.file.Path;
import java.util.Set;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.KeyedStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

import sps2.model.ModelConfig;
import sps2.model.ModelLoader;
import sps2.operators.JobSettings;
import sps2.operators.ShardKeys;
import sps2.operators.feedback.FeedbackTail;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.ModelLimits;
import sps2.operators.io.ParsedRequest;
import sps2.operators.messages.Admitted;
import sps2.operators.messages.StageMsg;
import sps2.operators.messages.StepResult;
import sps2.operators.prepare.RequestPreparer;
import sps2.operators.scheduler.SchedulerOperator;
import sps2.operators.stage.LayerStage;
import sps2.schemas.TokenEvent;

/**
 * The sps2 job graph:
 *
 * <pre>
 * Kafka requests ─► validate+tokenize ─┬─► dead letters (Kafka)
 *                                      ├─► rejections ───────────────────────────────┐
 *                                      ▼                                             │
 *                          scheduler (1 subtask) ─► stage 0 ─► stage 1 ─► … ─► stage L ─► tokens (Kafka)
 *                               ▲                (keyed by shard, one subtask per shard)  │
 *                               └──────────── feedback tail ◄── step results ◄────────────┘
 * </pre>
 *
 * Stage s completes layer s-1 and starts layer s; the exchange between shards of one layer is the keyed
 * edge into the next stage. Every operator has a stable uid so state maps across restarts.
 */
public final class Sps2Job {
    /** Max parallelism of the stage operators: shard keys are computed for it. */
    public static final int MAX_PARALLELISM = 128;

    private Sps2Job() {
    }

    public static void build(StreamExecutionEnvironment env, JobSettings settings, KafkaIo io) {
        ModelConfig config = ModelLoader.load(Path.of(settings.modelPath())).config();
        int context = Math.min(settings.contextLength(), config.contextLength());
        ModelLimits limits = new ModelLimits(context, settings.maxTokensCap(), config.vocabSize(), Set.of(settings.modelName()));
        int layers = config.nLayers();
        int[] shardKeys = ShardKeys.keys(settings.shards(), MAX_PARALLELISM);

        DataStream<ParsedRequest> parsed = env.fromSource(io.requestSource(), WatermarkStrategy.noWatermarks(), "requests from Kafka")
                .uid("kafka-requests").setParallelism(1);
        SingleOutputStreamOperator<Admitted> admitted = parsed.process(new RequestPreparer(settings, limits))
                .returns(Admitted.class).uid("prepare").name("validate and tokenize").setParallelism(1);
        admitted.getSideOutput(RequestPreparer.DEAD_LETTERS).sinkTo(io.deadLetterSink()).uid("dead-letters").name("dead letters to Kafka")
                .setParallelism(1);

        SingleOutputStreamOperator<StageMsg> steps = admitted.keyBy(a -> 0, Types.INT)
                .transform("scheduler", TypeInformation.of(StageMsg.class), new SchedulerOperator(settings, config))
                .uid("scheduler").setParallelism(1).setMaxParallelism(1);
        steps.getTransformation().setCoLocationGroupKey("sps2-scheduler");

        // sps2 mode runs two pipelines of stage operators on every shard, one for prefill iterations and one for
        // decode iterations: separate tasks (threads, and CUDA streams) over the same model and KV pool, so a
        // decode step never waits behind a long prefill. Sarathi mixes both in one iteration on one pipeline.
        SingleOutputStreamOperator<StageMsg> decode = stages(steps, settings, "", layers, shardKeys);
        DataStream<TokenEvent> stageTokens = decode.getSideOutput(LayerStage.TOKENS);
        DataStream<StepResult> results = decode.getSideOutput(LayerStage.RESULTS);
        if (!settings.sarathi()) {
            SingleOutputStreamOperator<StageMsg> prefill = stages(steps.getSideOutput(SchedulerOperator.PREFILL_STEPS), settings, "prefill-",
                    layers, shardKeys);
            stageTokens = stageTokens.union(prefill.getSideOutput(LayerStage.TOKENS));
            results = results.union(prefill.getSideOutput(LayerStage.RESULTS));
        }

        DataStream<TokenEvent> tokens = stageTokens
                .union(admitted.getSideOutput(RequestPreparer.ERRORS), steps.getSideOutput(SchedulerOperator.REJECTIONS));
        tokens.sinkTo(io.tokenSink()).uid("token-sink").name("tokens to Kafka").setParallelism(1);

        SingleOutputStreamOperator<Void> tail = results.keyBy(r -> 0, Types.INT).process(new FeedbackTail(settings.runtimeId()))
                .returns(Types.VOID).uid("feedback-tail").name("feedback to scheduler").setParallelism(1).setMaxParallelism(1);
        tail.getTransformation().setCoLocationGroupKey("sps2-scheduler");
    }

    /** One pipeline of stage operators, stage 0 .. L, one subtask per shard. */
    private static SingleOutputStreamOperator<StageMsg> stages(DataStream<StageMsg> steps, JobSettings settings, String prefix, int layers,
            int[] shardKeys) {
        // Stage-to-stage records only cross shards in sequence-parallel mode with more than one shard. Otherwise
        // every record stays on its shard, so the edge is a forward one (re-read as keyed for the KV state) and
        // Flink chains all stages of a shard into one task: no hop, no serialization.
        boolean crossShard = !settings.sarathi() && settings.shards() > 1;
        DataStream<StageMsg> stream = steps;
        SingleOutputStreamOperator<StageMsg> stage = null;
        for (int s = 0; s <= layers; s++) {
            KeyedStream<StageMsg, Integer> in = s == 0 || crossShard
                    ? stream.keyBy(m -> shardKeys[m.targetShard], Types.INT)
                    : DataStreamUtils.reinterpretAsKeyedStream(stream, m -> shardKeys[m.targetShard], Types.INT);
            String what = s == 0 ? "embed, project layer 0" : s == layers ? "finish layer " + (s - 1) + ", sample"
                    : "finish layer " + (s - 1) + ", project layer " + s;
            // The decode pipeline of sps2 mode shares the devices with the prefill pipeline: its work goes first.
            boolean latencyCritical = !settings.sarathi() && prefix.isEmpty();
            stage = in.process(new LayerStage(settings, s, layers, shardKeys, latencyCritical))
                    .returns(StageMsg.class)
                    .uid(prefix + "stage-" + s)
                    .name(prefix + "stage " + s + ": " + what)
                    .setParallelism(settings.shards())
                    .setMaxParallelism(MAX_PARALLELISM);
            stage.getTransformation().setCoLocationGroupKey("sps2-shards");
            stream = stage;
        }
        return stage;
    }
}
