package sps2.job.client;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.operators.io.AvroCodec;
import sps2.operators.io.KafkaIo;
import sps2.operators.io.RecordLimits;
import sps2.operators.io.RequestIds;
import sps2.schemas.FinishReason;
import sps2.schemas.TokenEvent;

/**
 * Follows the tokens topic for the requests it is told to {@link #track track}, on a thread of its
 * own.
 *
 * <p>It reads every partition of the topic from the end as it was when {@link #open opened}
 * (partitions are assigned directly, no consumer group, and the end offsets are resolved before
 * {@code open} returns), so events of a request sent after {@code open} are never missed.
 *
 * <p>Delivery is at-least-once: a replay after a failure repeats events. Per request the consumer
 * keeps the first event of each index, counts later copies as duplicates and, among those, the
 * ones whose content (token, text, finish, error) differs from the first as mismatches. Tokens are
 * handed to the listener in index order, each with the {@link System#nanoTime()} at which it
 * arrived, so callers can measure time to first token and time between tokens. A request is
 * complete once an event with {@code finished} has arrived and every index before it too; an
 * error or rejection without a token (index -1) completes it at once.
 *
 * <p>An {@link FinishReason#ID_CONFLICT} notice (index -2, not finished) says that a different request was
 * sent under a running id and not served; it is not an event of the running request's stream, so it ends
 * nothing: it goes to {@link Listener#onConflict} and is counted in {@link Result#conflicts()}. Other negative
 * indices that are not finished are skipped the same way. A request whose id is longer than
 * {@link RecordLimits#MAX_REQUEST_ID_BYTES} is followed under {@link RequestIds#eventId}, the id its rejection
 * carries.
 */
public final class TokenStreamConsumer implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(TokenStreamConsumer.class);
    private static final Duration POLL = Duration.ofMillis(100);

    /** Callbacks, called on the consumer's thread; keep them short. */
    public interface Listener {
        /** The next token in index order, arrived at {@code arrivalNanos} ({@link System#nanoTime()}). */
        default void onToken(TokenEvent event, long arrivalNanos) {
        }

        /** The request is complete; called before its future completes. */
        default void onComplete(Result result) {
        }

        /** A notice that another request reused this id and was not served; the tracked request goes on. */
        default void onConflict(TokenEvent notice) {
        }
    }

    /**
     * What arrived for one request.
     *
     * @param requestId the request
     * @param tokens events of indices 0..n-1 in order (the first copy of each)
     * @param arrivalNanos {@link System#nanoTime()} at which each of {@code tokens} arrived
     * @param finishReason why the request ended
     * @param error the error or rejection message, or null
     * @param duplicates events that repeated an index already received
     * @param mismatches duplicates whose content differs from the first copy (should be 0)
     * @param conflicts notices of other requests sent under this id while it ran (not served)
     */
    public record Result(String requestId, List<TokenEvent> tokens, long[] arrivalNanos, FinishReason finishReason,
                         String error, int duplicates, int mismatches, int conflicts) {

        /** Whether the request ended with an error or was rejected. */
        public boolean failed() {
            return finishReason == FinishReason.ERROR || finishReason == FinishReason.REJECTED;
        }

        /** The generated text, the tokens' pieces joined. */
        public String text() {
            StringBuilder text = new StringBuilder();
            for (TokenEvent token : tokens) {
                text.append(token.getText());
            }
            return text.toString();
        }
    }

    private final KafkaConsumer<byte[], byte[]> consumer;
    private final String topic;
    private final Map<String, Tracker> trackers = new ConcurrentHashMap<>();
    private final Thread thread;
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile boolean closing;

    private TokenStreamConsumer(KafkaConsumer<byte[], byte[]> consumer, String topic) {
        this.consumer = consumer;
        this.topic = topic;
        this.thread = new Thread(this::run, "sps2-token-consumer");
        this.thread.setDaemon(true);
    }

    /**
     * Assigns all partitions of {@code topic}, resolves their end offsets and starts following them.
     * Waits at most {@code timeout} for the broker.
     */
    public static TokenStreamConsumer open(String bootstrapServers, String topic, Duration timeout) throws TimeoutException {
        Properties props = KafkaIo.latencyConsumerProperties();
        props.setProperty(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.setProperty(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.setProperty(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
        props.setProperty(ConsumerConfig.CLIENT_ID_CONFIG, "sps2-client-tokens");
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer());
        try {
            List<PartitionInfo> infos = consumer.partitionsFor(topic, timeout);
            if (infos == null || infos.isEmpty()) {
                throw new TimeoutException("The tokens topic " + topic + " does not exist on " + bootstrapServers + ".");
            }
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : infos) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToEnd(partitions);
            // seekToEnd is lazy: resolve the positions now, before any request is sent.
            for (TopicPartition partition : partitions) {
                consumer.position(partition, timeout);
            }
        } catch (org.apache.kafka.common.errors.TimeoutException e) {
            consumer.close();
            throw new TimeoutException("Kafka at " + bootstrapServers + " did not answer within " + timeout.toSeconds()
                    + " s while opening the tokens topic " + topic + ".");
        } catch (RuntimeException | TimeoutException e) {
            consumer.close();
            throw e;
        }
        TokenStreamConsumer tokens = new TokenStreamConsumer(consumer, topic);
        tokens.thread.start();
        return tokens;
    }

    /**
     * Starts collecting the events of {@code requestId}; call it before sending the request. The
     * future completes with the result (also for errors and rejections) or exceptionally if the
     * consumer closes first.
     */
    public CompletableFuture<Result> track(String requestId, Listener listener) {
        Tracker tracker = new Tracker(requestId, Objects.requireNonNull(listener, "listener"));
        String eventId = RequestIds.eventId(requestId);
        if (trackers.putIfAbsent(eventId, tracker) != null) {
            throw new IllegalStateException("Request " + RecordLimits.quote(requestId) + " is already being tracked.");
        }
        if (closing) {
            trackers.remove(eventId);
            tracker.future.completeExceptionally(new IllegalStateException("The token consumer is closed."));
        }
        return tracker.future;
    }

    public CompletableFuture<Result> track(String requestId) {
        return track(requestId, new Listener() {
        });
    }

    /** Requests tracked and not complete yet. */
    public int pending() {
        return trackers.size();
    }

    private void run() {
        try {
            while (!closing) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(POLL);
                long arrivalNanos = System.nanoTime();
                for (ConsumerRecord<byte[], byte[]> record : records) {
                    accept(record, arrivalNanos);
                }
            }
        } catch (WakeupException e) {
            // close() woke the consumer up.
        } catch (RuntimeException e) {
            LOG.error("Reading the tokens topic {} failed: {}", topic, e.toString());
        } finally {
            consumer.close();
            for (Tracker tracker : trackers.values()) {
                tracker.future.completeExceptionally(new IllegalStateException(
                        "The token consumer stopped before request " + tracker.requestId + " completed."));
            }
            trackers.clear();
            stopped.countDown();
        }
    }

    private void accept(ConsumerRecord<byte[], byte[]> record, long arrivalNanos) {
        TokenEvent event;
        try {
            event = AvroCodec.decodeToken(record.value());
        } catch (Exception e) {
            LOG.warn("Skipping an unreadable record on {}-{} at offset {}: {}", record.topic(), record.partition(),
                    record.offset(), e.toString());
            return;
        }
        Tracker tracker = trackers.get(event.getRequestId());
        if (tracker != null && tracker.accept(event, arrivalNanos)) {
            trackers.remove(event.getRequestId());
            tracker.finish();
        }
    }

    @Override
    public void close() {
        closing = true;
        consumer.wakeup();
        try {
            if (!stopped.await(30, TimeUnit.SECONDS)) {
                LOG.warn("The token consumer thread did not stop within 30 s.");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Events of one request; used on the consumer thread only. */
    private static final class Tracker {
        final String requestId;
        final Listener listener;
        final CompletableFuture<Result> future = new CompletableFuture<>();
        /** Received events by index, waiting for the ones before them. */
        final TreeMap<Integer, TokenEvent> waiting = new TreeMap<>();
        final Map<Integer, Long> waitingArrival = new HashMap<>();
        final List<TokenEvent> delivered = new ArrayList<>();
        final List<Long> deliveredArrival = new ArrayList<>();
        int duplicates;
        int mismatches;
        int conflicts;
        /** Index of the finishing event, once it has arrived. */
        int finalIndex = -1;
        /** How the request ended, once it has. */
        FinishReason finishReason;
        String error;

        Tracker(String requestId, Listener listener) {
            this.requestId = requestId;
            this.listener = listener;
        }

        /** Takes one event; returns true when the request is complete (then call {@link #finish()}). */
        boolean accept(TokenEvent event, long arrivalNanos) {
            int index = event.getIndex();
            if (index < 0 && !event.getFinished()) {
                // Not part of this request's stream: a notice about another submission under its id.
                if (event.getFinishReason() == FinishReason.ID_CONFLICT) {
                    conflicts++;
                    LOG.warn("Request {}: {}", RecordLimits.quote(requestId), event.getError());
                    listener.onConflict(event);
                }
                return false;
            }
            if (index < 0) {
                // An error or rejection that produced no token ends the request at once.
                finishReason = event.getFinishReason();
                error = event.getError();
                return true;
            }
            TokenEvent first = index < delivered.size() ? delivered.get(index) : waiting.get(index);
            if (first != null) {
                duplicates++;
                if (!sameContent(first, event)) {
                    mismatches++;
                    LOG.warn("Request {} received two different events for index {}: {} and {}.", requestId, index, first, event);
                }
                return false;
            }
            waiting.put(index, event);
            waitingArrival.put(index, arrivalNanos);
            if (event.getFinished()) {
                finalIndex = index;
            }
            while (!waiting.isEmpty() && waiting.firstKey() == delivered.size()) {
                int next = waiting.firstKey();
                TokenEvent token = waiting.remove(next);
                long arrived = waitingArrival.remove(next);
                delivered.add(token);
                deliveredArrival.add(arrived);
                listener.onToken(token, arrived);
            }
            if (finalIndex >= 0 && delivered.size() > finalIndex) {
                TokenEvent last = delivered.get(finalIndex);
                finishReason = last.getFinishReason();
                error = last.getError();
                return true;
            }
            return false;
        }

        /** Tells the listener and completes the future. */
        void finish() {
            long[] arrivals = new long[deliveredArrival.size()];
            for (int i = 0; i < arrivals.length; i++) {
                arrivals[i] = deliveredArrival.get(i);
            }
            Result result = new Result(requestId, List.copyOf(delivered), arrivals, finishReason, error, duplicates, mismatches, conflicts);
            try {
                listener.onComplete(result);
            } finally {
                future.complete(result);
            }
        }

        private static boolean sameContent(TokenEvent a, TokenEvent b) {
            return a.getTokenId() == b.getTokenId()
                    && a.getText().equals(b.getText())
                    && a.getFinished() == b.getFinished()
                    && a.getFinishReason() == b.getFinishReason()
                    && Objects.equals(a.getError(), b.getError());
        }
    }
}
