package sps2.job.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import sps2.job.embedded.EmbeddedKafka;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

@Timeout(120)
class TokenStreamConsumerTest {

    private static final Duration WAIT = Duration.ofSeconds(60);
    private static final String TOPIC = "tokens";

    private static EmbeddedKafka kafka;
    private static TokenTopic tokens;

    @BeforeAll
    static void startBroker() throws Exception {
        kafka = EmbeddedKafka.start();
        kafka.createTopics(2, TOPIC);
        tokens = new TokenTopic(kafka.bootstrapServers(), TOPIC);
    }

    @AfterAll
    static void stopBroker() {
        if (tokens != null) {
            tokens.close();
        }
        if (kafka != null) {
            kafka.close();
        }
    }

    @Test
    void deliversInIndexOrderDeduplicatesAndIgnoresEarlierEvents() throws Exception {
        // An event of an earlier run with the same id, written before the consumer opened.
        tokens.write(TokenTopic.token("r1", 0, "OLD", false, FinishReason.NONE));

        List<String> delivered = Collections.synchronizedList(new ArrayList<>());
        List<Long> arrivals = Collections.synchronizedList(new ArrayList<>());
        try (TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), TOPIC, WAIT)) {
            long opened = System.nanoTime();
            CompletableFuture<TokenStreamConsumer.Result> answer = consumer.track("r1", new TokenStreamConsumer.Listener() {
                @Override
                public void onToken(TokenEvent event, long arrivalNanos) {
                    delivered.add(event.getText());
                    arrivals.add(arrivalNanos);
                }
            });
            tokens.write(TokenTopic.token("r1", 1, " b", false, FinishReason.NONE));
            tokens.write(TokenTopic.token("r1", 0, "a", false, FinishReason.NONE));
            tokens.write(TokenTopic.token("r1", 0, "a", false, FinishReason.NONE)); // identical replay
            tokens.write(TokenTopic.token("r1", 1, " X", false, FinishReason.NONE)); // differing replay
            tokens.write(TokenTopic.token("r1", 2, " c", true, FinishReason.STOP));

            TokenStreamConsumer.Result result = answer.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertEquals("a b c", result.text());
            assertEquals(List.of("a", " b", " c"), delivered);
            assertEquals(FinishReason.STOP, result.finishReason());
            assertFalse(result.failed());
            assertEquals(2, result.duplicates());
            assertEquals(1, result.mismatches());
            assertEquals(3, result.arrivalNanos().length);
            assertTrue(result.arrivalNanos()[0] > opened);
            // "b" arrived before "a" but is handed over with "a", at its own arrival time.
            assertTrue(result.arrivalNanos()[1] <= result.arrivalNanos()[0]);
            assertEquals(List.of(result.arrivalNanos()[0], result.arrivalNanos()[1], result.arrivalNanos()[2]), arrivals);
            assertEquals(0, consumer.pending());
        }
    }

    @Test
    void rejectionsCompleteAtOnce() throws Exception {
        try (TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), TOPIC, WAIT)) {
            CompletableFuture<TokenStreamConsumer.Result> answer = consumer.track("r2");
            assertThrows(IllegalStateException.class, () -> consumer.track("r2"));
            tokens.write(TokenTopic.rejection("r2", "The prompt text is empty."));
            TokenStreamConsumer.Result result = answer.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertTrue(result.failed());
            assertEquals(FinishReason.REJECTED, result.finishReason());
            assertEquals("The prompt text is empty.", result.error());
            assertEquals(0, result.tokens().size());
        }
    }

    @Test
    void anIdConflictNoticeDoesNotEndTheRunningRequest() throws Exception {
        List<TokenEvent> notices = Collections.synchronizedList(new ArrayList<>());
        try (TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), TOPIC, WAIT)) {
            CompletableFuture<TokenStreamConsumer.Result> answer = consumer.track("r4", new TokenStreamConsumer.Listener() {
                @Override
                public void onConflict(TokenEvent notice) {
                    notices.add(notice);
                }
            });
            tokens.write(TokenTopic.token("r4", 0, "a", false, FinishReason.NONE));
            tokens.write(TokenEvent.newBuilder().setRequestId("r4").setIndex(-2).setFinished(false)
                    .setFinishReason(FinishReason.ID_CONFLICT).setError("A different request with id r4 arrived.").build());
            tokens.write(TokenTopic.token("r4", 1, " b", true, FinishReason.LENGTH));
            TokenStreamConsumer.Result result = answer.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertEquals("a b", result.text());
            assertEquals(FinishReason.LENGTH, result.finishReason());
            assertFalse(result.failed());
            assertEquals(1, result.conflicts());
            assertEquals(1, notices.size());
        }
    }

    @Test
    void aRequestWithAnOverLongIdGetsTheRejectionUnderItsBoundedId() throws Exception {
        String id = "z".repeat(600_000);
        try (TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), TOPIC, WAIT)) {
            CompletableFuture<TokenStreamConsumer.Result> answer = consumer.track(id);
            tokens.write(TokenTopic.rejection(sps2.operators.io.RequestIds.eventId(id), "The request id is 600000 bytes long."));
            TokenStreamConsumer.Result result = answer.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertEquals(FinishReason.REJECTED, result.finishReason());
            assertTrue(result.error().contains("600000"));
        }
    }

    @Test
    void closingFailsRequestsStillPending() throws Exception {
        CompletableFuture<TokenStreamConsumer.Result> answer;
        try (TokenStreamConsumer consumer = TokenStreamConsumer.open(kafka.bootstrapServers(), TOPIC, WAIT)) {
            answer = consumer.track("never-answered");
            tokens.write(TokenTopic.token("never-answered", 0, "x", false, FinishReason.NONE));
        }
        ExecutionException e = assertThrows(ExecutionException.class, () -> answer.get(WAIT.toSeconds(), TimeUnit.SECONDS));
        assertTrue(e.getCause().getMessage().contains("never-answered"), e.getCause().getMessage());
    }

    @Test
    void aMissingTopicIsReportedNotAwaitedForever() {
        Exception e = assertThrows(Exception.class,
                () -> TokenStreamConsumer.open(kafka.bootstrapServers(), "no-such-topic", Duration.ofSeconds(3)).close());
        assertTrue(e.getMessage().contains("no-such-topic"), e.getMessage());
    }
}
