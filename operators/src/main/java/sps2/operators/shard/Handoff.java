package sps2.operators.shard;

import java.util.ArrayList;
import java.util.List;

import sps2.gpu.Backend;
import sps2.gpu.Fence;
import sps2.gpu.Tensor;

/**
 * Device tensors one shard hands to other shards of its group through the {@link PeerExchange}: the prefill K/V
 * a later segment may see, or a decode partial attention result. They stay where the sender computed them; a
 * reader on the same device waits for the sender's fence and reads them in place, a reader on another GPU of the
 * host copies them device to device ({@link Backend#copyFrom}). The last reader to finish frees them, after every
 * reader's work on them is ordered before the free.
 */
final class Handoff {
    /** The tier a reader took, for the per-tier byte counts. */
    enum Tier { SAME_DEVICE, PEER_COPY }

    private final Backend owner;
    private final Tensor[] tensors;
    private final Fence ready;
    private final long bytes;
    private final int maxLen;
    private final int[] lens;
    private final String[] rowRequests;
    private final List<Fence> readers = new ArrayList<>();
    private int pending;

    /**
     * @param owner   the sender's backend, which made the tensors
     * @param tensors what is handed over, written by the sender's work before {@code ready}
     * @param bytes   the real data among them (what dense attention would have made a network exchange)
     * @param readers how many reads ({@link #read} + {@link #done}) will be made, the sender's own included
     * @param maxLen  K/V: the compact layout's rows per KV head ({@link sps2.gpu.CompactKv})
     * @param lens    K/V: the real rows of each KV head
     * @param rowRequests decode partials: the request of each row, in order (null: not checked)
     */
    Handoff(Backend owner, Tensor[] tensors, Fence ready, long bytes, int readers, int maxLen, int[] lens, String[] rowRequests) {
        this.owner = owner;
        this.tensors = tensors;
        this.ready = ready;
        this.bytes = bytes;
        this.pending = readers;
        this.maxLen = maxLen;
        this.lens = lens;
        this.rowRequests = rowRequests;
    }

    long bytes() {
        return bytes;
    }

    int maxLen() {
        return maxLen;
    }

    int[] lens() {
        return lens;
    }

    String[] rowRequests() {
        return rowRequests;
    }

    Tier tierFor(Backend reader) {
        return reader.holds(tensors[0]) ? Tier.SAME_DEVICE : Tier.PEER_COPY;
    }

    /**
     * The tensors as {@code reader} can use them, ordered after the sender's writes: the sender's own on the same
     * device, fresh peer copies (closed by {@link #done}) on another GPU.
     */
    Tensor[] read(Backend reader) {
        reader.await(ready);
        if (reader.holds(tensors[0])) {
            return tensors;
        }
        Tensor[] copies = new Tensor[tensors.length];
        for (int i = 0; i < tensors.length; i++) {
            copies[i] = reader.copyFrom(tensors[i]);
        }
        return copies;
    }

    /** The reader is done with what {@link #read} gave it (its work on them is issued); the last one frees the tensors. */
    void done(Backend reader, Tensor[] used) {
        Fence f = reader.fence();
        if (used != tensors) {
            for (Tensor t : used) {
                t.close(); // a peer copy: freed on the reader's own stream, after its work on it
            }
        }
        List<Fence> all;
        synchronized (this) {
            readers.add(f);
            if (--pending > 0) {
                return;
            }
            all = List.copyOf(readers);
        }
        for (Fence r : all) {
            owner.await(r);
        }
        for (Tensor t : tensors) {
            t.close();
        }
        for (Fence r : all) {
            r.release();
        }
        ready.release();
    }
}
