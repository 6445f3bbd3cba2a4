package sps2.operators.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import sps2.operators.messages.StepSeq;

/**
 * Sarathi-Serve, the baseline: one iteration at a time, each worker's batch filled up to the chunk budget with
 * the running decodes first, then the partial prefill, then new prefills (stall-free batching). A request lives on
 * one worker, which holds KV for its whole prompt and output from its first chunk on.
 */
final class SarathiPolicy implements SchedulingPolicy {
    private final KvSpace kv;
    private final int chunkSize;
    private final Scheduler.Clock clock;

    /** @param chunkSize the token budget of one worker in one iteration */
    SarathiPolicy(KvSpace kv, int chunkSize, Scheduler.Clock clock) {
        this.kv = kv;
        this.chunkSize = chunkSize;
        this.clock = clock;
    }

    @Override
    public long maxRequestTokens() {
        return kv.tokensPerShard();
    }

    @Override
    public void schedule(List<Map.Entry<String, RequestState>> requests, Iterations iterations) throws Exception {
        if (iterations.anyInFlight()) {
            return;
        }
        Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
        int[] budget = new int[kv.shards()];
        Arrays.fill(budget, chunkSize);
        List<Map.Entry<String, RequestState>> ordered = new ArrayList<>(requests);
        ordered.sort(Scheduler.SCHEDULING_ORDER);
        // 1. running decodes
        for (Map.Entry<String, RequestState> e : ordered) {
            RequestState r = e.getValue();
            if (r.phase == RequestState.DECODE && budget[r.peers[0]] > 0) {
                int worker = r.peers[0];
                StepSeq w = onWorker(r);
                w.mode = StepSeq.DECODE;
                w.tokens = new int[] {r.lastToken()};
                w.startPos = r.kvTokens[0];
                w.kvBefore = r.kvTokens[0];
                r.kvTokens[0]++;
                budget[worker]--;
                perShard.computeIfAbsent(worker, k -> new ArrayList<>()).add(w);
                iterations.update(e.getKey(), r);
            }
        }
        // 2. partial prefills, then 3. new prefills (placed on the worker with the most free KV)
        for (int pass = 0; pass < 2; pass++) {
            for (Map.Entry<String, RequestState> e : ordered) {
                RequestState r = e.getValue();
                boolean partial = r.phase == RequestState.PREFILL;
                if (pass == 0 ? !partial : r.phase != RequestState.WAITING) {
                    continue;
                }
                if (pass == 1) {
                    int target = kv.mostFree();
                    if (budget[target] <= 0 || !place(target, r)) {
                        continue;
                    }
                }
                int worker = r.peers[0];
                if (budget[worker] <= 0) {
                    continue;
                }
                int[] history = r.history();
                int take = Math.min(budget[worker], history.length - r.prefilled);
                StepSeq w = onWorker(r);
                w.mode = StepSeq.PREFILL;
                w.tokens = Arrays.copyOfRange(history, r.prefilled, r.prefilled + take);
                w.startPos = r.prefilled;
                w.kvBefore = r.prefilled;
                w.sample = r.prefilled + take == history.length;
                r.prefilled += take;
                r.kvTokens[0] = r.prefilled;
                budget[worker] -= take;
                perShard.computeIfAbsent(worker, k -> new ArrayList<>()).add(w);
                iterations.update(e.getKey(), r);
            }
        }
        iterations.start(false, perShard, new int[0]);
    }

    /** Puts a new request on {@code worker} with KV for its whole history and output; false when it does not fit. */
    private boolean place(int worker, RequestState r) {
        int[] table = kv.allocateTokens(worker, r.history().length + r.request.generation.maxTokens - r.outputs());
        if (table == null) {
            return false;
        }
        r.peers = new int[] {worker};
        r.blockTables = new int[][] {table};
        r.kvTokens = new int[] {0};
        r.prefilled = 0;
        r.phase = RequestState.PREFILL;
        r.prefillStartMs = clock.millis();
        return true;
    }

    /** The request's part of a step on its worker, which stores its KV and samples its next token. */
    private static StepSeq onWorker(RequestState r) {
        StepSeq w = r.newSeq();
        w.blockTable = r.blockTables[0];
        w.peers = r.peers;
        w.peerIndex = 0;
        w.appendKv = true;
        w.sample = true;
        return w;
    }
}
