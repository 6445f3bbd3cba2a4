package sps2.operators.io;

import java.util.Objects;

import org.apache.flink.api.common.typeinfo.TypeInfo;

import sps2.schemas.DeadLetter;
import sps2.schemas.GenerateRequest;

/**
 * What the job read from one record of the requests topic: either a {@link GenerateRequest} or,
 * when the record could not be read, a {@link DeadLetter} describing it. Exactly one of the two is
 * set.
 *
 * <p>Flink serializes it with {@link ParsedRequestSerializer} (declared through {@link TypeInfo}, so
 * every operator that produces it picks it up without a Kryo fallback).
 *
 * @param request the request, or null for a dead letter
 * @param deadLetter the unreadable record, or null for a request
 * @param readTimestampMs wall clock (ms since the epoch) when the job read the record
 */
@TypeInfo(ParsedRequestTypeInfo.Factory.class)
public record ParsedRequest(GenerateRequest request, DeadLetter deadLetter, long readTimestampMs) {

    public ParsedRequest {
        if ((request == null) == (deadLetter == null)) {
            throw new IllegalArgumentException("A parsed request holds exactly one of a request and a dead letter.");
        }
    }

    public static ParsedRequest of(GenerateRequest request, long readTimestampMs) {
        return new ParsedRequest(Objects.requireNonNull(request, "request"), null, readTimestampMs);
    }

    public static ParsedRequest dead(DeadLetter deadLetter, long readTimestampMs) {
        return new ParsedRequest(null, Objects.requireNonNull(deadLetter, "deadLetter"), readTimestampMs);
    }

    /** Whether this holds a readable request (otherwise a dead letter). */
    public boolean isRequest() {
        return request != null;
    }
}
