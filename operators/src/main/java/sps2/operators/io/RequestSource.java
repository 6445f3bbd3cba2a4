package sps2.operators.io;

import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.connector.source.Boundedness;
import org.apache.flink.api.connector.source.ReaderOutput;
import org.apache.flink.api.connector.source.Source;
import org.apache.flink.api.connector.source.SourceEvent;
import org.apache.flink.api.connector.source.SourceReader;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.api.connector.source.SplitEnumerator;
import org.apache.flink.api.connector.source.SplitEnumeratorContext;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.KafkaSourceEnumState;
import org.apache.flink.connector.kafka.source.split.KafkaPartitionSplit;
import org.apache.flink.core.io.InputStatus;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/**
 * The job's source of requests: Flink's {@link KafkaSource}, whose own offset commits on checkpoints are off,
 * plus {@link FinishedOffsets} on the first reader subtask, which commits the offsets of finished requests
 * instead. A job that resumes from a checkpoint reads from the checkpoint's offsets; a job without one
 * starts from the committed offsets, so it skips no request that never finished.
 */
public final class RequestSource implements Source<ParsedRequest, KafkaPartitionSplit, KafkaSourceEnumState>,
        ResultTypeQueryable<ParsedRequest> {

    private static final long serialVersionUID = 1L;

    private final KafkaSource<ParsedRequest> kafka;
    private final FinishedOffsets.Settings finished;

    public RequestSource(KafkaSource<ParsedRequest> kafka, FinishedOffsets.Settings finished) {
        this.kafka = Objects.requireNonNull(kafka, "kafka");
        this.finished = finished;
    }

    /** The Kafka source underneath. */
    public KafkaSource<ParsedRequest> kafka() {
        return kafka;
    }

    @Override
    public Boundedness getBoundedness() {
        return kafka.getBoundedness();
    }

    @Override
    public SourceReader<ParsedRequest, KafkaPartitionSplit> createReader(SourceReaderContext context) throws Exception {
        SourceReader<ParsedRequest, KafkaPartitionSplit> reader = kafka.createReader(context);
        if (finished == null || context.getIndexOfSubtask() != 0) {
            return reader;
        }
        FinishedOffsets committer = new FinishedOffsets(finished);
        context.metricGroup().gauge("requestsUnfinished", committer::unfinished);
        return new Reader(reader, committer);
    }

    @Override
    public SplitEnumerator<KafkaPartitionSplit, KafkaSourceEnumState> createEnumerator(
            SplitEnumeratorContext<KafkaPartitionSplit> context) throws Exception {
        return kafka.createEnumerator(context);
    }

    @Override
    public SplitEnumerator<KafkaPartitionSplit, KafkaSourceEnumState> restoreEnumerator(
            SplitEnumeratorContext<KafkaPartitionSplit> context, KafkaSourceEnumState state) throws Exception {
        return kafka.restoreEnumerator(context, state);
    }

    @Override
    public SimpleVersionedSerializer<KafkaPartitionSplit> getSplitSerializer() {
        return kafka.getSplitSerializer();
    }

    @Override
    public SimpleVersionedSerializer<KafkaSourceEnumState> getEnumeratorCheckpointSerializer() {
        return kafka.getEnumeratorCheckpointSerializer();
    }

    @Override
    public TypeInformation<ParsedRequest> getProducedType() {
        return kafka.getProducedType();
    }

    /** The Kafka reader, with the committer running for as long as it does. */
    private static final class Reader implements SourceReader<ParsedRequest, KafkaPartitionSplit> {
        private final SourceReader<ParsedRequest, KafkaPartitionSplit> delegate;
        private final FinishedOffsets committer;

        Reader(SourceReader<ParsedRequest, KafkaPartitionSplit> delegate, FinishedOffsets committer) {
            this.delegate = delegate;
            this.committer = committer;
        }

        @Override
        public void start() {
            delegate.start();
            committer.start();
        }

        @Override
        public InputStatus pollNext(ReaderOutput<ParsedRequest> output) throws Exception {
            return delegate.pollNext(output);
        }

        @Override
        public List<KafkaPartitionSplit> snapshotState(long checkpointId) {
            return delegate.snapshotState(checkpointId);
        }

        @Override
        public CompletableFuture<Void> isAvailable() {
            return delegate.isAvailable();
        }

        @Override
        public void addSplits(List<KafkaPartitionSplit> splits) {
            delegate.addSplits(splits);
        }

        @Override
        public void notifyNoMoreSplits() {
            delegate.notifyNoMoreSplits();
        }

        @Override
        public void handleSourceEvents(SourceEvent event) {
            delegate.handleSourceEvents(event);
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) throws Exception {
            delegate.notifyCheckpointComplete(checkpointId);
        }

        @Override
        public void notifyCheckpointAborted(long checkpointId) throws Exception {
            delegate.notifyCheckpointAborted(checkpointId);
        }

        @Override
        public void pauseOrResumeSplits(java.util.Collection<String> pause, java.util.Collection<String> resume) {
            delegate.pauseOrResumeSplits(pause, resume);
        }

        @Override
        public void close() throws Exception {
            try {
                committer.close();
            } finally {
                delegate.close();
            }
        }
    }
}
