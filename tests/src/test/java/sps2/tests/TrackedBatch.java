package sps2.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import sps2.job.client.RequestProducer;
import sps2.job.client.TokenStreamConsumer;
import sps2.schemas.GenerateRequest;
import sps2.schemas.TokenEvent;

/**
 * A batch of requests sent through a running job and what arrived for each, for the fault tests on real
 * processes: how many have started and finished, and whether every one got exactly the reference tokens.
 */
public final class TrackedBatch {
    public final Map<String, GenerateRequest> requests = new LinkedHashMap<>();
    private final Map<String, CompletableFuture<TokenStreamConsumer.Result>> results = new LinkedHashMap<>();
    private final Map<String, Integer> tokensOf = new ConcurrentHashMap<>();
    private final AtomicInteger arrived = new AtomicInteger();

    public TrackedBatch(List<GenerateRequest> batch, TokenStreamConsumer tokens) {
        for (GenerateRequest r : batch) {
            requests.put(r.getRequestId(), r);
            results.put(r.getRequestId(), tokens.track(r.getRequestId(), new TokenStreamConsumer.Listener() {
                @Override
                public void onToken(TokenEvent event, long arrivalNanos) {
                    tokensOf.merge(event.getRequestId(), 1, Integer::sum);
                    arrived.incrementAndGet();
                }
            }));
        }
    }

    public void send(RequestProducer producer) throws Exception {
        for (GenerateRequest r : requests.values()) {
            producer.send(r).get(30, TimeUnit.SECONDS);
        }
    }

    /** Requests with at least one token. */
    public int started() {
        return tokensOf.size();
    }

    /** Token events received, replays included. */
    public int arrived() {
        return arrived.get();
    }

    public int unfinished() {
        return (int) results.values().stream().filter(f -> !f.isDone()).count();
    }

    /** Every request got the tokens of single-process generation, and no replayed event differed from the first. */
    public void assertExact(Path model) throws Exception {
        for (Map.Entry<String, GenerateRequest> e : requests.entrySet()) {
            TokenStreamConsumer.Result result = results.get(e.getKey()).get();
            assertEquals(0, result.mismatches(), e.getKey() + ": a replayed event differs from the first");
            int[] got = result.tokens().stream().mapToInt(TokenEvent::getTokenId).toArray();
            assertArrayEquals(JobEndToEndTest.reference(model, e.getValue()), got, e.getKey());
        }
    }
}
