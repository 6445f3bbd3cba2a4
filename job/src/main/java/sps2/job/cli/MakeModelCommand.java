package sps2.job.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import sps2.job.UserException;
import sps2.model.DType;
import sps2.model.ModelConfig;
import sps2.model.shapes.ModelShapes;
import sps2.model.shapes.RandomCheckpointWriter;

/** Writes a random-weight checkpoint of a real model shape, for performance work. */
@Command(name = "make-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight safetensors checkpoint (+ config.json) of a named model shape.")
public final class MakeModelCommand implements Callable<Integer> {
    @Option(names = "--shape", required = true, description = "Model shape: ${COMPLETION-CANDIDATES}.", completionCandidates = Shapes.class)
    String shape;

    @Option(names = "--out", required = true, description = "Output directory.")
    Path out;

    @Option(names = "--dtype", defaultValue = "bf16", description = "bf16 or f32 (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default: ${DEFAULT-VALUE}).")
    long seed;

    static final class Shapes extends java.util.ArrayList<String> {
        Shapes() {
            super(ModelShapes.names());
        }
    }

    @Override
    public Integer call() {
        if (!ModelShapes.names().contains(shape)) {
            throw new UserException("Unknown shape '" + shape + "'; known shapes: " + String.join(", ", ModelShapes.names()) + ".");
        }
        DType type = switch (dtype.toLowerCase()) {
            case "bf16" -> DType.BF16;
            case "f32" -> DType.F32;
            default -> throw new UserException("Unknown dtype '" + dtype + "': use bf16 or f32.");
        };
        ModelConfig config = ModelShapes.get(shape);
        Path file;
        try (ProgressBar bar = new ProgressBarBuilder().setTaskName("Writing " + shape).setUnit(" MB", 1 << 20).setInitialMax(1)
                .setStyle(ProgressBarStyle.ASCII).setConsumer(new me.tongfei.progressbar.ConsoleProgressBarConsumer(System.err)).build()) {
            file = RandomCheckpointWriter.write(config, shape, out, type, seed, (done, total) -> {
                bar.maxHint(total);
                bar.stepTo(done);
            });
        }
        System.err.println("Wrote a random " + shape + " checkpoint (" + dtype + ", seed " + seed + ") to " + file.getParent() + ".");
        return 0;
    }
}
