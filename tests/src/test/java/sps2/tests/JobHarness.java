package sps2.tests;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.TimeoutException;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

import sps2.job.Sps2Job;
import sps2.job.embedded.EmbeddedKafka;
import sps2.operators.JobSettings;
import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * Runs the sps2 job on a Flink MiniCluster against a real in-JVM Kafka broker, sends requests through a
 * real producer and collects token events through a real consumer. One broker per harness; each job gets
 * its own topics so runs never see each other's records.
 */
final class JobHarness implements AutoCloseable {
    /** The largest request record tests may send (the topic and the producer allow it; the job reads less). */
    static final int LARGEST_REQUEST_RECORD = 16 << 20;

    final EmbeddedKafka kafka;

    JobHarness() throws Exception {
        kafka = EmbeddedKafka.start();
    }

    static Path sharedModel(String name) {
        String dir = System.getenv().getOrDefault("SPS2_SHARED", "../../shared");
        Path p = Path.of(dir, "models", name);
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(p), "Skipped: " + p + " is absent (no shared data beside the checkout).");
        return p.toAbsolutePath();
    }

    static JobSettings settings(Path model, String mode, int shards, String csa) {
        return new JobSettings(model.toString(), null, "default", JobSettings.BackendKind.CPU, JobSettings.Mode.parse(mode), shards,
                sps2.operators.csa.CsaPolicy.parse(csa), JobSettings.AppendPolicy.TAIL, 64, 16, 512, 16, 4096, 1 << 20, "test-" + UUID.randomUUID(), 1);
    }

    /** A running job with its own topics. */
    final class RunningJob implements AutoCloseable {
        final KafkaTopics topics;
        final JobSettings settings;
        final JobClient client;
        private final KafkaProducer<byte[], byte[]> producer;
        private final KafkaConsumer<byte[], byte[]> consumer;
        final Map<String, List<TokenEvent>> events = new HashMap<>();

        RunningJob(JobSettings settings, long checkpointMs) throws Exception {
            this.settings = settings;
            topics = KafkaTopics.withPrefix("t" + UUID.randomUUID().toString().substring(0, 8) + "-");
            kafka.createTopics(1, topics.all());
            // The requests topic takes records far larger than the job reads, as a misconfigured one might.
            kafka.admin().incrementalAlterConfigs(Map.of(
                    new org.apache.kafka.common.config.ConfigResource(org.apache.kafka.common.config.ConfigResource.Type.TOPIC, topics.requests()),
                    List.of(new org.apache.kafka.clients.admin.AlterConfigOp(
                            new org.apache.kafka.clients.admin.ConfigEntry("max.message.bytes", Integer.toString(LARGEST_REQUEST_RECORD)),
                            org.apache.kafka.clients.admin.AlterConfigOp.OpType.SET)))).all().get();
            Configuration conf = new Configuration();
            conf.set(PipelineOptions.GENERIC_TYPES, false);
            conf.set(TaskManagerOptions.NETWORK_MEMORY_MIN, MemorySize.ofMebiBytes(128));
            conf.set(TaskManagerOptions.NETWORK_MEMORY_MAX, MemorySize.ofMebiBytes(128));
            conf.set(TaskManagerOptions.NUM_TASK_SLOTS, Math.max(1, settings.shards()));
            StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(settings.shards(), conf);
            env.setBufferTimeout(0);
            if (checkpointMs > 0) {
                env.enableCheckpointing(checkpointMs);
            }
            Sps2Job.build(env, settings, new KafkaIo(kafka.bootstrapServers(), "sps2-" + settings.runtimeId(), topics));
            client = env.executeAsync("sps2 test " + settings.mode());
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            p.put(ProducerConfig.LINGER_MS_CONFIG, 0);
            p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, LARGEST_REQUEST_RECORD);
            producer = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
            Properties c = new Properties();
            c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka.bootstrapServers());
            consumer = new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
            List<TopicPartition> parts = List.of(new TopicPartition(topics.tokens(), 0));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
        }

        void send(GenerateRequest r) {
            byte[] key = r.getRequestId().getBytes(java.nio.charset.StandardCharsets.UTF_8);
            producer.send(new ProducerRecord<>(topics.requests(), key.length > 1024 ? null : key, AvroCodec.encode(r)));
            producer.flush();
        }

        void sendRaw(byte[] value) {
            producer.send(new ProducerRecord<>(topics.requests(), "raw".getBytes(), value));
            producer.flush();
        }

        /** Polls token events until every given request has a finished event, or the timeout passes. */
        Map<String, List<TokenEvent>> awaitFinished(Collection<String> ids, Duration timeout) throws Exception {
            long deadline = System.nanoTime() + timeout.toNanos();
            while (!allFinished(ids)) {
                if (System.nanoTime() > deadline) {
                    throw new TimeoutException("Requests did not finish in " + timeout + "; events so far: " + summary());
                }
                for (ConsumerRecord<byte[], byte[]> rec : consumer.poll(Duration.ofMillis(100))) {
                    TokenEvent e = AvroCodec.decodeToken(rec.value());
                    events.computeIfAbsent(e.getRequestId(), k -> new ArrayList<>()).add(e);
                }
            }
            return events;
        }

        private boolean allFinished(Collection<String> ids) {
            for (String id : ids) {
                List<TokenEvent> l = events.get(id);
                if (l == null || l.stream().noneMatch(TokenEvent::getFinished)) {
                    return false;
                }
            }
            return true;
        }

        private String summary() {
            StringBuilder b = new StringBuilder();
            events.forEach((k, v) -> b.append(k).append('=').append(v.size()).append(' '));
            return b.toString();
        }

        /** Token ids of a request, deduplicated by index, checking that indices are 0..n-1 without gaps. */
        int[] tokens(String id) {
            List<TokenEvent> l = events.get(id);
            Map<Integer, Integer> byIndex = new java.util.TreeMap<>();
            for (TokenEvent e : l) {
                if (e.getIndex() >= 0) {
                    Integer old = byIndex.putIfAbsent(e.getIndex(), e.getTokenId());
                    if (old != null && old != e.getTokenId()) {
                        throw new AssertionError("Request " + id + " got two different tokens at index " + e.getIndex());
                    }
                }
            }
            int[] out = new int[byIndex.size()];
            int i = 0;
            for (Map.Entry<Integer, Integer> e : byIndex.entrySet()) {
                if (e.getKey() != i) {
                    throw new AssertionError("Request " + id + " has a gap: index " + i + " is missing");
                }
                out[i++] = e.getValue();
            }
            return out;
        }

        @Override
        public void close() throws Exception {
            producer.close();
            consumer.close();
            client.cancel().get();
        }
    }

    @Override
    public void close() {
        kafka.close();
    }
}
