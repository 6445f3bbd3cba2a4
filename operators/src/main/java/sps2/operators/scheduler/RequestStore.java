package sps2.operators.scheduler;

import java.util.Map;

/**
 * The scheduler's request states by request id: keyed state in the job ({@link SchedulerOperator}), a map in tests.
 * A state read from it is written back with {@link #put} after every change, as keyed state needs.
 */
public interface RequestStore {
    RequestState get(String id) throws Exception;

    void put(String id, RequestState state) throws Exception;

    void remove(String id) throws Exception;

    /** Every request, in the store's order. */
    Iterable<Map.Entry<String, RequestState>> entries() throws Exception;
}
