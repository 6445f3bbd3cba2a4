package sps2.gpu.cuda;

/**
 * A tensor-core GEMM kernel of gemm.cu or gemm_sm90a.cu: its entry point, the output tile it computes per block
 * ({@code bm} rows of x by {@code bn} rows of w), its threads per block and its dynamic shared memory in bytes.
 */
record GemmKernel(String name, int bm, int bn, int threads, int smem) {
    /** A wgmma kernel of the sm_90a module. */
    boolean hopper() {
        return name.startsWith("wgmma");
    }

    /** Loads its tiles with TMA descriptors (cuTensorMapEncodeTiled) instead of pointers. */
    boolean tma() {
        return name.contains("_tma");
    }

    /** Splits K over a cluster of two blocks that sum through distributed shared memory. */
    boolean pair() {
        return name.contains("_pair");
    }
}
