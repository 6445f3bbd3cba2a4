package sps2.operators.runtime;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import sps2.gpu.AttentionBatch;
import sps2.gpu.Backend;
import sps2.gpu.BlockAllocator;
import sps2.gpu.KvPool;
import sps2.gpu.LlamaModel;
import sps2.gpu.Tensor;
import sps2.operators.JobSettings;
import sps2.operators.messages.ShardStep;
import sps2.operators.messages.StepSeq;

/**
 * What one shard holds on its device for the whole job: the shared model, its paged KV pool and the
 * contexts of the steps in flight. Every stage operator subtask of the shard acquires the same
 * instance (they run in one slot, pinned together by a co-location group), so own-shard data moves
 * between stages as a handle. Block 0 of the pool is never given to a request: rows whose KV must not be
 * stored (decode rows on a shard that does not append) write there.
 */
public final class ShardRuntime {
    private static final Map<String, ShardRuntime> RUNTIMES = new HashMap<>();

    private final String key;
    private final LoadedModel loaded;
    private final LlamaModel model;
    private final KvPool pool;
    private final Map<Long, StepContext> contexts = new ConcurrentHashMap<>();
    private final List<LlamaModel.Workspace> freeWorkspaces = new ArrayList<>();
    private int users;

    private ShardRuntime(String key, LoadedModel loaded, LlamaModel model, KvPool pool) {
        this.key = key;
        this.loaded = loaded;
        this.model = model;
        this.pool = pool;
    }

    /**
     * A runtime over a model and pool the caller owns and closes (the in-process sequence-parallel runner, tests):
     * no registry, no tokenizer.
     */
    public static ShardRuntime standalone(LlamaModel model, KvPool pool) {
        return new ShardRuntime("standalone", null, model, pool);
    }

    /**
     * The runtime of one shard for one execution attempt: a restarted job never sees the device state of the
     * attempt before it (its KV comes back by recomputation or from keyed state).
     */
    public static ShardRuntime acquire(JobSettings settings, int shard, int attempt) {
        String key = settings.runtimeId() + "#" + shard + "#" + attempt;
        synchronized (RUNTIMES) {
            ShardRuntime r = RUNTIMES.get(key);
            if (r == null) {
                LoadedModel m = LoadedModel.acquire(settings, settings.backend().deviceOf(shard));
                KvPool pool = m.backend().allocateKvPool(m.model().config().nLayers(), m.model().config().kvDim(),
                        settings.kvBlocks(), settings.blockSize());
                r = new ShardRuntime(key, m, m.model(), pool);
                RUNTIMES.put(key, r);
            }
            r.users++;
            return r;
        }
    }

    public void release() {
        synchronized (RUNTIMES) {
            if (--users == 0) {
                RUNTIMES.remove(key);
                contexts.values().forEach(StepContext::close);
                contexts.clear();
                synchronized (freeWorkspaces) {
                    freeWorkspaces.forEach(LlamaModel.Workspace::close);
                    freeWorkspaces.clear();
                }
                pool.close();
                loaded.close();
            }
        }
    }

    public LlamaModel model() {
        return model;
    }

    public Backend backend() {
        return model.backend();
    }

    /** The shared model of a job's runtime (its tokenizer); null for a {@link #standalone} one. */
    public LoadedModel loaded() {
        return loaded;
    }

    /** Frees the workspaces this runtime keeps for reuse (a {@link #standalone} runtime, when its owner is done). */
    public void closeWorkspaces() {
        synchronized (freeWorkspaces) {
            freeWorkspaces.forEach(LlamaModel.Workspace::close);
            freeWorkspaces.clear();
        }
    }

    public KvPool pool() {
        return pool;
    }

    /** Creates the context of a new step on this shard: uploads ids, positions and KV slots. */
    public StepContext begin(ShardStep step) {
        Backend b = backend();
        int n = step.rows();
        int[] ids = new int[n];
        int[] pos = new int[n];
        int[] slots = new int[n];
        int bs = pool.blockSize();
        int s = 0;
        int[] qStart = new int[step.seqs.length];
        int[] qLen = new int[step.seqs.length];
        int[] kvLen = new int[step.seqs.length];
        int[][] tables = new int[step.seqs.length][];
        int row = 0;
        for (StepSeq w : step.seqs) {
            qStart[s] = row;
            qLen[s] = w.rows();
            kvLen[s] = w.kvBefore + (w.appendKv ? w.rows() : 0);
            tables[s] = w.blockTable;
            for (int i = 0; i < w.rows(); i++) {
                ids[row] = w.tokens[i];
                pos[row] = w.startPos + i;
                slots[row] = w.appendKv ? BlockAllocator.slot(w.blockTable, bs, w.kvBefore + i) : i % bs;
                row++;
            }
            s++;
        }
        // A decode row on a shard that does not append sees all kvBefore keys: pretend its query is the
        // last of kvBefore + 1 keys by attending with qLen 1 over kvBefore keys (bottom-right causal).
        AttentionBatch batch = new AttentionBatch(qStart, qLen, kvLen, tables);
        StepContext ctx = new StepContext(this, step, takeWorkspace(n), b.upload(pos), b.upload(slots), b.upload(ids),
                b.prepare(batch));
        contexts.put(step.iteration, ctx);
        return ctx;
    }

    public StepContext context(long iteration) {
        StepContext c = contexts.get(iteration);
        if (c == null) {
            throw new IllegalStateException("Shard " + key + " has no step of iteration " + iteration + " in flight");
        }
        return c;
    }

    public void end(long iteration) {
        StepContext c = contexts.remove(iteration);
        if (c != null) {
            c.close();
        }
    }

    private LlamaModel.Workspace takeWorkspace(int rows) {
        synchronized (freeWorkspaces) {
            for (int i = 0; i < freeWorkspaces.size(); i++) {
                if (freeWorkspaces.get(i).capacity >= rows) {
                    return freeWorkspaces.remove(i);
                }
            }
        }
        return model().workspace(Math.max(rows, 16));
    }

    void returnWorkspace(LlamaModel.Workspace ws) {
        synchronized (freeWorkspaces) {
            if (freeWorkspaces.size() < 4) {
                freeWorkspaces.add(ws);
                return;
            }
        }
        ws.close();
    }

    /** A scratch tensor for partials; callers close it. */
    public Tensor allocate(int rows, int cols) {
        return backend().allocate(rows, cols);
    }
}
