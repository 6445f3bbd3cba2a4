"""Hugging Face peer of ModelBench (the whole Llama-3.2-1B-shaped model on one GPU).

Usage: model_peer.py WORK_DIR OURS_LOG
  WORK_DIR holds ckpt/ (the random checkpoint ModelBench wrote), prompt_N.i32, ours_logits_N.f32 and
  ours_greedy_N.i32; OURS_LOG is ModelBench's stdout (its E2E lines are the timings of our backend).

1. Correctness: transformers' LlamaForCausalLM (bf16, SDPA) on the same files; last-position logits of the
   1K and 8K prompts against ours (relative L2 error, top-1), both also against a float32 run of the same
   model; greedy tokens for 64 steps (agreement, first divergence and the float32 logit margin there); and
   teacher-forced agreement (HF's argmax given our own prefix at each of our 64 steps).
2. Timings: the ceilings (device copy, 8192^3 bf16 matmul), HF prefill 8K/32K (SDPA), HF decode step at
   batch 1/32/128 with a 4K KV cache (eager PyTorch, DynamicCache); the same prefill in plain PyTorch and the
   decode step in plain PyTorch captured as a CUDA graph ("torch": compared with our graph where we have one);
   then one table with our figures, HF's, plain torch's and the floors.
"""
import os
import sys
import time

import glob
import re

import numpy as np
import torch

wd, ours_log = sys.argv[1], sys.argv[2]
ckpt = os.path.join(wd, "ckpt")
# SPS2_PEER_DRYRUN=1: on the CPU with tiny sizes, to check this script on a small checkpoint without a GPU
DRY = os.environ.get("SPS2_PEER_DRYRUN") == "1"
dev = "cpu" if DRY else "cuda"
STEPS = 64
CTX = 64 if DRY else 4096
PREFILLS = (128, 256) if DRY else (8192, 32768)
BATCHES = (1, 2) if DRY else (1, 32, 128)
torch.manual_seed(0)


def log(*a):
    print(*a, flush=True)


HF_MS = {}


def hf(key, ms):
    HF_MS[key] = ms
    print(f"HF\t{key}\t{ms:.5f}", flush=True)


def sync():
    if not DRY:
        torch.cuda.synchronize()


def timed_graph(op, inner=10, reps=9):
    if DRY:
        op()
        t0 = time.perf_counter()
        op()
        return (time.perf_counter() - t0) * 1e3
    op(); op()
    torch.cuda.synchronize()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        op()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(inner):
            op()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); g.replay(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b) / inner)
    times.sort()
    return times[reps // 2]


def ints(name):
    return np.fromfile(os.path.join(wd, name), dtype="<i4").astype(np.int64)


def floats(name):
    return torch.from_numpy(np.fromfile(os.path.join(wd, name), dtype="<f4")).to(dev)


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def load(dtype, path=ckpt):
    from transformers import LlamaForCausalLM
    try:
        m = LlamaForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
    except TypeError:
        m = LlamaForCausalLM.from_pretrained(path, torch_dtype=dtype, attn_implementation="sdpa")
    return m.to(dev).eval()


@torch.no_grad()
def last_logits(m, ids, keep=1):
    x = torch.tensor([list(ids)], device=dev)
    return m(input_ids=x, use_cache=False, logits_to_keep=keep).logits[0].float()


@torch.no_grad()
def greedy(m, ids, steps):
    out = m(input_ids=torch.tensor([list(ids)], device=dev), use_cache=True, logits_to_keep=1)
    pkv, toks = out.past_key_values, []
    nxt = out.logits[0, -1].argmax()
    for i in range(steps):
        toks.append(int(nxt))
        if i + 1 == steps:
            break
        out = m(input_ids=nxt.view(1, 1), past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        nxt = out.logits[0, -1].argmax()
    return toks


# ---------------- correctness ----------------
log("torch", torch.__version__, "cpu (dry run)" if DRY else torch.cuda.get_device_name())
import transformers  # noqa: E402
log("transformers", transformers.__version__)


def check(tag, path, what):
    """Compares our files {tag}ours_logits_N.f32 / {tag}ours_greedy_N.i32 with transformers on the checkpoint at path."""
    sizes = sorted(int(re.search(r"_(\d+)\.f32$", f).group(1)) for f in glob.glob(os.path.join(wd, f"{tag}ours_logits_*.f32")))
    if not sizes:
        log(f"CHECK ({what}): ModelBench wrote no logits ({tag}ours_logits_N.f32), so nothing was compared")
        return
    t0 = time.time()
    m16 = load(torch.bfloat16, path)
    log(f"loaded the bf16 model ({what}) in {time.time() - t0:.1f} s")
    res = {}
    for n in sizes:
        prompt = ints(f"{tag}prompt_{n}.i32")
        ours = floats(f"{tag}ours_logits_{n}.f32")
        ours_greedy = [int(t) for t in ints(f"{tag}ours_greedy_{n}.i32")]
        ref16 = last_logits(m16, prompt)[-1]
        hf_greedy = greedy(m16, prompt, STEPS)
        # HF's argmax given our own prefix at each of our steps (no compounding of earlier choices)
        forced16 = last_logits(m16, list(prompt) + ours_greedy[:-1], keep=STEPS).argmax(-1).tolist()
        res[n] = dict(prompt=prompt, ours=ours, ref16=ref16, ours_greedy=ours_greedy, hf_greedy=hf_greedy, forced16=forced16)
    del m16
    if not DRY:
        torch.cuda.empty_cache()
    m32 = load(torch.float32, path)
    for n, r in res.items():
        r["ref32"] = last_logits(m32, r["prompt"])[-1]
        r["forced32"] = last_logits(m32, list(r["prompt"]) + r["ours_greedy"][:-1], keep=STEPS)
        r["fp32_greedy"] = greedy(m32, r["prompt"], STEPS)
    del m32
    if not DRY:
        torch.cuda.empty_cache()

    for n, r in res.items():
        ours, ref16, ref32 = r["ours"], r["ref16"], r["ref32"]
        top = lambda x: int(x.argmax())  # noqa: E731
        log(f"CHECK {what}, {n}-token prompt, last-position logits: ours vs HF bf16 rel. error {rel(ours, ref16):.2e} (max abs {(ours - ref16).abs().max().item():.3f}); "
            f"ours vs HF fp32 {rel(ours, ref32):.2e}; HF bf16 vs HF fp32 {rel(ref16, ref32):.2e}; finite {bool(torch.isfinite(ours).all())}")
        top5 = set(ref16.topk(5).indices.tolist())
        s2 = torch.sort(ref32, descending=True).values
        log(f"CHECK {what}, {n}-token prompt, top-1: ours {top(ours)}, HF bf16 {top(ref16)}, HF fp32 {top(ref32)} (fp32 top-2 gap {(s2[0] - s2[1]).item():.3f}); "
            f"ours in HF bf16 top-5: {top(ours) in top5}")
        og, hg = r["ours_greedy"], r["hf_greedy"]
        agree = sum(a == b for a, b in zip(og, hg))
        first = next((i for i, (a, b) in enumerate(zip(og, hg)) if a != b), None)
        if first is None:
            log(f"CHECK {what}, {n}-token prompt, greedy {STEPS} steps: all {STEPS} tokens equal HF bf16's")
        else:
            l32 = r["forced32"][first]
            s = torch.sort(l32, descending=True).values
            log(f"CHECK {what}, {n}-token prompt, greedy {STEPS} steps: {agree}/{STEPS} positions equal HF bf16's, first divergence at step {first} "
                f"(ours {og[first]}, HF {hg[first]}; fp32 logits there: ours' token {l32[og[first]].item():.4f}, HF's {l32[hg[first]].item():.4f}, "
                f"fp32 top-2 gap {(s[0] - s[1]).item():.4f})")
        f16 = sum(a == b for a, b in zip(og, r["forced16"]))
        f32 = sum(a == b for a, b in zip(og, r["forced32"].argmax(-1).tolist()))
        base = sum(a == b for a, b in zip(r["forced16"], r["forced32"].argmax(-1).tolist()))
        gaps = torch.sort(r["forced32"], dim=-1, descending=True).values
        gaps = (gaps[:, 0] - gaps[:, 1])
        log(f"CHECK {what}, {n}-token prompt, teacher-forced on our tokens: HF bf16 picks our token at {f16}/{STEPS} steps, HF fp32 at {f32}/{STEPS} "
            f"(baseline: HF bf16 picks HF fp32's token at {base}/{STEPS}); fp32 top-2 gap along our tokens: median {gaps.median().item():.3f}, min {gaps.min().item():.3f}")

        def run_len(x, y):
            return next((i for i, (p, q) in enumerate(zip(x, y)) if p != q), len(x))
        log(f"CHECK {what}, {n}-token prompt, greedy against HF fp32's greedy tokens: ours equal for the first {run_len(og, r['fp32_greedy'])}, "
            f"HF bf16 for the first {run_len(hg, r['fp32_greedy'])} of {STEPS}")


check("", ckpt, "random weights")
if os.path.isdir(os.path.join(wd, "ckpt_trained")):
    check("trained_", os.path.join(wd, "ckpt_trained"), "trained weights (train_peer.py)")

# ---------------- timings ----------------
a = torch.empty(1 << (20 if DRY else 29), dtype=torch.bfloat16, device=dev)
b = torch.empty_like(a)
copy_ms = timed_graph(lambda: b.copy_(a))
del a, b
x = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
y = torch.randn(8192, 8192, dtype=torch.bfloat16, device=dev)
o = torch.empty(8192, 8192, dtype=torch.bfloat16, device=dev)
mm_ms = timed_graph(lambda: torch.matmul(x, y, out=o))
del x, y, o
bw = 2.0 * (1 << (21 if DRY else 30)) / (copy_ms * 1e-3)
peak = 2 * 8192 ** 3 / (mm_ms * 1e-3)
log(f"ceilings: copy {bw / 1e12:.2f} TB/s, bf16 matmul {peak / 1e12:.0f} TFLOP/s")
m16 = load(torch.bfloat16)
g = torch.Generator(device="cpu").manual_seed(1)


@torch.no_grad()
def hf_prefill(L, reps=3):
    ids = torch.randint(0, min(128000, m16.config.vocab_size), (1, L), generator=g).to(dev)
    m16(input_ids=ids, use_cache=True, logits_to_keep=1)
    sync()
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        m16(input_ids=ids, use_cache=True, logits_to_keep=1)
        sync()
        t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    return t[len(t) // 2]


@torch.no_grad()
def hf_decode(B, steps=10):
    ids = torch.randint(0, min(128000, m16.config.vocab_size), (B, CTX - 1), generator=g).to(dev)
    pkv = None
    step = 1024 if not DRY else 16
    for s0 in range(0, CTX - 1, step):  # the 4K cache in chunks of 1K positions (bounded activations)
        out = m16(input_ids=ids[:, s0:s0 + step], past_key_values=pkv, use_cache=True, logits_to_keep=1)
        pkv = out.past_key_values
    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
    t = []
    for i in range(3 + steps):
        sync()
        t0 = time.perf_counter()
        out = m16(input_ids=nxt, past_key_values=pkv, use_cache=True)
        pkv = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        sync()
        if i >= 3:
            t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    del pkv, out
    return t[len(t) // 2]


def plain_model():
    """What the plain-PyTorch peers share: the shapes, each layer's weights with QKV and gate/up fused, and a
    rotate-half RoPE for the given positions (returns rope(t) for t [..., positions, hs])."""
    c = m16.config
    hs, nh, nkv = c.hidden_size // c.num_attention_heads, c.num_attention_heads, c.num_key_value_heads
    lw = []
    for lyr in m16.model.layers:
        a, f = lyr.self_attn, lyr.mlp
        lw.append((lyr.input_layernorm.weight, torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).contiguous(),
                   a.o_proj.weight, lyr.post_attention_layernorm.weight,
                   torch.cat([f.gate_proj.weight, f.up_proj.weight]).contiguous(), f.down_proj.weight))
    inv = 1.0 / (getattr(c, "rope_theta", 500000.0) ** (torch.arange(0, hs, 2, device=dev, dtype=torch.float32) / hs))

    def rope_at(positions):
        ang = positions.float()[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1).to(torch.bfloat16)
        sin = torch.cat([ang.sin(), ang.sin()], -1).to(torch.bfloat16)

        def rope(t):
            t1, t2 = t[..., : hs // 2], t[..., hs // 2:]
            return t * cos + torch.cat([-t2, t1], -1) * sin
        return rope
    return c, hs, nh, nkv, c.rms_norm_eps, lw, rope_at


@torch.no_grad()
def plain_prefill(L, reps=3):
    """The same forward pass in plain PyTorch, no framework: fused QKV and gate/up weights, cuBLAS products,
    F.rms_norm, rotate-half RoPE, causal SDPA with GQA, the head on the last position only."""
    import torch.nn.functional as F
    c, hs, nh, nkv, eps, lw, rope_at = plain_model()
    rope = rope_at(torch.arange(L, device=dev))  # t: [heads, L, hs]
    ids = torch.randint(0, min(128000, c.vocab_size), (L,), generator=g).to(dev)
    qd, kd = nh * hs, nkv * hs

    def fwd():
        x = m16.model.embed_tokens(ids)
        for n1, wqkv, wo, n2, wgu, wd in lw:
            h = F.rms_norm(x, (c.hidden_size,), n1, eps)
            qkv = h @ wqkv.T
            q = rope(qkv[:, :qd].view(L, nh, hs).transpose(0, 1))
            k = rope(qkv[:, qd:qd + kd].view(L, nkv, hs).transpose(0, 1))
            v = qkv[:, qd + kd:].view(L, nkv, hs).transpose(0, 1)
            o = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True, enable_gqa=True)[0]
            x = x + o.transpose(0, 1).reshape(L, qd) @ wo.T
            h = F.rms_norm(x, (c.hidden_size,), n2, eps)
            gu = h @ wgu.T
            x = x + (F.silu(gu[:, : c.intermediate_size]) * gu[:, c.intermediate_size:]) @ wd.T
        h = F.rms_norm(x[-1:], (c.hidden_size,), m16.model.norm.weight, eps)
        return (h @ m16.lm_head.weight.T).float()

    fwd()
    sync()
    t = []
    for _ in range(max(reps, 5)):
        t0 = time.perf_counter()
        fwd()
        sync()
        t.append((time.perf_counter() - t0) * 1e3)
    t.sort()
    return t[len(t) // 2]


@torch.no_grad()
def plain_decode(B):
    """One decode step of the same model in plain PyTorch for B sequences with CTX cached positions each, captured as
    a CUDA graph (the fair peer of our graph column): static KV cache per layer, fused QKV and gate/up weights,
    cuBLAS products, SDPA with GQA over the whole cache, the new K/V written at a fixed position, greedy argmax."""
    import torch.nn.functional as F
    c, hs, nh, nkv, eps, lw, rope_at = plain_model()
    cache = [(torch.randn(B, nkv, CTX, hs, dtype=torch.bfloat16, device=dev),
              torch.randn(B, nkv, CTX, hs, dtype=torch.bfloat16, device=dev)) for _ in lw]
    pos = torch.tensor([CTX - 1], device=dev)
    rope = rope_at(pos)  # t: [B, heads, 1, hs]
    tok = torch.randint(0, min(128000, c.vocab_size), (B,), generator=g).to(dev)
    qd, kd = nh * hs, nkv * hs

    def step():
        x = m16.model.embed_tokens(tok)
        for (n1, wqkv, wo, n2, wgu, wd), (kc, vc) in zip(lw, cache):
            h = F.rms_norm(x, (c.hidden_size,), n1, eps)
            qkv = h @ wqkv.T
            q = rope(qkv[:, :qd].view(B, nh, 1, hs))
            kc.index_copy_(2, pos, rope(qkv[:, qd:qd + kd].view(B, nkv, 1, hs)))
            vc.index_copy_(2, pos, qkv[:, qd + kd:].view(B, nkv, 1, hs))
            o = F.scaled_dot_product_attention(q, kc, vc, enable_gqa=True)
            x = x + o.reshape(B, qd) @ wo.T
            h = F.rms_norm(x, (c.hidden_size,), n2, eps)
            gu = h @ wgu.T
            x = x + (F.silu(gu[:, : c.intermediate_size]) * gu[:, c.intermediate_size:]) @ wd.T
        h = F.rms_norm(x, (c.hidden_size,), m16.model.norm.weight, eps)
        tok.copy_((h @ m16.lm_head.weight.T).argmax(-1))

    ms = timed_graph(step, inner=1, reps=9)
    del cache
    return ms


PLAIN_MS = {}
for L in PREFILLS:
    try:
        PLAIN_MS[f"prefill_L{L}"] = plain_prefill(L)
        print(f"TORCH\tprefill_L{L}\t{PLAIN_MS[f'prefill_L{L}']:.5f}", flush=True)
    except Exception as e:  # noqa: BLE001 - a peer that fails must not take HF's figures and the table with it
        log(f"plain torch prefill {L} failed: {type(e).__name__}: {str(e)[:300]}")
    if not DRY:
        torch.cuda.empty_cache()
for B in BATCHES:
    try:
        PLAIN_MS[f"decode_B{B}_C{CTX}"] = plain_decode(B)
        print(f"TORCH\tdecode_B{B}_C{CTX}\t{PLAIN_MS[f'decode_B{B}_C{CTX}']:.5f}", flush=True)
    except Exception as e:  # noqa: BLE001
        log(f"plain torch decode batch {B} failed: {type(e).__name__}: {str(e)[:300]}")
    if not DRY:
        torch.cuda.empty_cache()
for L in PREFILLS:
    try:
        hf(f"prefill_L{L}", hf_prefill(L))
    except torch.OutOfMemoryError as e:
        log(f"HF prefill {L}: out of memory ({str(e)[:200]})")
    if not DRY:
        torch.cuda.empty_cache()
for B in BATCHES:
    try:
        hf(f"decode_B{B}_C{CTX}", hf_decode(B))
    except torch.OutOfMemoryError as e:
        log(f"HF decode batch {B}: out of memory ({str(e)[:200]})")
    if not DRY:
        torch.cuda.empty_cache()

# ---------------- table ----------------
ours, info = {}, {}
for line in open(ours_log):
    p = line.rstrip("\n").split("\t")
    if p[0] != "E2E":
        continue
    key, variant = (p[1].split(":", 1) + [""])[:2]
    ours.setdefault(key, {})[variant] = float(p[2])
    info[key] = (float(p[3]), float(p[4]))
table = []
log = lambda line: (table.append(line), print(line, flush=True))  # noqa: E731
log("")
log(f"ceilings in this call: copy {bw / 1e12:.2f} TB/s (torch copy_ 1 GiB, read+write), bf16 matmul {peak / 1e12:.0f} TFLOP/s (torch 8192^3)")
hdr = (f"{'end to end, 1B shape':34} {'ours ms':>9} {'graph ms':>9} {'HF ms':>9} {'HF/ours':>8} {'torch ms':>9} {'torch/ours':>10} "
       f"{'floor ms':>9} {'bound':>7} {'floor/ours':>10} {'TFLOP':>7} {'GB':>6}")
log(hdr)
log("-" * len(hdr))
nan = float("nan")
for key, (flops, nbytes) in info.items():
    v = ours[key]
    eager = v.get("eager", v.get(""))
    graph = v.get("graph")
    fc, fb = flops / peak * 1e3, nbytes / bw * 1e3
    floor = max(fc, fb)
    t = HF_MS.get(key.replace("_chunk8192", ""))
    pt = PLAIN_MS.get(key.replace("_chunk8192", ""))
    # one row per prefill kernel variant (ModelBench -Dsps2.bench.prefillVariants), else the eager / graph pair
    rows = [(key, eager, graph)] if eager is not None else [(f"{key}:{var}", ms, None) for var, ms in v.items()]
    for name, ms, gr in rows:
        best = min(x for x in (ms, gr) if x is not None)
        log(f"{name:34} {ms:9.3f} {gr if gr else nan:9.3f} {t if t else nan:9.3f} {(t / ms if t else nan):7.2f}x "
            f"{pt if pt else nan:9.3f} {(pt / (gr or ms) if pt else nan):9.2f}x {floor:9.3f} {'compute' if fc >= fb else 'bytes':>7} "
            f"{floor / best * 100:9.0f}% {flops / 1e12:7.2f} {nbytes / 1e9:6.2f}")
if os.environ.get("OUT_TABLE"):
    with open(os.environ["OUT_TABLE"], "w") as f:
        f.write("\n".join(table) + "\n")
