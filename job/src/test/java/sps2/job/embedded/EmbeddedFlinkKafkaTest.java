package sps2.job.embedded;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.KafkaTopics;
import sps2.operators.io.ParsedRequest;
import sps2.schemas.DeadLetter;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * A trivial job on the embedded Flink cluster, end to end through the embedded broker: requests in,
 * one token event per word of the prompt out, and a malformed record to the dead-letter topic.
 */
class EmbeddedFlinkKafkaTest {

    private static final Duration WAIT = Duration.ofSeconds(90);

    /** "Generates" the prompt's words back, at most maxTokens of them. */
    static final class EchoWords implements FlatMapFunction<ParsedRequest, TokenEvent> {
        @Override
        public void flatMap(ParsedRequest parsed, Collector<TokenEvent> out) {
            GenerateRequest request = parsed.request();
            String[] words = request.getPrompt().split(" ");
            int n = Math.min(words.length, request.getMaxTokens());
            for (int i = 0; i < n; i++) {
                boolean last = i == n - 1;
                out.collect(TokenEvent.newBuilder()
                        .setRequestId(request.getRequestId())
                        .setIndex(i)
                        .setTokenId(i)
                        .setText(i == 0 ? words[i] : " " + words[i])
                        .setFinished(last)
                        .setFinishReason(last ? (n < words.length ? FinishReason.LENGTH : FinishReason.STOP) : FinishReason.NONE)
                        .build());
            }
        }
    }

    @Test
    @Timeout(240)
    void requestsFlowThroughAFlinkJobAndBadRecordsGoToTheDeadLetterTopic() throws Exception {
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        Set<Path> tmpBefore = list(tmp);
        KafkaTopics topics = KafkaTopics.withPrefix("it-");
        Path flinkDirectory;
        try (EmbeddedKafka kafka = EmbeddedKafka.start();
             EmbeddedFlink flink = EmbeddedFlink.start(EmbeddedFlink.Options.of(1, 2).withNetworkMemory(MemorySize.ofMebiBytes(64)))) {
            flinkDirectory = flink.directory();
            kafka.createTopics(2, topics.requests(), topics.tokens());
            kafka.createTopics(1, topics.deadLetters());

            Configuration jobConfig = new Configuration();
            jobConfig.set(PipelineOptions.GENERIC_TYPES, false);
            StreamExecutionEnvironment env = flink.createEnvironment(jobConfig);
            env.setBufferTimeout(0);
            KafkaIo io = new KafkaIo(kafka.bootstrapServers(), "it-job", topics);
            DataStream<ParsedRequest> parsed = env.fromSource(io.requestSource(), WatermarkStrategy.noWatermarks(), "requests");
            parsed.filter(ParsedRequest::isRequest)
                    .flatMap(new EchoWords()).returns(TokenEvent.class)
                    .sinkTo(io.tokenSink());
            parsed.filter(p -> !p.isRequest())
                    .map(ParsedRequest::deadLetter).returns(DeadLetter.class)
                    .sinkTo(io.deadLetterSink());

            try (TokenStreamConsumer tokens = TokenStreamConsumer.open(kafka.bootstrapServers(), topics.tokens(), WAIT);
                 RequestProducer producer = new RequestProducer(kafka.bootstrapServers(), topics.requests())) {
                List<GenerateRequest> requests = List.of(
                        request("a", "Once upon a time there was a cat", 100),
                        request("b", "one two three four five", 3),
                        request("c", "hello", 8));
                List<CompletableFuture<TokenStreamConsumer.Result>> answers = new ArrayList<>();
                for (GenerateRequest request : requests) {
                    answers.add(tokens.track(request.getRequestId()));
                }
                // Sent before the job runs: the source starts at the earliest offset of a new group.
                for (GenerateRequest request : requests) {
                    producer.send(request).get(WAIT.toSeconds(), TimeUnit.SECONDS);
                }
                byte[] garbage = "this is not avro".getBytes(StandardCharsets.UTF_8);
                producer.send("bad-key", garbage).get(WAIT.toSeconds(), TimeUnit.SECONDS);

                JobClient job = env.executeAsync("embedded echo");
                try {
                    TokenStreamConsumer.Result a = answers.get(0).get(WAIT.toSeconds(), TimeUnit.SECONDS);
                    assertEquals("Once upon a time there was a cat", a.text());
                    assertEquals(FinishReason.STOP, a.finishReason());
                    assertEquals(8, a.arrivalNanos().length);
                    TokenStreamConsumer.Result b = answers.get(1).get(WAIT.toSeconds(), TimeUnit.SECONDS);
                    assertEquals("one two three", b.text());
                    assertEquals(FinishReason.LENGTH, b.finishReason());
                    assertEquals("hello", answers.get(2).get(WAIT.toSeconds(), TimeUnit.SECONDS).text());
                    for (CompletableFuture<TokenStreamConsumer.Result> answer : answers) {
                        assertEquals(0, answer.join().mismatches());
                    }

                    DeadLetter letter = readOneDeadLetter(kafka.bootstrapServers(), topics.deadLetters());
                    assertEquals(topics.requests(), letter.getTopic());
                    assertEquals(ByteBuffer.wrap(garbage), letter.getValue());
                    assertEquals(ByteBuffer.wrap("bad-key".getBytes(StandardCharsets.UTF_8)), letter.getKey());
                    assertTrue(letter.getReason().contains("not an Avro GenerateRequest"), letter.getReason());
                } finally {
                    EmbeddedFlink.cancel(job, WAIT);
                }
            }
        }
        assertFalse(Files.exists(flinkDirectory), "the cluster's folder is deleted on close");
        assertEquals(tmpBefore, list(tmp), "nothing is left behind in java.io.tmpdir");
    }

    private static GenerateRequest request(String id, String prompt, int maxTokens) {
        return GenerateRequest.newBuilder().setRequestId(id).setPrompt(prompt).setMaxTokens(maxTokens).build();
    }

    private static DeadLetter readOneDeadLetter(String bootstrapServers, String topic) throws Exception {
        Properties props = new Properties();
        props.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.setProperty(ConsumerConfig.GROUP_ID_CONFIG, "it-dlq-reader");
        props.setProperty(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    return AvroCodec.decodeDeadLetter(record.value());
                }
            }
        }
        throw new AssertionError("No dead letter on " + topic + " within " + WAIT.toSeconds() + " s.");
    }

    private static Set<Path> list(Path folder) throws Exception {
        try (Stream<Path> entries = Files.list(folder)) {
            return entries.collect(Collectors.toSet());
        }
    }
}
