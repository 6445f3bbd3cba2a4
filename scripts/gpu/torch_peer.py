"""PyTorch peer of CudaBench: the same shapes through cuBLAS (F.linear) and SDPA, timed the same way
(each op captured INNER times into a CUDA graph, REPS graph replays, median / INNER).
Prints TORCH<TAB>key<TAB>ms lines for table.py. Usage: torch_peer.py [quick|full] [filter,...]"""
import sys
import torch
import torch.nn.functional as F

INNER, REPS = 10, 9
quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
only = [s for s in sys.argv[2].split(",") if s] if len(sys.argv) > 2 else []
dev = "cuda"
torch.manual_seed(0)


def want(name):
    return not only or name in only


def timed(op):
    op(); op()
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    g = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.stream(s):
            op()
        torch.cuda.synchronize()
        with torch.cuda.graph(g):
            for _ in range(INNER):
                op()
        run = g.replay
    except Exception as e:  # noqa: BLE001 - fall back to plain launches
        print("graph capture failed:", e, flush=True)
        def run():
            for _ in range(INNER):
                op()
    times = []
    for _ in range(REPS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); run(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b) / INNER)
    times.sort()
    return times[REPS // 2]


def out(key, ms):
    print(f"TORCH\t{key}\t{ms:.5f}", flush=True)


print("torch", torch.__version__, torch.cuda.get_device_name(), flush=True)
if want("copy"):
    a = torch.empty(1 << 29, dtype=torch.bfloat16, device=dev)
    b = torch.empty_like(a)
    out("copy_1GiB", timed(lambda: b.copy_(a)))
    del a, b
# peak matmul rate for the floor
x = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
y = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
o = torch.empty(8192, 8192, dtype=torch.bfloat16, device=dev)
out("peak_matmul_8192", timed(lambda: torch.matmul(x, y, out=o)))
del x, y, o

if want("gemm"):
    for m in ([4096] if quick else [4096, 32768]):
        for n, k in [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192)]:
            x = torch.randn(m, k, dtype=torch.bfloat16, device=dev)
            w = torch.randn(n, k, dtype=torch.bfloat16, device=dev) / k ** 0.5
            out(f"gemm_M{m}_N{n}_K{k}", timed(lambda: F.linear(x, w)))
            del x, w

if want("gemv"):
    for n, k in [(16384, 2048), (2048, 16384)]:
        ws = [torch.randn(n, k, dtype=torch.bfloat16, device=dev) for _ in range(3)]
        for bsz in [1, 32, 128]:
            x = torch.randn(bsz, k, dtype=torch.bfloat16, device=dev)
            i = [0]

            def op():
                F.linear(x, ws[i[0] % 3]); i[0] += 1
            out(f"gemv_B{bsz}_N{n}_K{k}", timed(op))
        del ws

if want("prefill"):
    for L in ([8192] if quick else [8192, 32768]):
        q = torch.randn(1, 32, L, 64, dtype=torch.bfloat16, device=dev)
        k = torch.randn(1, 8, L, 64, dtype=torch.bfloat16, device=dev)
        v = torch.randn(1, 8, L, 64, dtype=torch.bfloat16, device=dev)
        out(f"attn_prefill_L{L}", timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)))
        del q, k, v

if want("decode"):
    for bsz in [1, 32, 128]:
        copies = 8 if bsz == 1 else 2 if bsz == 32 else 1
        q = torch.randn(bsz, 32, 1, 64, dtype=torch.bfloat16, device=dev)
        ks = [torch.randn(bsz, 8, 4096, 64, dtype=torch.bfloat16, device=dev) for _ in range(copies)]
        vs = [torch.randn(bsz, 8, 4096, 64, dtype=torch.bfloat16, device=dev) for _ in range(copies)]
        i = [0]

        def op():
            c = i[0] % copies
            F.scaled_dot_product_attention(q, ks[c], vs[c], enable_gqa=True); i[0] += 1
        out(f"attn_decode_B{bsz}_C4096", timed(op))
        del ks, vs
