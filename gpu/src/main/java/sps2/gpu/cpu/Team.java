package sps2.gpu.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * A fixed team of threads for the parallel sections of a forward pass. A decode step of a small model is
 * about 50 sections of a few microseconds each, so the workers do not park between them: after a section
 * a worker spins on the next one for {@link #SPIN_NANOS}, and parks only when none came.
 *
 * <p>The caller takes part in its own section: the units of a section are handed out by one counter to
 * whoever asks first, so a worker that is descheduled (other processes on a busy machine) slows a section
 * down without stalling it. Which thread ran a unit never changes its result.
 *
 * <p>One section runs at a time. A thread that calls {@link #run} while a section is in flight (two operators
 * sharing one backend, or a section's own body) runs its section alone on its own thread instead of waiting.
 */
final class Team implements AutoCloseable {
    /** How long an idle worker spins before it parks. */
    static final long SPIN_NANOS = 200_000;

    /** One parallel section: units 0..units-1 of body. */
    private static final class Section {
        final IntConsumer body;
        final int units;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        volatile Throwable failure;

        Section(IntConsumer body, int units) {
            this.body = body;
            this.units = units;
        }

        /** Runs units until none is left; returns how many this thread ran. */
        void work() {
            int ran = 0;
            for (int u; (u = next.getAndIncrement()) < units; ran++) {
                try {
                    body.accept(u);
                } catch (Throwable t) {
                    failure = t;
                }
            }
            if (ran > 0) {
                done.addAndGet(ran);
            }
        }
    }

    private final Thread[] workers;
    /** parked[i]: worker i is parked, or about to be, and needs an unpark to see the next section. */
    private final AtomicInteger[] parked;
    private final AtomicBoolean busy = new AtomicBoolean();
    private volatile Section current;
    private volatile boolean closed;

    Team(int threads, String name) {
        workers = new Thread[threads - 1];
        parked = new AtomicInteger[workers.length];
        for (int i = 0; i < workers.length; i++) {
            int id = i;
            parked[i] = new AtomicInteger();
            workers[i] = new Thread(() -> loop(id), name + "-" + (i + 1));
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    /** Runs body(0..units-1) on the team and returns when all units have finished. */
    void run(int units, IntConsumer body) {
        if (!busy.compareAndSet(false, true)) {
            for (int u = 0; u < units; u++) {
                body.accept(u);
            }
            return;
        }
        try {
            Section s = new Section(body, units);
            current = s;
            for (int i = 0; i < workers.length; i++) {
                if (parked[i].get() != 0 && parked[i].compareAndSet(1, 0)) {
                    LockSupport.unpark(workers[i]);
                }
            }
            s.work();
            for (int spins = 0; s.done.get() < units; spins++) {
                if (spins < 1 << 14) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield(); // a worker holding a unit was descheduled
                }
            }
            current = null;
            Throwable t = s.failure;
            if (t instanceof RuntimeException e) {
                throw e;
            } else if (t instanceof Error e) {
                throw e;
            } else if (t != null) {
                throw new IllegalStateException(t);
            }
        } finally {
            busy.set(false);
        }
    }

    private void loop(int id) {
        Section seen = null;
        long idleSince = System.nanoTime();
        for (int spins = 0; !closed; spins++) {
            Section s = current;
            if (s != null && s != seen) {
                seen = s;
                s.work();
                idleSince = System.nanoTime();
                spins = 0;
            } else if ((spins & 63) != 63 || System.nanoTime() - idleSince < SPIN_NANOS) {
                Thread.onSpinWait();
            } else {
                parked[id].set(1);
                // the caller publishes `current` and then reads `parked`; we wrote `parked` and now read `current`:
                // one of us sees the other's write, so a section is never missed
                Section again = current;
                if (again == null || again == seen) {
                    LockSupport.park(this);
                }
                parked[id].set(0);
                idleSince = System.nanoTime();
                spins = 0;
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
    }
}
