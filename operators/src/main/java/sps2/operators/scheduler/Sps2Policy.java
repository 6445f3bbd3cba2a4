package sps2.operators.scheduler;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.operators.JobSettings;
import sps2.operators.messages.StepSeq;
import sps2.operators.placement.Segmenter;

/**
 * sps2 mode: at most one prefill iteration (one request, cut into cost-balanced segments over the shards) and one
 * decode iteration (every decoding request together) are in flight, so a decode iteration never waits for a whole
 * prefill to finish. A request's KV stays where its prefill put it; decode appends where the append policy says.
 */
final class Sps2Policy implements SchedulingPolicy {
    private static final Logger LOG = LoggerFactory.getLogger(Sps2Policy.class);

    private final KvSpace kv;
    private final Segmenter segmenter;
    private final JobSettings.AppendPolicy append;
    private final Scheduler.Clock clock;

    Sps2Policy(KvSpace kv, Segmenter segmenter, JobSettings.AppendPolicy append, Scheduler.Clock clock) {
        this.kv = kv;
        this.segmenter = segmenter;
        this.append = append;
        this.clock = clock;
    }

    @Override
    public long maxRequestTokens() {
        return kv.tokens();
    }

    @Override
    public void schedule(List<Map.Entry<String, RequestState>> requests, Iterations iterations) throws Exception {
        if (!iterations.inFlight(true)) {
            Optional<Map.Entry<String, RequestState>> next = requests.stream()
                    .filter(e -> e.getValue().phase == RequestState.WAITING)
                    .min(Scheduler.SCHEDULING_ORDER);
            if (next.isPresent()) {
                startPrefill(next.get().getKey(), next.get().getValue(), iterations);
            }
        }
        if (!iterations.inFlight(false) && !iterations.restoring()) {
            List<Map.Entry<String, RequestState>> decoding = requests.stream().filter(e -> e.getValue().phase == RequestState.DECODE).toList();
            if (!decoding.isEmpty()) {
                startDecode(decoding, iterations);
            }
        }
    }

    /** Cuts the history into segments over the shards with the most free KV and prefills them in parallel. */
    private void startPrefill(String id, RequestState r, Iterations iterations) throws Exception {
        int[] history = r.history();
        int[] bounds = segmenter.split(history.length, kv.shards());
        int k = bounds.length - 1;
        int[] peers = Arrays.copyOf(kv.byFreeBlocks(), k);
        Arrays.sort(peers);
        int remainingDecode = r.request.generation.maxTokens - r.outputs();
        int[][] tables = new int[k][];
        for (int i = 0; i < k; i++) {
            int tokens = bounds[i + 1] - bounds[i];
            if (i == k - 1 && append == JobSettings.AppendPolicy.TAIL) {
                tokens += remainingDecode;
            }
            tables[i] = kv.allocateTokens(peers[i], tokens);
            if (tables[i] == null) {
                for (int j = 0; j < i; j++) {
                    kv.release(peers[j], tables[j]);
                }
                LOG.debug("Request {} waits for KV space.", id);
                return;
            }
        }
        r.peers = peers;
        r.blockTables = tables;
        r.kvTokens = new int[k];
        r.phase = RequestState.PREFILL;
        r.prefillStartMs = clock.millis();
        Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
        for (int i = 0; i < k; i++) {
            StepSeq w = r.newSeq();
            w.mode = StepSeq.PREFILL;
            w.tokens = Arrays.copyOfRange(history, bounds[i], bounds[i + 1]);
            w.startPos = bounds[i];
            w.blockTable = tables[i];
            w.kvBefore = 0;
            w.appendKv = true;
            w.peers = peers;
            w.segmentStarts = Arrays.copyOf(bounds, k);
            w.peerIndex = i;
            w.sample = i == k - 1;
            r.kvTokens[i] = w.tokens.length;
            perShard.put(peers[i], List.of(w));
        }
        iterations.update(id, r);
        iterations.start(true, perShard, new int[0]);
    }

    /**
     * One decode iteration with every decoding request. Every shard that holds KV of any of them (the members) runs
     * every row, in the same order: a row whose request keeps no KV on a shard attends to nothing there. Each member
     * merges all members' partial attention in member order, so all hold the same activations after each layer and
     * the request's last segment samples.
     */
    private void startDecode(List<Map.Entry<String, RequestState>> decoding, Iterations iterations) throws Exception {
        TreeSet<Integer> memberSet = new TreeSet<>();
        List<Map.Entry<String, RequestState>> rows = new ArrayList<>();
        List<Integer> appendAt = new ArrayList<>();
        for (Map.Entry<String, RequestState> e : decoding) {
            RequestState r = e.getValue();
            int at = appendPeer(r);
            if (at < 0) {
                iterations.fail(e.getKey(), r, "The KV cache is full: no shard of this request has room for another token.");
                continue;
            }
            rows.add(e);
            appendAt.add(at);
            for (int p : r.peers) {
                memberSet.add(p);
            }
        }
        int[] members = memberSet.stream().mapToInt(Integer::intValue).toArray();
        Map<Integer, List<StepSeq>> perShard = new LinkedHashMap<>();
        for (int m : members) {
            perShard.put(m, new ArrayList<>());
        }
        for (int k = 0; k < rows.size(); k++) {
            String id = rows.get(k).getKey();
            RequestState r = rows.get(k).getValue();
            int at = appendAt.get(k);
            int pos = r.kvTotal();
            int last = r.lastToken();
            for (int m : members) {
                int i = indexOf(r.peers, m);
                StepSeq w = r.newSeq();
                w.mode = StepSeq.DECODE;
                w.tokens = new int[] {last};
                w.startPos = pos;
                w.peers = r.peers;
                w.peerIndex = i;
                if (i >= 0) {
                    w.kvBefore = r.kvTokens[i];
                    w.appendKv = i == at;
                    w.blockTable = r.blockTables[i];
                    w.sample = i == r.peers.length - 1;
                } else {
                    w.kvBefore = 0;
                    w.appendKv = false;
                    w.blockTable = new int[0];
                    w.sample = false;
                }
                perShard.get(m).add(w);
            }
            r.kvTokens[at]++;
            r.stepInFlight = true;
            r.lastAppendPeer = at;
            iterations.update(id, r);
        }
        iterations.start(false, perShard, members);
    }

    /** Index (into peers) of the shard that stores the next token's KV, growing its block table if needed; -1 if none can. */
    private int appendPeer(RequestState r) {
        int[] candidates;
        if (append == JobSettings.AppendPolicy.TAIL) {
            candidates = new int[] {r.peers.length - 1};
        } else {
            Integer[] order = new Integer[r.peers.length];
            for (int i = 0; i < order.length; i++) {
                order[i] = i;
            }
            Arrays.sort(order, Comparator.comparingInt((Integer i) -> r.kvTokens[i]).thenComparingInt(i -> i));
            candidates = Arrays.stream(order).mapToInt(Integer::intValue).toArray();
        }
        for (int i : candidates) {
            if (r.kvTokens[i] < r.blockTables[i].length * kv.blockSize()) {
                return i;
            }
            int[] more = kv.allocate(r.peers[i], 1);
            if (more != null) {
                r.blockTables[i] = Arrays.copyOf(r.blockTables[i], r.blockTables[i].length + 1);
                r.blockTables[i][r.blockTables[i].length - 1] = more[0];
                return i;
            }
        }
        return -1;
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }
}
