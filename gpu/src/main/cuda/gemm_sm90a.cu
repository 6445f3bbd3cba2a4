// Tensor-core GEMM for Hopper (sm_90a): wgmma.mma_async with both operands in shared memory.
// C[M,N] = A[M,K] . B[N,K]^T, bf16 in, f32 accumulate. Tiles BM=128 (two warpgroups of 64 rows) x BN,
// BK=64 (one 128-byte swizzle atom per row), cp.async multi-stage pipeline with one wgmma group in flight.
// Built separately (compute_90a) because wgmma exists only there.
#include "common.cuh"
#include <cooperative_groups.h>
namespace cg = cooperative_groups;

__device__ __forceinline__ int swz(int row, int chunk) { return row * 64 + ((chunk ^ (row & 7)) << 3); }

// Shared-memory matrix descriptor: 128B swizzle, 8-row groups 1024 bytes apart (SBO), LBO unused (1).
__device__ __forceinline__ uint64_t smem_desc(const void* p) {
    uint64_t a = smem_u32(p);
    return ((a & 0x3FFFF) >> 4) | (1ull << 16) | ((uint64_t)(1024 >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void reg_fence(float& r) { asm volatile("" : "+f"(r)::"memory"); }

// D[64 x 256] += A[64 x 16] * B[16 x 256], both operands K-major in 128B-swizzled shared memory.
__device__ __forceinline__ void wgmma_m64n256(float* d, uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\nwgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(da), "l"(db), "r"(1));
}

// D[64 x 128] += A[64 x 16] * B[16 x 128], both operands K-major in 128B-swizzled shared memory.
__device__ __forceinline__ void wgmma_m64n128(float* d, uint64_t da, uint64_t db) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\nwgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(da), "l"(db), "r"(1));
}

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

__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, int bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint64_t* bar, int parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile(
            "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done)
            : "r"(smem_u32(bar)), "r"(parity)
            : "memory");
    }
}

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
