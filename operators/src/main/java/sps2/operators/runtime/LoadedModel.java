package sps2.operators.runtime;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sps2.gpu.Backend;
import sps2.gpu.LlamaModel;
import sps2.model.ModelLoader;
import sps2.model.ModelWeights;
import sps2.model.tokenizer.Tokenizer;
import sps2.model.tokenizer.Tokenizers;
import sps2.operators.JobSettings;

/**
 * A model loaded once per JVM and device and shared by every operator that uses it (all stage operators of
 * all shards that run on the same device), reference-counted so the last user frees it.
 */
public final class LoadedModel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(LoadedModel.class);
    private static final Map<String, LoadedModel> LOADED = new HashMap<>();

    private final String key;
    private final Backend backend;
    private final LlamaModel model;
    private final Tokenizer tokenizer;
    private int users;

    private LoadedModel(String key, Backend backend, LlamaModel model, Tokenizer tokenizer) {
        this.key = key;
        this.backend = backend;
        this.model = model;
        this.tokenizer = tokenizer;
    }

    /** The shared model for these settings on device {@code device}, loading it on first use. */
    public static LoadedModel acquire(JobSettings settings, int device) {
        String key = settings.modelPath() + "|" + settings.backend() + "|" + settings.kernels() + "|" + device;
        synchronized (LOADED) {
            LoadedModel m = LOADED.get(key);
            if (m == null) {
                long start = System.nanoTime();
                ModelWeights weights = ModelLoader.load(Path.of(settings.modelPath()));
                Tokenizer tok = Tokenizers.find(Path.of(settings.modelPath()),
                        settings.tokenizerPath() == null ? null : Path.of(settings.tokenizerPath()), weights).orElse(null);
                Backend backend = settings.backend().open(device, settings.threadsPerShard(), settings.kernels());
                LlamaModel model = new LlamaModel(backend, weights, null);
                m = new LoadedModel(key, backend, model, tok);
                LOADED.put(key, m);
                LOG.info("Loaded the model {} ({}) on {} in {} ms.", settings.modelPath(), weights.summary(), backend.name(),
                        (System.nanoTime() - start) / 1_000_000);
            }
            m.users++;
            return m;
        }
    }

    public LlamaModel model() {
        return model;
    }

    public Backend backend() {
        return backend;
    }

    /** The model's tokenizer; empty for a model that has none (requests then send token ids, events carry no text). */
    public java.util.Optional<Tokenizer> tokenizer() {
        return java.util.Optional.ofNullable(tokenizer);
    }

    @Override
    public void close() {
        synchronized (LOADED) {
            if (--users == 0) {
                LOADED.remove(key);
                model.close();
                backend.close();
            }
        }
    }
}
