// Token sampling on the device: one block of 1024 threads per logits row picks exactly the token that
// sps2.model.sampler.Sampler picks for the same float logits (its class comment defines the algorithm).
//
// Weights w_j = expNonPositive((l_j - max) * (1/T)) are recomputed from the logits in every pass (8 logits
// per thread and load where the row is 16-byte aligned) with the
// same float operations as the Java code (__f*_rn, so that nothing is contracted into an FMA). Rank keys
// are (bits(w) << 32) | (0x7fffffff - j). Top-k and top-p find their cut-off key by a radix select over the
// weight bits: histograms of counts and of exact integer mantissa sums in shared memory, bins of 11, 11 and
// 9 bits; the boundary bin's keys are sorted in shared memory once it holds at most SMP_CAP of them, and a
// run of more than SMP_CAP equal weights is resolved by an index-order count. The draw scans the kept
// weights in index order: contiguous chunks per thread, a block scan of the chunk sums, then the one thread
// whose chunk crosses u * S walks it.
//
// Exactness of the sums. The Sampler adds float weights in double, in index order (and in quickselect order
// for top-p). When every weight of the filtered set D (what top-k and min-p keep) is at least 2^(E-29),
// where 2^E > sum(D), every partial sum of D's weights in any order is a multiple of 2^(E-52) below 2^E,
// hence exact: the device's sums equal the Sampler's and every comparison agrees. Otherwise each side's sums
// are within n * 2^-53 * S of the exact ones (any order of n positive terms); the device then accepts a
// decision only when it holds with a margin of delta = (n + 4) * 2^-49 * S (4x the worst case of
// both errors together) and otherwise writes SMP_UNDECIDED, so that the host samples that row.
//
// Output per row: the token id, SMP_INVALID for NaN / +inf logits or a row of -inf (the host raises the
// Sampler's error), or SMP_UNDECIDED.
#include "common.cuh"

#define SMP_THREADS 1024
#define SMP_WARPS 32
#define SMP_CAP 8192
#define SMP_BINS 2048
#define SMP_PARAMS 6
#define SMP_INVALID (-1)
#define SMP_UNDECIDED (-2)
#define SMP_FULL 0xffffffffu

// Sampler.expNonPositive, operation for operation.
__device__ __forceinline__ float smp_exp(float x) {
    if (x < -86.f) return 0.f;
    int n = __float_as_int(__fadd_rn(__fmul_rn(x, __int_as_float(0x3fb8aa3b)), 12582912.f)) - 0x4b400000;
    float fn = (float)n;
    float y = __fsub_rn(__fsub_rn(x, __fmul_rn(fn, __int_as_float(0x3f317200))), __fmul_rn(fn, __int_as_float(0x35bfbe8e)));
    float p = __int_as_float(0x39500d01);                      // 1f / 5040
    p = __fadd_rn(__int_as_float(0x3ab60b61), __fmul_rn(y, p)); // 1f / 720
    p = __fadd_rn(__int_as_float(0x3c088889), __fmul_rn(y, p)); // 1f / 120
    p = __fadd_rn(__int_as_float(0x3d2aaaab), __fmul_rn(y, p)); // 1f / 24
    p = __fadd_rn(__int_as_float(0x3e2aaaab), __fmul_rn(y, p)); // 1f / 6
    p = __fadd_rn(0.5f, __fmul_rn(y, p));
    p = __fadd_rn(1.f, __fmul_rn(y, p));
    p = __fadd_rn(1.f, __fmul_rn(y, p));
    return __fmul_rn(__int_as_float((n + 127) << 23), p);
}

__device__ __forceinline__ unsigned long long smp_key(float w, int j) {
    return ((unsigned long long)__float_as_uint(w) << 32) | (unsigned)(0x7fffffff - j);
}

__device__ __forceinline__ double smp_pow2(int e) {
    return __longlong_as_double((long long)(e + 1023) << 52);
}

// Elements are read 8 at a time (one 16-byte load of bf16, two of float) where the row is 16-byte aligned:
// a pass issues few, independent loads instead of one dependent load per element.
#define SMP_STEP (8 * SMP_THREADS)

struct SmpRow {
    const void* lg;
    int dt;
    long base;
    int vocab;
    bool vec;  // the row starts at a 16-byte boundary
    float mx;
    float invT;

    // logits j .. j+7 (j a multiple of 8); those at or past the end of the row are 0
    __device__ __forceinline__ void load8(int j, float* l) const {
        if (vec && j + 8 <= vocab) {
            if (dt == DT_F32) {
                const float4* p = reinterpret_cast<const float4*>((const float*)lg + base + j);
                float4 a = p[0], b = p[1];
                l[0] = a.x; l[1] = a.y; l[2] = a.z; l[3] = a.w;
                l[4] = b.x; l[5] = b.y; l[6] = b.z; l[7] = b.w;
            } else {
                unpack8(*reinterpret_cast<const uint4*>((const bf16*)lg + base + j), l);
            }
        } else {
#pragma unroll
            for (int u = 0; u < 8; u++) l[u] = j + u < vocab ? ldf(lg, dt, base + j + u) : 0.f;
        }
    }

    __device__ __forceinline__ float weight(float l) const {
        return smp_exp(__fmul_rn(__fsub_rn(l, mx), invT));
    }

    // the weights of logits j .. j+7, in place of load8's logits
    __device__ __forceinline__ void weights8(int j, float* w) const {
        load8(j, w);
#pragma unroll
        for (int u = 0; u < 8; u++) w[u] = weight(w[u]);
    }

    // f(j, w) for each logit j < end of the groups of eight at j0, j0 + step, ...: this thread's share of a scan
    template <typename F>
    __device__ __forceinline__ void scan(int j0, int end, int step, F f) const {
        for (; j0 < end; j0 += step) {
            float w[8];
            weights8(j0, w);
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (j0 + u < end) f(j0 + u, w[u]);
        }
    }
};

// ---- block-wide reductions (1024 threads; every thread gets the same result) ----

// One block-wide reduction for the three uses below; each call site has its own shared scratch (the template
// is instantiated per type), and the trailing barrier lets the next call reuse it.
template <typename T, typename Op>
__device__ __forceinline__ T smp_reduce(T v, T identity, Op op) {
    __shared__ T s[SMP_WARPS];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(SMP_FULL, v, o));
    if ((threadIdx.x & 31) == 0) s[threadIdx.x >> 5] = v;
    __syncthreads();
    T t = identity;
    for (int i = 0; i < SMP_WARPS; i++) t = op(t, s[i]);
    __syncthreads();
    return t;
}

__device__ long long smp_sum_l(long long v) {
    return smp_reduce(v, 0LL, [](long long a, long long b) { return a + b; });
}

__device__ unsigned smp_min_u(unsigned v) {
    return smp_reduce(v, 0xffffffffu, [](unsigned a, unsigned b) { return min(a, b); });
}

__device__ int smp_max_i(int v) {
    return smp_reduce(v, -0x7fffffff - 1, [](int a, int b) { return max(a, b); });
}

// Inclusive prefix sum of x over the lanes of a warp, in lane order (the same operands in the same order
// wherever it is used, so equal inputs give bit-identical sums).
__device__ __forceinline__ double smp_warp_incl(double x, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        double t = __shfl_up_sync(SMP_FULL, x, o);
        if (lane >= o) x += t;
    }
    return x;
}

// Exclusive and inclusive prefix sums over threads in thread order, and the total. excl of thread t is
// bit-identical to incl of thread t-1 (same operands in the same order).
__device__ void smp_scan_d(double v, double& excl, double& incl, double& total) {
    __shared__ double s[SMP_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double x = smp_warp_incl(v, lane);
    double prev = __shfl_up_sync(SMP_FULL, x, 1);
    if (lane == 31) s[warp] = x;
    __syncthreads();
    double off = 0;
    for (int i = 0; i < warp; i++) off += s[i];
    double tot = 0;
    for (int i = 0; i < SMP_WARPS; i++) tot += s[i];
    incl = x + off;
    excl = lane == 0 ? off : prev + off;
    total = tot;
    __syncthreads();
}

// ---- selection in rank order ----

struct SmpSel {
    unsigned long long key;
    double before;  // weight of the members ranked above the selected one (SUM mode)
    double after;   // ... and including it
    int ok;         // 0: the criterion is never met (COUNT: fewer than K members; SUM: see smp_select)
};

// Index-order search. Members: w > 0, key >= low and (eq_only: bits(w) == eq). Value of a member: 1 (count)
// or its weight. Finds the first member at which the running value, in index order, exceeds the target
// (draw: target = u * total with total the sum of all member values). Also gives the member count, the
// smallest weight bits and the last member index.
struct SmpLoc {
    int j;          // the member found, or -1 (no thread's running value exceeds the target)
    double before;  // running value before it
    double after;   // ... and after it
    double total;
    double target;
    long long n;
    unsigned minbits;
    int last;
};

__device__ SmpLoc smp_locate(const SmpRow& r, unsigned long long low, bool eq_only, unsigned eq, bool count,
                             bool draw, double target_or_u) {
    __shared__ int s_claim;
    __shared__ SmpLoc s_res;
    const int chunk = ((r.vocab + SMP_THREADS - 1) / SMP_THREADS + 7) & ~7;
    const int lo = min(r.vocab, (int)threadIdx.x * chunk), hi = min(r.vocab, lo + chunk);
    double s = 0;
    long long n = 0;
    unsigned mn = 0xffffffffu;
    int last = -1;
    r.scan(lo, hi, 8, [&](int j, float w) {
        unsigned bits = __float_as_uint(w);
        if (w > 0.f && smp_key(w, j) >= low && (!eq_only || bits == eq)) {
            s += count ? 1.0 : (double)w;
            n++;
            mn = min(mn, bits);
            last = j;
        }
    });
    if (threadIdx.x == 0) s_claim = 0x7fffffff;
    double excl, incl, total;
    smp_scan_d(s, excl, incl, total);  // (its barriers also publish s_claim)
    SmpLoc res;
    res.total = total;
    res.n = smp_sum_l(n);
    res.minbits = smp_min_u(mn);
    res.last = smp_max_i(last);
    res.target = draw ? __dmul_rn(target_or_u, total) : target_or_u;
    if (incl > res.target && excl <= res.target) atomicMin(&s_claim, (int)threadIdx.x);
    __syncthreads();
    if ((int)threadIdx.x == s_claim) {
        res.j = -1;
        double acc = excl;
        for (int j0 = lo; j0 < hi && res.j < 0; j0 += 8) {
            float w8[8];
            r.weights8(j0, w8);
            for (int u = 0; u < 8; u++) {
                const int j = j0 + u;
                const float w = w8[u];
                if (j < hi && w > 0.f && smp_key(w, j) >= low && (!eq_only || __float_as_uint(w) == eq)) {
                    double next = acc + (count ? 1.0 : (double)w);
                    if (next > res.target) {
                        res.j = j;
                        res.before = acc;
                        res.after = next;
                        break;
                    }
                    acc = next;
                }
            }
        }
        s_res = res;
    }
    __syncthreads();
    if (s_claim != 0x7fffffff) res = s_res;
    else res.j = -1;
    __syncthreads();
    return res;
}

// Rank-order selection among the members {w > 0, key >= low}, ranked by key from the largest. COUNT mode
// (sum_mode false): the K-th member. SUM mode: the first member at which the running weight reaches the
// target (ok = 0 if the device's sums never reach it). cnt, msum and cand are shared-memory arrays of
// SMP_BINS, SMP_BINS and SMP_CAP entries.
__device__ SmpSel smp_select(const SmpRow& r, unsigned long long low, bool sum_mode, long long K, double target,
                             unsigned* cnt, unsigned long long* msum, unsigned long long* cand) {
    __shared__ int s_bin;
    __shared__ long long s_abc;
    __shared__ double s_abs;
    __shared__ unsigned s_cnt;
    __shared__ int s_n;
    __shared__ SmpSel s_res;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    SmpSel res;
    res.key = 0;
    res.before = 0;
    res.after = 0;
    res.ok = 0;
    unsigned prefix = 0;     // weight bits above `shift` decided so far
    long long above_c = 0;   // members ranked above the current bin
    double above_s = 0;      // their weight
    int e_fixed = -1;        // the biased exponent, once level 0 has chosen a bin
    unsigned bin_count = 0;
    for (int level = 0; level < 3; level++) {
        const int shift = level == 0 ? 20 : level == 1 ? 9 : 0;
        const int width = level == 2 ? 9 : 11;
        const int nb = 1 << width;
        for (int b = threadIdx.x; b < nb; b += SMP_THREADS) {
            cnt[b] = 0;
            msum[b] = 0;
        }
        __syncthreads();
        // Each thread adds runs of equal bins at once (runs of equal weights cost one atomic, not one each).
        int run_bin = -1;
        unsigned run_c = 0;
        unsigned long long run_m = 0;
        r.scan(threadIdx.x * 8, r.vocab, SMP_STEP, [&](int j, float w) {
            unsigned bits = __float_as_uint(w);
            if (w > 0.f && smp_key(w, j) >= low && (bits >> (shift + width)) == prefix) {
                int bin = (int)((bits >> shift) & (unsigned)(nb - 1));
                if (bin != run_bin) {
                    if (run_c > 0) {
                        atomicAdd(&cnt[run_bin], run_c);
                        if (sum_mode) atomicAdd(&msum[run_bin], run_m);
                    }
                    run_bin = bin;
                    run_c = 0;
                    run_m = 0;
                }
                run_c++;
                run_m += (bits & 0x7fffffu) | 0x800000u;
            }
        });
        if (run_c > 0) {
            atomicAdd(&cnt[run_bin], run_c);
            if (sum_mode) atomicAdd(&msum[run_bin], run_m);
        }
        __syncthreads();
        // Warp 0 walks the bins from the top, 32 at a time, to the first one at which the criterion is met.
        if (warp == 0) {
            long long ac = above_c;
            double as = above_s;
            int chosen = -1;
            long long ce_at = 0;
            double se_at = 0;
            for (int top = nb - 1; top >= 0 && chosen < 0; top -= 32) {
                int b = top - lane;
                unsigned c = b >= 0 ? cnt[b] : 0u;
                double s = 0;
                if (sum_mode && b >= 0 && c > 0) {
                    int e = e_fixed >= 0 ? e_fixed : (b >> 3);
                    s = __dmul_rn((double)msum[b], smp_pow2(e - 150));  // exact: msum < 2^41
                }
                long long ci = c;
                double si = s;
#pragma unroll
                for (int o = 1; o < 32; o <<= 1) {
                    long long tc = __shfl_up_sync(SMP_FULL, ci, o);
                    double ts = __shfl_up_sync(SMP_FULL, si, o);
                    if (lane >= o) {
                        ci += tc;
                        si += ts;
                    }
                }
                double se = __shfl_up_sync(SMP_FULL, si, 1);
                if (lane == 0) se = 0;
                bool hit = c > 0 && (sum_mode ? as + si >= target : ac + ci >= K);
                unsigned hits = __ballot_sync(SMP_FULL, hit);
                if (hits) {
                    int L = __ffs(hits) - 1;
                    ce_at = __shfl_sync(SMP_FULL, ci - (long long)c, L);
                    se_at = __shfl_sync(SMP_FULL, se, L);
                    chosen = top - L;
                } else {
                    ac += __shfl_sync(SMP_FULL, ci, 31);
                    as += __shfl_sync(SMP_FULL, si, 31);
                }
            }
            if (lane == 0) {
                s_bin = chosen;
                s_abc = ac + ce_at;
                s_abs = as + se_at;
                s_cnt = chosen >= 0 ? cnt[chosen] : 0u;
            }
        }
        __syncthreads();
        const int chosen = s_bin;
        above_c = s_abc;
        above_s = s_abs;
        bin_count = s_cnt;
        __syncthreads();
        if (chosen < 0) return res;
        prefix = (prefix << width) | (unsigned)chosen;
        if (level == 0) e_fixed = chosen >> 3;
        if (bin_count <= SMP_CAP) {
            // Gather the bin's keys, sort them from the largest, and finish in rank order.
            if (threadIdx.x == 0) s_n = 0;
            __syncthreads();
            r.scan(threadIdx.x * 8, r.vocab, SMP_STEP, [&](int j, float w) {
                unsigned long long key = smp_key(w, j);
                if (w > 0.f && key >= low && (__float_as_uint(w) >> shift) == prefix) cand[atomicAdd(&s_n, 1)] = key;
            });
            __syncthreads();
            const int m = s_n;
            int P = 1;
            while (P < m) P <<= 1;
            for (int i = m + threadIdx.x; i < P; i += SMP_THREADS) cand[i] = 0;
            __syncthreads();
            for (int k = 2; k <= P; k <<= 1) {
                for (int jj = k >> 1; jj > 0; jj >>= 1) {
                    for (int i = threadIdx.x; i < P; i += SMP_THREADS) {
                        int ixj = i ^ jj;
                        if (ixj > i) {
                            unsigned long long a = cand[i], b = cand[ixj];
                            bool swap = (i & k) == 0 ? a < b : a > b;  // descending
                            if (swap) {
                                cand[i] = b;
                                cand[ixj] = a;
                            }
                        }
                    }
                    __syncthreads();
                }
            }
            if (warp == 0) {
                SmpSel out;
                out.key = 0;
                out.before = 0;
                out.after = 0;
                out.ok = 0;
                if (!sum_mode) {
                    long long rank = K - above_c;
                    if (rank >= 1 && rank <= m) {
                        out.key = cand[rank - 1];
                        out.ok = 1;
                    }
                } else {
                    double run = above_s;
                    for (int t0 = 0; t0 < m; t0 += 32) {
                        int i = t0 + lane;
                        double x = i < m ? (double)__uint_as_float((unsigned)(cand[i] >> 32)) : 0.0;
                        double xi = smp_warp_incl(x, lane);
                        double xe = __shfl_up_sync(SMP_FULL, xi, 1);
                        if (lane == 0) xe = 0;
                        unsigned hits = __ballot_sync(SMP_FULL, i < m && run + xi >= target);
                        if (hits) {
                            int L = __ffs(hits) - 1;
                            double bi = __shfl_sync(SMP_FULL, xe, L), ai = __shfl_sync(SMP_FULL, xi, L);
                            out.key = cand[t0 + L];
                            out.before = run + bi;
                            out.after = run + ai;
                            out.ok = 1;
                            break;
                        }
                        run += __shfl_sync(SMP_FULL, xi, 31);
                    }
                }
                if (lane == 0) s_res = out;
            }
            __syncthreads();
            res = s_res;
            __syncthreads();
            return res;
        }
    }
    // More than SMP_CAP members share one weight w (prefix holds its bits): they rank by index, lowest first.
    const float ws = __uint_as_float(prefix);
    const double wd = ws;
    long long t;
    if (!sum_mode) {
        t = K - above_c;
    } else {
        // The smallest t with above + t * w >= target (exact products: t < 2^31, w has 24 bits).
        double tt = ceil((target - above_s) / wd);
        t = tt < 1.0 ? 1 : tt > (double)bin_count ? (long long)bin_count : (long long)tt;
        while (t > 1 && __dadd_rn(above_s, __dmul_rn((double)(t - 1), wd)) >= target) t--;
        while (t <= (long long)bin_count && __dadd_rn(above_s, __dmul_rn((double)t, wd)) < target) t++;
    }
    if (t < 1 || t > (long long)bin_count) return res;
    SmpLoc loc = smp_locate(r, low, true, prefix, true, false, (double)(t - 1));
    if (loc.j < 0) return res;
    res.key = smp_key(ws, loc.j);
    res.before = __dadd_rn(above_s, __dmul_rn((double)(t - 1), wd));
    res.after = __dadd_rn(above_s, __dmul_rn((double)t, wd));
    res.ok = 1;
    return res;
}

// The filtered set's count, weight and smallest weight bits give the comparison margin: 0 when every
// sum is exact (see the top of this file), otherwise (n + 4) * 2^-49 * S * scale.
__device__ double smp_delta(long long n, double s, unsigned minbits, float scale) {
    int E = (int)((__double_as_longlong(s) >> 52) & 0x7ff) - 1023 + 2;
    unsigned thr = (unsigned)(E - 29 + 127) << 23;
    if (minbits >= thr) return 0.0;
    return __dmul_rn(__dmul_rn(__dmul_rn((double)(n + 4), smp_pow2(-49)), s), (double)scale);
}

// out[r] = the token of logits row r (see the top of this file).  grid (n), block 1024, dynamic shared
// memory SMP_BINS * 12 + SMP_CAP * 8 bytes. params[r * 6 ..]: bits of 1/T (float, +inf for greedy), top-k,
// bits of top-p, bits of min-p, and the uniform draw u (double) as two ints, low word first.
extern "C" __global__ void __launch_bounds__(SMP_THREADS, 1)
sample_rows(int* out, const void* logits, int ldt, int vocab, const int* params, float margin_scale) {
    extern __shared__ __align__(16) unsigned char smp_smem[];
    unsigned long long* msum = (unsigned long long*)smp_smem;
    unsigned long long* cand = msum + SMP_BINS;
    unsigned* cnt = (unsigned*)(cand + SMP_CAP);

    const int* pr = params + (long)blockIdx.x * SMP_PARAMS;
    SmpRow r;
    r.lg = logits;
    r.dt = ldt;
    r.base = (long)blockIdx.x * vocab;
    r.vocab = vocab;
    r.vec = (reinterpret_cast<uintptr_t>((const char*)logits + r.base * (ldt == DT_F32 ? 4 : 2)) & 15) == 0;
    r.invT = __int_as_float(pr[0]);
    const int topK = pr[1];
    const float topP = __int_as_float(pr[2]);
    const float minP = __int_as_float(pr[3]);
    const double u = __longlong_as_double(((long long)pr[5] << 32) | (unsigned)pr[4]);

    // Validity, max and argmax (lowest index among equal maxima).
    int bad = 0x7fffffff;
    float mx = -INFINITY;
    int mi = 0x7fffffff;
    for (int j0 = threadIdx.x * 8; j0 < vocab; j0 += SMP_STEP) {
        float lv[8];
        r.load8(j0, lv);
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int j = j0 + u;
            const float l = lv[u];
            if (j < vocab) {
                if (isnan(l) || l == INFINITY) bad = min(bad, j);
                if (l > mx) {
                    mx = l;
                    mi = j;
                }
            }
        }
    }
    __shared__ float s_mx[SMP_WARPS];
    __shared__ int s_mi[SMP_WARPS], s_bad[SMP_WARPS];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float om = __shfl_xor_sync(SMP_FULL, mx, o);
        int oi = __shfl_xor_sync(SMP_FULL, mi, o);
        bad = min(bad, __shfl_xor_sync(SMP_FULL, bad, o));
        if (om > mx || (om == mx && oi < mi)) {
            mx = om;
            mi = oi;
        }
    }
    if ((threadIdx.x & 31) == 0) {
        s_mx[threadIdx.x >> 5] = mx;
        s_mi[threadIdx.x >> 5] = mi;
        s_bad[threadIdx.x >> 5] = bad;
    }
    __syncthreads();
    mx = -INFINITY;
    mi = 0x7fffffff;
    bad = 0x7fffffff;
    for (int i = 0; i < SMP_WARPS; i++) {
        bad = min(bad, s_bad[i]);
        if (s_mx[i] > mx || (s_mx[i] == mx && s_mi[i] < mi)) {
            mx = s_mx[i];
            mi = s_mi[i];
        }
    }
    __syncthreads();
    if (bad != 0x7fffffff || mx == -INFINITY) {
        if (threadIdx.x == 0) out[blockIdx.x] = SMP_INVALID;
        return;
    }
    if (isinf(r.invT)) {
        if (threadIdx.x == 0) out[blockIdx.x] = mi;
        return;
    }
    r.mx = mx;

    // Top-k: the K-th largest key among positive weights (no filter when there are fewer); then min-p.
    unsigned long long cutoff = 0;
    if (topK > 0 && topK < vocab) {
        SmpSel k = smp_select(r, 0, false, topK, 0.0, cnt, msum, cand);
        if (k.ok) cutoff = k.key;
    }
    if (minP > 0.f) {
        unsigned long long m = (unsigned long long)__float_as_uint(minP) << 32;
        cutoff = max(cutoff, m);
    }

    // Top-p over what top-k and min-p kept (the set D), whose statistics also give the margin.
    double delta = 0;
    bool have_d = false;
    int result = SMP_UNDECIDED;
    bool decided = false;
    if (topP < 1.f) {
        SmpLoc d = smp_locate(r, cutoff, false, 0, false, false, INFINITY);
        delta = smp_delta(d.n, d.total, d.minbits, margin_scale);
        have_d = true;
        if (d.n > 1) {
            const double mass = d.total;
            const double target = __dmul_rn((double)topP, mass);
            const double floor_ = __ddiv_rn(__dmul_rn((double)__fsub_rn(1.f, topP), mass), (double)(d.n - 1));
            SmpSel p = smp_select(r, cutoff, true, 0, target, cnt, msum, cand);
            bool ok = p.ok && p.before < target - delta && p.after >= target + delta;
            // The Sampler selects among the kept tokens of weight >= floor (all of them when none is): the
            // selected token must be one of them (always true in exact arithmetic).
            if (ok && !(floor_ > 1.0 + delta)) {
                double wsel = (double)__uint_as_float((unsigned)(p.key >> 32));
                ok = floor_ <= 1.0 - delta && wsel >= floor_ + delta;
            }
            if (ok) {
                cutoff = p.key;
            } else {
                decided = true;  // result stays SMP_UNDECIDED
            }
        }
    }

    // The draw: the first kept token, in index order, at which the running weight exceeds u * S.
    if (!decided) {
        SmpLoc dr = smp_locate(r, cutoff, false, 0, false, true, u);
        if (!have_d) delta = smp_delta(dr.n, dr.total, dr.minbits, margin_scale);
        if (dr.j >= 0) {
            if (dr.before <= dr.target - delta && dr.after > dr.target + delta) result = dr.j;
        } else if (delta == 0.0) {
            result = dr.last;  // u * S rounded up to S: the Sampler returns the last kept token
        }
    }
    if (threadIdx.x == 0) out[blockIdx.x] = result;
}
