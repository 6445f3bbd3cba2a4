// Tensor-core GEMM for Hopper (sm_90a): wgmma.mma_async with both operands in shared memory.
// C[M,N] = A[M,K] . B[N,K]^T, bf16 in, f32 accumulate. Tiles BM=128 (two warpgroups of 64 rows) x BN,
// BK=64 (one 128-byte swizzle atom per row), cp.async multi-stage pipeline with one wgmma group in flight.
// Built separately (compute_90a) because wgmma exists only there.
#include "hopper.cuh"
#include <cooperative_groups.h>
namespace cg = cooperative_groups;

__device__ __forceinline__ int swz(int row, int chunk) { return row * 64 + ((chunk ^ (row & 7)) << 3); }

// Split-K over a cluster of two blocks (blockIdx.z = 0, 1: the two halves of K): block 1 adds its partial
// sums into block 0's shared memory at part (free by then: both main loops are done), block 0 adds them to its
// registers. Thread `slot` of `slots` holds the same elements in both blocks; layout [i][slot] so consecutive
// threads touch consecutive words. Returns whether this block stores C (block 0). Every thread of both blocks
// must take part in the two cluster barriers.
template <int NACC>
__device__ __forceinline__ bool pair_sum(float* d, float* part, int slot, int slots) {
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // both blocks are past their last read of the stage buffers
    if (cluster.block_rank() == 1) {
        float* peer = cluster.map_shared_rank(part, 0);
#pragma unroll
        for (int i = 0; i < NACC; i++) peer[i * slots + slot] = d[i];
    }
    cluster.sync();  // block 1's partial sums are visible in block 0
    if (cluster.block_rank() == 1) return false;
#pragma unroll
    for (int i = 0; i < NACC; i++) d[i] += part[i * slots + slot];
    return true;
}

// Stores one warp's share of a wgmma accumulator tile (64 rows per warpgroup, BN columns; this thread's rows
// rowBase and rowBase + 8) to C, or as float32 into the split-K workspace ws when it is given.
template <int BN>
__device__ __forceinline__ void store_tile(void* C, int cdt, float* ws, const float* d, int rowBase, int n0, int M, int N, int lane) {
    const bool pairs = (N & 1) == 0;
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        int col = n0 + j * 8 + (lane & 3) * 2;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = rowBase + h * 8;
            if (row >= M) continue;
            float v0 = d[4 * j + 2 * h], v1 = d[4 * j + 2 * h + 1];
            store_out2(C, cdt, ws, M, N, pairs, row, col, v0, v1);
        }
    }
}

template <int BN, int STAGES, bool PAIR = false>
__device__ __forceinline__ void gemm_wg(void* __restrict__ C, int cdt, float* __restrict__ ws, const bf16* __restrict__ A,
                                        const bf16* __restrict__ B, int M, int N, int K, int ktPer) {
    constexpr int BM = 128, BK = 64, THREADS = 256, NACC = BN / 2;
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    bf16* smem = reinterpret_cast<bf16*>(smem_raw);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int ktAll = (K + BK - 1) / BK;
    const int kt0 = blockIdx.z * ktPer, ktN = min(ktPer, ktAll - kt0);  // this block sums K tiles kt0 .. kt0 + ktN - 1

    auto load_stage = [&](int slot, int kt) {
        bf16* sA = smem + slot * (BM + BN) * BK;
        bf16* sB = sA + BM * BK;
        const int k0 = (kt0 + kt) * BK;
#pragma unroll
        for (int i = tid; i < BM * 8; i += THREADS) {
            int r = i >> 3, c = i & 7;
            int gr = m0 + r, gk = k0 + c * 8;
            bool ok = gr < M && gk < K;
            cp_async16(smem_u32(sA + swz(r, c)), ok ? A + (long)gr * K + gk : A, ok ? 16 : 0);
        }
#pragma unroll
        for (int i = tid; i < BN * 8; i += THREADS) {
            int r = i >> 3, c = i & 7;
            int gr = n0 + r, gk = k0 + c * 8;
            bool ok = gr < N && gk < K;
            cp_async16(smem_u32(sB + swz(r, c)), ok ? B + (long)gr * K + gk : B, ok ? 16 : 0);
        }
    };

    float d[NACC];
#pragma unroll
    for (int i = 0; i < NACC; i++) d[i] = 0.f;

    // Loads run LEAD stages ahead of the MMAs: one wgmma group stays in flight across iterations, so the slot it
    // reads cannot be refilled yet. (Waiting for each group instead, to load one stage further ahead, measured
    // 15-40% slower: notes v9.)
    constexpr int LEAD = STAGES - 2;
#pragma unroll
    for (int s = 0; s < LEAD; s++) {
        if (s < ktN) load_stage(s, s);
        cp_async_commit();
    }
    for (int kt = 0; kt < ktN; kt++) {
        cp_async_wait<LEAD - 1>();
        fence_proxy_async();
        __syncthreads();
        int next = kt + LEAD;
        if (next < ktN) load_stage(next % STAGES, next);
        cp_async_commit();

        const bf16* sA = smem + (kt % STAGES) * (BM + BN) * BK + wg * 64 * BK;
        const bf16* sB = smem + (kt % STAGES) * (BM + BN) * BK + BM * BK;
        uint64_t da = smem_desc(sA), db = smem_desc(sB);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            if constexpr (BN == 256) {
                wgmma_m64n256(d, da + 2 * kk, db + 2 * kk);
            } else {
                wgmma_m64n128(d, da + 2 * kk, db + 2 * kk);
            }
        }
        wg_commit();
        wg_wait<1>();
    }
    wg_wait<0>();
#pragma unroll
    for (int i = 0; i < NACC; i++) reg_fence(d[i]);
    cp_async_wait<0>();

    if constexpr (PAIR) {
        if (!pair_sum<NACC>(d, reinterpret_cast<float*>(smem_raw), tid, THREADS)) return;
        ws = nullptr;
    }
    store_tile<BN>(C, cdt, ws, d, m0 + wg * 64 + (warp & 3) * 16 + (lane >> 2), n0, M, N, lane);
}

extern "C" __global__ void __launch_bounds__(256, 1)
    wgmma_128x256(void* C, int cdt, float* ws, const bf16* A, const bf16* B, int M, int N, int K, int ktPer) {
    gemm_wg<256, 4>(C, cdt, ws, A, B, M, N, K, ktPer);
}

extern "C" __global__ void __launch_bounds__(256, 1)
    wgmma_128x128(void* C, int cdt, float* ws, const bf16* A, const bf16* B, int M, int N, int K, int ktPer) {
    gemm_wg<128, 5>(C, cdt, ws, A, B, M, N, K, ktPer);
}

// Split-K by two over a 2-block cluster, for products whose 128x256 tiles leave most SMs idle (M=4096,
// 2048->512: 64 tiles -> 128 blocks). The halves are summed through distributed shared memory: no workspace,
// no second launch. grid.z must be 2.
extern "C" __global__ void __cluster_dims__(1, 1, 2) __launch_bounds__(256, 1)
    wgmma_128x256_pair(void* C, int cdt, float* ws, const bf16* A, const bf16* B, int M, int N, int K, int ktPer) {
    gemm_wg<256, 4, true>(C, cdt, ws, A, B, M, N, K, ktPer);
}


// ---- TMA + warp-specialized variant ----
// The kernels above spend their main loop issuing loads: every thread issues 12 cp.async of 16 bytes per
// 48 KB stage, with their address arithmetic and a block barrier per k-step (notes v8, v9). Here one thread
// copies each tile with the tensor memory accelerator (one instruction per operand tile, completion counted
// on an mbarrier), and the two consumer warpgroups only wait, multiply and release the slot.
// Warpgroup 0: producer (one thread). Warpgroups 1, 2: 64 rows each of the 128x256 tile.

struct __align__(64) TmaDesc {
    unsigned long long v[16];
};

// Copies the box at (column c0, row c1) of the matrix described by map into shared memory at dst.
__device__ __forceinline__ void tma_load_2d(void* dst, const TmaDesc* map, uint64_t* bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_u32(dst)),
        "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(smem_u32(bar))
        : "memory");
}

// PAIR: K split between the two blocks of a cluster (blockIdx.z), partial sums added through distributed
// shared memory as in gemm_wg. Every thread, the producer's too, takes part in the cluster barriers.
template <bool PAIR>
__device__ __forceinline__ void gemm_tma(void* __restrict__ C, int cdt, const TmaDesc* tmA, const TmaDesc* tmB, int M, int N, int K,
                                         int ktPer) {
    constexpr int BM = 128, BN = 256, BK = 64, STAGES = 4, NACC = BN / 2;
    constexpr int STAGE_ELEMS = (BM + BN) * BK, STAGE_BYTES = STAGE_ELEMS * 2;
    extern __shared__ __align__(1024) unsigned char tma_smem[];
    bf16* smem = reinterpret_cast<bf16*>(tma_smem);
    uint64_t* full = reinterpret_cast<uint64_t*>(tma_smem + STAGES * STAGE_BYTES);
    uint64_t* empty = full + STAGES;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int kt0 = PAIR ? blockIdx.z * ktPer : 0;
    const int kTiles = max(0, min(ktPer, (K + BK - 1) / BK - kt0));  // this block's k-steps

    if (tid == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(&full[s], 1);
            mbar_init(&empty[s], 2);  // one arrival per consumer warpgroup
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == 0) {
        if (tid == 0) {
            for (int kt = 0; kt < kTiles; kt++) {
                const int s = kt % STAGES;
                if (kt >= STAGES) mbar_wait(&empty[s], ((kt / STAGES) - 1) & 1);
                bf16* sA = smem + s * STAGE_ELEMS;
                bf16* sB = sA + BM * BK;
                mbar_expect_tx(&full[s], STAGE_BYTES);
                tma_load_2d(sA, tmA, &full[s], (kt0 + kt) * BK, m0);
                tma_load_2d(sB, tmB, &full[s], (kt0 + kt) * BK, n0);
            }
        }
        if constexpr (PAIR) {
            // the producer warpgroup takes part in pair_sum's two cluster barriers, then leaves
            cg::cluster_group cluster = cg::this_cluster();
            cluster.sync();
            cluster.sync();
        }
        return;
    }

    const int cw = wg - 1;  // consumer warpgroup: rows cw*64 .. cw*64+63 of the tile
    float d[NACC];
#pragma unroll
    for (int i = 0; i < NACC; i++) d[i] = 0.f;
    for (int kt = 0; kt < kTiles; kt++) {
        const int s = kt % STAGES;
        mbar_wait(&full[s], (kt / STAGES) & 1);
        const bf16* sA = smem + s * STAGE_ELEMS + cw * 64 * BK;
        const bf16* sB = smem + s * STAGE_ELEMS + BM * BK;
        uint64_t da = smem_desc(sA), db = smem_desc(sB);
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) wgmma_m64n256(d, da + 2 * kk, db + 2 * kk);
        wg_commit();
        wg_wait<1>();  // the previous k-step's group is done: its slot can be refilled
        if (kt > 0 && (tid & 127) == 0) mbar_arrive(&empty[(kt - 1) % STAGES]);
    }
    wg_wait<0>();
#pragma unroll
    for (int i = 0; i < NACC; i++) reg_fence(d[i]);
    if constexpr (PAIR) {
        if (!pair_sum<NACC>(d, reinterpret_cast<float*>(tma_smem), tid - 128, 256)) return;  // 256 consumer threads
    }
    store_tile<BN>(C, cdt, nullptr, d, m0 + cw * 64 + (warp & 3) * 16 + (lane >> 2), n0, M, N, lane);
}

extern "C" __global__ void __launch_bounds__(384, 1)
    wgmma_tma_128x256(void* C, int cdt, const __grid_constant__ TmaDesc tmA, const __grid_constant__ TmaDesc tmB, int M, int N, int K,
                      int ktPer) {
    gemm_tma<false>(C, cdt, &tmA, &tmB, M, N, K, ktPer);
}

extern "C" __global__ void __cluster_dims__(1, 1, 2) __launch_bounds__(384, 1)
    wgmma_tma_128x256_pair(void* C, int cdt, const __grid_constant__ TmaDesc tmA, const __grid_constant__ TmaDesc tmB, int M, int N,
                           int K, int ktPer) {
    gemm_tma<true>(C, cdt, &tmA, &tmB, M, N, K, ktPer);
}
