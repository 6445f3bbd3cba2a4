package sps2.gpu.cuda;

import static jcuda.driver.JCudaDriver.cuEventSynchronize;

import jcuda.driver.CUevent;
import sps2.gpu.PendingRead;
import sps2.gpu.WireType;

/**
 * A device-to-host copy in flight on a copy stream ({@link CudaBackend#readAsync}): the packed rows sit in
 * {@code packed} on the device, the copy lands in the page-locked {@code host} buffer, and {@code done} is
 * recorded on the copy stream after it.
 */
final class CudaRead implements PendingRead {
    private final CudaBackend owner;
    private final WireType type;
    private final int bytes;
    private final CudaTensor packed;
    private final PinnedPool.Buffer host;
    private final CUevent done;
    private boolean finished;

    CudaRead(CudaBackend owner, WireType type, int bytes, CudaTensor packed, PinnedPool.Buffer host, CUevent done) {
        this.owner = owner;
        this.type = type;
        this.bytes = bytes;
        this.packed = packed;
        this.host = host;
        this.done = done;
    }

    @Override
    public WireType type() {
        return type;
    }

    @Override
    public int bytes() {
        return bytes;
    }

    @Override
    public synchronized void awaitInto(byte[] dst, int offset) {
        if (finished) {
            throw new IllegalStateException("A pending read was awaited twice");
        }
        if (offset < 0 || dst.length - offset < bytes) {
            throw new IllegalArgumentException("A read of " + bytes + " bytes does not fit at offset " + offset + " of " + dst.length + " bytes");
        }
        owner.stream();
        cuEventSynchronize(done);
        host.bytes.get(0, dst, offset, bytes);
        finish();
    }

    @Override
    public synchronized void close() {
        if (!finished) {
            cuEventSynchronize(done);
            finish();
        }
    }

    /** The copy has landed: the buffers and the event go back to their pools. */
    private void finish() {
        finished = true;
        owner.readFinished(packed, host, done);
    }
}
