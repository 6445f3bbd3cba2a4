// Matrix products C[M,N] = A[M,K] · B[N,K]^T with bf16 operands (activations x weights in the
// nn.Linear [out, in] layout) and float32 accumulation.
//  - gemm_*: tensor cores (mma.sync m16n8k16), ldmatrix from an XOR-swizzled shared tile, cp.async
//    multi-stage pipeline. Optional split-K (gridDim.z > 1) writes float partials to a workspace.
//  - gemv_*: one warp per output feature for decode batches of at most 8 rows (memory-bound).
//  - gemm_simple: any shape or element type (small models, odd K), one thread per output.
#include "common.cuh"

// Shared tile rows are BK = 64 bf16 = 128 bytes = 8 chunks of 16 bytes; chunk c of row r is stored at
// chunk c ^ (r & 7) so that the 8 row addresses of one ldmatrix fall in 8 different bank groups.
__device__ __forceinline__ int swz(int row, int chunk) { return row * 64 + ((chunk ^ (row & 7)) << 3); }

template <int BM, int BN, int WM, int WN, int STAGES>
__device__ __forceinline__ void gemm_tn(void* __restrict__ C, int cdt, float* __restrict__ ws,
                                        const bf16* __restrict__ A, const bf16* __restrict__ B, int M, int N, int K,
                                        int ktPer) {
    constexpr int BK = 64;
    constexpr int WARPS_N = BN / WN;
    constexpr int THREADS = (BM / WM) * WARPS_N * 32;
    constexpr int MT = WM / 16, NT = WN / 8;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf16* smem = reinterpret_cast<bf16*>(smem_raw);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WARPS_N, wn = warp % WARPS_N;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int ktAll = (K + BK - 1) / BK;
    const int kt0 = blockIdx.z * ktPer;
    const int ktN = min(ktPer, ktAll - kt0);

    auto load_stage = [&](int slot, int kt) {
        bf16* sA = smem + slot * (BM + BN) * BK;
        bf16* sB = sA + BM * BK;
        const int k0 = (kt0 + kt) * BK;
        load_tile64<BM, THREADS>(sA, A, m0, M, K, k0, tid, swz);
        load_tile64<BN, THREADS>(sB, B, n0, N, K, k0, tid, swz);
    };

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ktN) load_stage(s, s);
        cp_async_commit();
    }

    for (int kt = 0; kt < ktN; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        int next = kt + STAGES - 1;
        if (next < ktN) load_stage(next % STAGES, next);
        cp_async_commit();

        const bf16* sA = smem + (kt % STAGES) * (BM + BN) * BK;
        const bf16* sB = sA + BM * BK;
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[MT][4], b[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                int r = wm * WM + i * 16 + (lane & 15);
                ldmatrix_x4(smem_u32(sA + swz(r, kk * 2 + (lane >> 4))), a[i][0], a[i][1], a[i][2], a[i][3]);
            }
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                int r = wn * WN + j * 16 + (lane & 7) + ((lane >> 4) << 3);
                ldmatrix_x4(smem_u32(sB + swz(r, kk * 2 + ((lane >> 3) & 1))), b[2 * j][0], b[2 * j][1],
                            b[2 * j + 1][0], b[2 * j + 1][1]);
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) mma_bf16(acc[i][j], a[i], b[j][0], b[j][1]);
        }
    }
    cp_async_wait<0>();

    const bool pairs = (N & 1) == 0;
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int j = 0; j < NT; j++) {
            int col = n0 + wn * WN + j * 8 + (lane & 3) * 2;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int row = m0 + wm * WM + i * 16 + (lane >> 2) + h * 8;
                if (row >= M) continue;
                float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                store_out2(C, cdt, ws, M, N, pairs, row, col, v0, v1);
            }
        }
    }
}

#define GEMM_KERNEL(NAME, BM, BN, WM, WN, STAGES)                                                           \
    extern "C" __global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, 1)                              \
        NAME(void* C, int cdt, float* ws, const bf16* A, const bf16* B, int M, int N, int K, int ktPer) {    \
        gemm_tn<BM, BN, WM, WN, STAGES>(C, cdt, ws, A, B, M, N, K, ktPer);                                  \
    }

// name       BM   BN  WM  WN  stages   (threads, shared bytes = stages*(BM+BN)*128)
GEMM_KERNEL(gemm_128x256, 128, 256, 64, 64, 3)  // 256 thr, 147456 B
GEMM_KERNEL(gemm_256x128, 256, 128, 64, 64, 3)  // 256 thr, 147456 B
GEMM_KERNEL(gemm_128x128, 128, 128, 64, 32, 4)  // 256 thr, 131072 B
GEMM_KERNEL(gemm_64x128, 64, 128, 32, 32, 4)    // 256 thr,  98304 B
GEMM_KERNEL(gemm_64x64, 64, 64, 32, 32, 4)      // 128 thr,  65536 B
GEMM_KERNEL(gemm_32x64, 32, 64, 32, 16, 4)      // 128 thr,  49152 B
// Batch-invariant decode products (no split-K, no GEMV: every tensor-core tile gives a row the same bits,
// measured on the H200): one warp per 16x16 tile, 8 stages so that each warp keeps 28 KB of weights in flight.
GEMM_KERNEL(gemm_16x16, 16, 16, 16, 16, 8)      //  32 thr,  32768 B
GEMM_KERNEL(gemm_16x32, 16, 32, 16, 16, 8)      //  64 thr,  49152 B

// C = sum over splits of ws[z]
extern "C" __global__ void splitk_reduce(void* C, int cdt, const float* ws, int splits, long mn) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= mn) return;
    float s = 0.f;
    for (int z = 0; z < splits; z++) s += ws[z * mn + i];
    stf(C, cdt, i, s);
}

__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
    return r;
}

// Decode GEMV: C[n, N] = X[n, K] · W[N, K]^T for n <= NB. One warp per output feature, 8 warps per block;
// each lane streams 16-byte chunks of the weight row, UNROLL chunks in flight. K % 8 == 0.
template <int NB>
__device__ __forceinline__ void gemv_row(void* C, int cdt, const bf16* __restrict__ X, const bf16* __restrict__ W, int n,
                                         int N, int K, int r) {
    constexpr int UNROLL = 4;
    int lane = threadIdx.x & 31;
    const bf16* w = W + (long)r * K;
    float acc[NB];
#pragma unroll
    for (int j = 0; j < NB; j++) acc[j] = 0.f;
    for (int k0 = lane * 8; k0 < K; k0 += 256 * UNROLL) {
        uint4 wv[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int k = k0 + u * 256;
            wv[u] = k < K ? ld_stream(w + k) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int k = k0 + u * 256;
            if (k >= K) break;
            float wf[8];
            unpack8(wv[u], wf);
#pragma unroll
            for (int j = 0; j < NB; j++) {
                if (j < n) {
                    uint4 xv = __ldg(reinterpret_cast<const uint4*>(X + (long)j * K + k));
                    float xf[8];
                    unpack8(xv, xf);
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[j] = fmaf(wf[e], xf[e], acc[j]);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < NB; j++) {
        float s = warp_sum(acc[j]);
        if (lane == 0 && j < n) stf(C, cdt, (long)j * N + r, s);
    }
}

template <int NB>
__device__ __forceinline__ void gemv(void* C, int cdt, const bf16* __restrict__ X, const bf16* __restrict__ W, int n,
                                     int N, int K) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= N) return;
    gemv_row<NB>(C, cdt, X, W, n, N, K, r);
}

// Up to three products of one input (Q, K and V; or gate and up) in one launch: the warps of output features
// 0..N0-1 write C0, the next N1 write C1, the next N2 write C2, each row exactly as gemv computes it.
template <int NB>
__device__ __forceinline__ void gemv_multi(void* C0, void* C1, void* C2, int cdt, const bf16* __restrict__ X, const bf16* W0,
                                           const bf16* W1, const bf16* W2, int n, int N0, int N1, int N2, int K) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r < N0) {
        gemv_row<NB>(C0, cdt, X, W0, n, N0, K, r);
    } else if (r - N0 < N1) {
        gemv_row<NB>(C1, cdt, X, W1, n, N1, K, r - N0);
    } else if (r - N0 - N1 < N2) {
        gemv_row<NB>(C2, cdt, X, W2, n, N2, K, r - N0 - N1);
    }
}

#define GEMV_MULTI_KERNEL(NB)                                                                                      \
    extern "C" __global__ void __launch_bounds__(256) gemv_multi_##NB(void* C0, void* C1, void* C2, int cdt, const bf16* X, \
                                                                      const bf16* W0, const bf16* W1, const bf16* W2, int n, \
                                                                      int N0, int N1, int N2, int K) {             \
        gemv_multi<NB>(C0, C1, C2, cdt, X, W0, W1, W2, n, N0, N1, N2, K);                                          \
    }
GEMV_MULTI_KERNEL(1)
GEMV_MULTI_KERNEL(2)
GEMV_MULTI_KERNEL(4)
GEMV_MULTI_KERNEL(8)

#define GEMV_KERNEL(NB)                                                                                      \
    extern "C" __global__ void __launch_bounds__(256) gemv_##NB(void* C, int cdt, const bf16* X, const bf16* W, \
                                                                int n, int N, int K) {                       \
        gemv<NB>(C, cdt, X, W, n, N, K);                                                                     \
    }
GEMV_KERNEL(1)
GEMV_KERNEL(2)
GEMV_KERNEL(4)
GEMV_KERNEL(8)

// Any shape, any activation type; B is bf16. grid (ceil(N/128), M), block 128.
extern "C" __global__ void gemm_simple(void* C, int cdt, const void* A, int adt, const bf16* B, int M, int N, int K) {
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    long row = blockIdx.y;
    if (col >= N) return;
    float s = 0.f;
    const bf16* b = B + (long)col * K;
    for (int k = 0; k < K; k++) s = fmaf(ldf(A, adt, row * K + k), __bfloat162float(b[k]), s);
    stf(C, cdt, row * N + col, s);
}
