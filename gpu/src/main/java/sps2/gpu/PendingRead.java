package sps2.gpu;

/**
 * A copy of device rows to the host that may still be in flight ({@link Backend#readAsync}): the device
 * keeps computing while it runs, and {@link #await()} blocks only until this copy has landed.
 * Awaited (or closed) once, on any thread.
 */
public interface PendingRead extends AutoCloseable {

    /** The element type of the bytes. */
    WireType type();

    /** How many bytes the copy delivers. */
    int bytes();

    /** Waits for the copy and puts its bytes into {@code dst} from {@code offset}; releases its buffers. */
    void awaitInto(byte[] dst, int offset);

    /** Waits for the copy and returns its bytes in a new array. */
    default byte[] await() {
        byte[] out = new byte[bytes()];
        awaitInto(out, 0);
        return out;
    }

    /** Releases the copy's buffers without taking its bytes (waits for the copy if it is still running). */
    @Override
    void close();

    /** A read that finished when it was made (host backends): {@code bytes} are its result. */
    static PendingRead completed(WireType type, byte[] bytes) {
        return new PendingRead() {
            private boolean taken;

            @Override
            public WireType type() {
                return type;
            }

            @Override
            public int bytes() {
                return bytes.length;
            }

            @Override
            public void awaitInto(byte[] dst, int offset) {
                take();
                System.arraycopy(bytes, 0, dst, offset, bytes.length);
            }

            @Override
            public byte[] await() {
                take();
                return bytes;
            }

            private void take() {
                if (taken) {
                    throw new IllegalStateException("A pending read was awaited twice");
                }
                taken = true;
            }

            @Override
            public void close() {
                taken = true;
            }
        };
    }
}
