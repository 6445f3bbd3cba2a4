package sps2.gpu;

/**
 * A point in the stream of device work one thread has issued ({@link Backend#fence()}). Another thread, on the
 * same backend or on another device of the host, makes its own later work wait for it with
 * {@link Backend#await(Fence)} — how one shard hands device tensors to another without a host round trip.
 * Backends whose calls finish before they return use {@link #DONE}.
 */
public interface Fence {

    /** Frees what the fence holds once every wait on it has been issued (waits already issued still hold). */
    default void release() {
    }

    /** A fence that has already passed. */
    Fence DONE = new Fence() {
        @Override
        public String toString() {
            return "Fence.DONE";
        }
    };
}
