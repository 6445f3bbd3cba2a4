package sps2.job.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The pretrained tiny model of the shared data folder (stories260K), used by commands given no --model:
 * looked up under $SPS2_SHARED, then beside the checkout (../shared of the sps2 root), then ../shared of the
 * working directory.
 */
public final class DefaultModel {
    public static final String RELATIVE = "models/stories260K.gguf";

    private DefaultModel() {
    }

    /** Where the default model is looked for, in order. */
    public static List<Path> candidates() {
        List<Path> candidates = new ArrayList<>();
        String shared = System.getenv("SPS2_SHARED");
        if (shared != null) {
            candidates.add(Path.of(shared, RELATIVE));
        }
        String root = System.getProperty("sps2.root");
        if (root != null) {
            candidates.add(Path.of(root).resolve("../shared").resolve(RELATIVE).normalize());
        }
        candidates.add(Path.of("../shared").resolve(RELATIVE));
        return candidates;
    }

    /** The first candidate that exists. */
    public static Optional<Path> find() {
        return candidates().stream().filter(Files::exists).findFirst();
    }
}
