package sps2.operators;

import java.io.Serializable;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A handle to one object of this JVM that survives serialization: the copies of it that a job graph carries into
 * its operators all resolve to that object, so a launcher and the operators of the job it runs in its own JVM (an
 * embedded cluster, a test's MiniCluster) can share it. This is the one registry behind {@link JobHooks} that need
 * shared objects; it holds each object until its handle is closed. In another JVM (a remote TaskManager) the handle
 * resolves to nothing and {@link #get} throws.
 */
public final class SharedRef<T> implements Serializable, AutoCloseable {
    private static final long serialVersionUID = 1L;
    private static final Map<UUID, Object> OBJECTS = new ConcurrentHashMap<>();

    private final UUID id;
    private final String what;

    private SharedRef(UUID id, String what) {
        this.id = id;
        this.what = what;
    }

    /** Shares {@code object} under a new handle; {@code what} names it in errors. */
    public static <T> SharedRef<T> of(T object, String what) {
        SharedRef<T> ref = new SharedRef<>(UUID.randomUUID(), what);
        OBJECTS.put(ref.id, object);
        return ref;
    }

    /** The shared object. */
    @SuppressWarnings("unchecked")
    public T get() {
        Object o = OBJECTS.get(id);
        if (o == null) {
            throw new IllegalStateException("The " + what + " is not shared in this JVM: it was closed, or this operator runs in another JVM"
                    + " than the launcher that made it.");
        }
        return (T) o;
    }

    /** Stops sharing the object. */
    @Override
    public void close() {
        OBJECTS.remove(id);
    }
}
