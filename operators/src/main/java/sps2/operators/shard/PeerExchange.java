package sps2.operators.shard;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The meeting point of the shards of one sequence-parallel group inside one JVM (one TaskManager). A shard posts
 * a {@link Handoff} for a peer under (iteration, layer, from, to); the peer takes it, waiting if it is not there
 * yet. Only handles cross: the tensors stay on their device. Posting never blocks, so shards may also run one
 * after another on one thread (prefill only waits on earlier segments).
 *
 * <p>Groups are found by name ({@link #join}); every shard of a group must join before any exchange with it can
 * complete, which is also how the job checks that the shards of a group were placed in one TaskManager
 * ({@link #awaitMembers}).
 */
public final class PeerExchange {
    private static final Map<String, PeerExchange> GROUPS = new HashMap<>();

    private record Key(long iteration, int layer, int from, int to) {
    }

    private final String name;
    private final int size;
    private final Set<Integer> members = ConcurrentHashMap.newKeySet();
    private final Map<Key, CompletableFuture<Handoff>> slots = new ConcurrentHashMap<>();
    private int users;

    private PeerExchange(String name, int size) {
        this.name = name;
        this.size = size;
    }

    /** An exchange of {@code size} shards that lives only as long as the caller (tests, the in-process runner). */
    public static PeerExchange local(int size) {
        PeerExchange e = new PeerExchange("local", size);
        for (int s = 0; s < size; s++) {
            e.members.add(s);
        }
        return e;
    }

    /** Joins group {@code name} (made by its first member) as shard {@code shard}; {@link #leave} when done. */
    public static PeerExchange join(String name, int size, int shard) {
        synchronized (GROUPS) {
            PeerExchange e = GROUPS.computeIfAbsent(name, n -> new PeerExchange(n, size));
            if (e.size != size) {
                throw new IllegalStateException("The shard group " + name + " has " + e.size + " shards, not " + size);
            }
            e.members.add(shard);
            e.users++;
            synchronized (e.members) {
                e.members.notifyAll();
            }
            return e;
        }
    }

    public void leave(int shard) {
        synchronized (GROUPS) {
            members.remove(shard);
            if (--users <= 0) {
                GROUPS.remove(name);
                slots.clear();
            }
        }
    }

    public int size() {
        return size;
    }

    /**
     * Waits until every shard of the group has joined in this JVM; false if some have not within the timeout
     * (they run in another process, or have not started).
     */
    public boolean awaitMembers(Duration timeout) throws InterruptedException {
        long end = System.nanoTime() + timeout.toNanos();
        synchronized (members) {
            while (members.size() < size) {
                long left = end - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                members.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
            }
        }
        return true;
    }

    /** Shards of the group that have not joined in this JVM. */
    public Set<Integer> missing() {
        Set<Integer> m = new java.util.TreeSet<>();
        for (int s = 0; s < size; s++) {
            if (!members.contains(s)) {
                m.add(s);
            }
        }
        return m;
    }

    void post(long iteration, int layer, int from, int to, Handoff h) {
        slot(new Key(iteration, layer, from, to)).complete(h);
    }

    /**
     * The handoff {@code from} posted for {@code to}; waits up to {@code timeout} and then fails saying which peer
     * never delivered (a peer that failed, or one placed in another TaskManager).
     */
    Handoff take(long iteration, int layer, int from, int to, Duration timeout) throws InterruptedException {
        Key k = new Key(iteration, layer, from, to);
        CompletableFuture<Handoff> f = slot(k);
        try {
            return f.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            String where = members.contains(from) ? "it runs in this process but did not send it (it may have failed)"
                    : "it has not joined the group in this process: the shards of one sequence-parallel group must run in one TaskManager";
            throw new IllegalStateException("Shard " + to + " waited " + timeout.toSeconds() + " s for layer " + layer + " of iteration "
                    + iteration + " from shard " + from + " of group " + name + "; " + where + ".", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException("The exchange from shard " + from + " failed", e.getCause());
        } finally {
            slots.remove(k);
        }
    }

    private CompletableFuture<Handoff> slot(Key k) {
        return slots.computeIfAbsent(k, x -> new CompletableFuture<>());
    }

    /** Handoffs posted and not yet taken (tests: nothing is left behind). */
    int waiting() {
        return slots.size();
    }
}
