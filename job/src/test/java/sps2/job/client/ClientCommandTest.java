package sps2.job.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;
import sps2.job.embedded.EmbeddedKafka;
import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaTopics;
import sps2.schemas.FinishReason;
import sps2.schemas.GenerateRequest;

/** The client command against a real broker and a stand-in for the job that echoes prompt words. */
@Timeout(120)
class ClientCommandTest {

    private static EmbeddedKafka kafka;
    private static FakeJob job;

    /**
     * Reads requests and answers like the job would: one token per prompt word (or per prompt id),
     * a rejection for the prompt "reject me", nothing for request ids starting with "silent".
     */
    static final class FakeJob implements Runnable, AutoCloseable {
        final KafkaConsumer<byte[], byte[]> consumer;
        final TokenTopic tokens;
        final Thread thread = new Thread(this, "fake-job");
        final List<GenerateRequest> received = new ArrayList<>();

        FakeJob(String bootstrapServers) {
            Properties props = new Properties();
            props.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
            props.setProperty(ConsumerConfig.GROUP_ID_CONFIG, "fake-job");
            props.setProperty(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            consumer = new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
            consumer.subscribe(List.of(KafkaTopics.DEFAULT_REQUESTS));
            tokens = new TokenTopic(bootstrapServers, KafkaTopics.DEFAULT_TOKENS);
            thread.start();
        }

        @Override
        public void run() {
            try {
                while (true) {
                    for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(100))) {
                        answer(AvroCodec.decodeRequest(record.value()));
                    }
                }
            } catch (WakeupException e) {
                // closed
            } catch (Exception e) {
                throw new IllegalStateException(e);
            } finally {
                consumer.close();
            }
        }

        private void answer(GenerateRequest request) throws Exception {
            synchronized (received) {
                received.add(request);
            }
            String id = request.getRequestId();
            if (id.startsWith("silent")) {
                return;
            }
            if ("reject me".equals(request.getPrompt())) {
                tokens.write(TokenTopic.rejection(id, "The model 'x' is not served here."));
                return;
            }
            List<String> words = new ArrayList<>();
            if (request.getPrompt() != null) {
                words.addAll(List.of(request.getPrompt().split(" ")));
            } else {
                request.getPromptTokens().forEach(t -> words.add("<" + t + ">"));
            }
            int n = Math.min(words.size(), request.getMaxTokens());
            for (int i = 0; i < n; i++) {
                boolean last = i == n - 1;
                tokens.write(TokenTopic.token(id, i, (i == 0 ? "" : " ") + words.get(i), last,
                        last ? FinishReason.LENGTH : FinishReason.NONE));
            }
        }

        GenerateRequest last() {
            synchronized (received) {
                return received.get(received.size() - 1);
            }
        }

        @Override
        public void close() throws InterruptedException {
            consumer.wakeup();
            thread.join(30_000);
            tokens.close();
        }
    }

    record Run(int exitCode, String out, String err) {
    }

    private static Run client(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream outStream = new PrintStream(out, true, StandardCharsets.UTF_8);
        PrintStream errStream = new PrintStream(err, true, StandardCharsets.UTF_8);
        CommandLine command = new CommandLine(new ClientCommand(outStream, errStream));
        command.setOut(new java.io.PrintWriter(outStream, true));
        command.setErr(new java.io.PrintWriter(errStream, true));
        List<String> all = new ArrayList<>(List.of("--bootstrap-servers", kafka.bootstrapServers()));
        if (!List.of(args).contains("--timeout")) {
            all.addAll(List.of("--timeout", "60"));
        }
        all.addAll(List.of(args));
        int exit = command.execute(all.toArray(String[]::new));
        return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @BeforeAll
    static void start() throws Exception {
        kafka = EmbeddedKafka.start();
        kafka.createTopics(2, KafkaTopics.DEFAULT_REQUESTS, KafkaTopics.DEFAULT_TOKENS);
        job = new FakeJob(kafka.bootstrapServers());
    }

    @AfterAll
    static void stop() throws Exception {
        if (job != null) {
            job.close();
        }
        if (kafka != null) {
            kafka.close();
        }
    }

    @Test
    void streamsTheAnswerAndReportsTimings() {
        Run run = client("--prompt", "Once upon a time there", "--max-tokens", "4", "--temperature", "0.5",
                "--top-p", "0.9", "--top-k", "40", "--seed", "7", "--request-id", "req-1", "--model", "tiny");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals("Once upon a time" + System.lineSeparator(), run.out());
        assertTrue(run.err().matches("(?s)4 tokens \\(finish: LENGTH\\), TTFT [0-9.]+ ms, mean TBT [0-9.]+ ms, .*tokens/s overall\\.\\s*"), run.err());

        GenerateRequest sent = job.last();
        assertEquals("req-1", sent.getRequestId());
        assertEquals(4, sent.getMaxTokens());
        assertEquals(0.5f, sent.getTemperature());
        assertEquals(0.9f, sent.getTopP());
        assertEquals(40, sent.getTopK());
        assertEquals(7L, sent.getSeed());
        assertEquals("tiny", sent.getModel());
    }

    @Test
    void acceptsPromptFilesAndTokenIds(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("prompt.txt");
        Files.writeString(file, "from a file");
        Run fromFile = client("--prompt-file", file.toString());
        assertEquals(0, fromFile.exitCode(), fromFile.err());
        assertEquals("from a file" + System.lineSeparator(), fromFile.out());

        Run fromIds = client("--prompt-ids", "1,2,3");
        assertEquals(0, fromIds.exitCode(), fromIds.err());
        assertEquals("<1> <2> <3>" + System.lineSeparator(), fromIds.out());
        assertEquals(List.of(1, 2, 3), job.last().getPromptTokens());
    }

    @Test
    void rejectionsAndTimeoutsExitWithOne() {
        Run rejected = client("--prompt", "reject me", "--request-id", "req-rejected");
        assertEquals(1, rejected.exitCode());
        assertEquals("Request req-rejected was rejected: The model 'x' is not served here." + System.lineSeparator(), rejected.err());

        Run silent = client("--prompt", "hello", "--request-id", "silent-1", "--timeout", "1");
        assertEquals(1, silent.exitCode());
        assertTrue(silent.err().startsWith("No complete answer to request silent-1 within 1.0 s."), silent.err());
    }

    @Test
    void badArgumentsAreReportedInOneSentence() {
        Run missingFile = client("--prompt-file", "/no/such/prompt.txt");
        assertEquals(1, missingFile.exitCode());
        assertEquals("The prompt file /no/such/prompt.txt does not exist." + System.lineSeparator(), missingFile.err());

        Run twoPrompts = client("--prompt", "a", "--prompt-ids", "1");
        assertEquals(2, twoPrompts.exitCode(), "picocli usage error");
        assertTrue(twoPrompts.err().contains("mutually exclusive"), twoPrompts.err());
    }
}
