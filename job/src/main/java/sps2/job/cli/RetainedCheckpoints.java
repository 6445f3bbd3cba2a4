package sps2.job.cli;

import java.io.DataInputStream;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.core.fs.FileStatus;
import org.apache.flink.core.fs.FileSystem;
import org.apache.flink.core.fs.Path;
import org.apache.flink.runtime.checkpoint.Checkpoints;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The checkpoints that jobs retained in a checkpoint directory ({@code <dir>/<job id>/chk-<n>/_metadata},
 * Flink's layout), and the newest one a new run can resume from. Works on any file system Flink has (a local
 * folder, or a shared one such as S3 or HDFS for a cluster).
 */
final class RetainedCheckpoints {
    private static final Logger LOG = LoggerFactory.getLogger(RetainedCheckpoints.class);

    /** A completed checkpoint: its directory, number and when its metadata was written. */
    record Retained(Path directory, long number, long modifiedMs) {
    }

    private RetainedCheckpoints() {
    }

    /**
     * The newest checkpoint under {@code dir} whose metadata Flink can read (one cut short by a crash while it
     * was written is skipped), or empty if there is none or the directory does not exist.
     */
    static Optional<Retained> latest(Path dir) throws IOException {
        for (Retained candidate : all(dir)) {
            if (readable(candidate)) {
                return Optional.of(candidate);
            }
            LOG.warn("Skipping the checkpoint {}: its metadata cannot be read.", candidate.directory());
        }
        return Optional.empty();
    }

    /** Every completed checkpoint under {@code dir}, newest first. */
    static List<Retained> all(Path dir) throws IOException {
        FileSystem fs = dir.getFileSystem();
        List<Retained> found = new ArrayList<>();
        if (!fs.exists(dir)) {
            return found;
        }
        for (FileStatus job : list(fs, dir)) {
            if (!job.isDir()) {
                continue;
            }
            for (FileStatus chk : list(fs, job.getPath())) {
                String name = chk.getPath().getName();
                if (!chk.isDir() || !name.matches("chk-\\d+")) {
                    continue;
                }
                Path metadata = new Path(chk.getPath(), "_metadata");
                if (fs.exists(metadata)) {
                    found.add(new Retained(chk.getPath(), Long.parseLong(name.substring(4)), fs.getFileStatus(metadata).getModificationTime()));
                }
            }
        }
        found.sort(Comparator.comparingLong(Retained::modifiedMs).thenComparingLong(Retained::number).reversed());
        return found;
    }

    private static FileStatus[] list(FileSystem fs, Path dir) throws IOException {
        FileStatus[] statuses = fs.listStatus(dir);
        return statuses == null ? new FileStatus[0] : statuses;
    }

    private static boolean readable(Retained checkpoint) {
        Path metadata = new Path(checkpoint.directory(), "_metadata");
        try (FSDataInputStream in = metadata.getFileSystem().open(metadata); DataInputStream data = new DataInputStream(in)) {
            Checkpoints.loadCheckpointMetadata(data, RetainedCheckpoints.class.getClassLoader(), checkpoint.directory().toString());
            return true;
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }
}
