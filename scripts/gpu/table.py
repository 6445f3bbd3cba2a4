"""Joins CudaBench (BENCH lines) and torch_peer.py (TORCH lines) into one table:
ours (default choice), our best variant, torch, ours/torch, and the floor = max(FLOPs / peak matmul rate,
bytes / copy bandwidth), both ceilings measured in the same run. Usage: table.py ours.tsv torch.tsv"""
import sys

ours, best, info, torch_ms = {}, {}, {}, {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if p[0] != "BENCH":
        continue
    key, variant = (p[1].split(":", 1) + ["default"])[:2]
    ms, flops, nbytes = float(p[2]), float(p[3]), float(p[4])
    info[key] = (flops, nbytes)
    if variant == "default":
        ours[key] = ms
    if key not in best or ms < best[key][0]:
        best[key] = (ms, variant)
for line in open(sys.argv[2]):
    p = line.rstrip("\n").split("\t")
    if p[0] == "TORCH":
        torch_ms[p[1]] = float(p[2])

bw = info["copy_1GiB"][1] / (torch_ms.get("copy_1GiB", best.get("copy_1GiB", (1,))[0]) * 1e-3) if "copy_1GiB" in info else 2.96e12
peak = 2 * 8192 ** 3 / (torch_ms["peak_matmul_8192"] * 1e-3) if "peak_matmul_8192" in torch_ms else 7e14
print(f"ceilings: copy {bw / 1e12:.2f} TB/s (torch copy_), matmul {peak / 1e12:.0f} TFLOP/s (torch 8192^3 bf16)")
hdr = f"{'op':32} {'ours ms':>9} {'best ms':>9} {'best variant':>22} {'torch ms':>9} {'ours/torch':>10} {'floor ms':>9} {'ours TF/s':>9} {'ours TB/s':>9} {'torch TF/s':>10}"
print(hdr)
print("-" * len(hdr))
for key in info:
    flops, nbytes = info[key]
    o = ours.get(key, best[key][0])
    b, bv = best[key]
    t = torch_ms.get(key)
    floor = max(flops / peak, nbytes / bw) * 1e3
    rel = f"{t / o * 100:9.0f}%" if t else "        -"
    tt = f"{t:9.4f}" if t else "        -"
    ttf = f"{flops / (t * 1e-3) / 1e12:10.0f}" if t and flops else "         -"
    print(f"{key:32} {o:9.4f} {b:9.4f} {bv:>22} {tt} {rel} {floor:9.4f} {flops / (o * 1e-3) / 1e12:9.0f} {nbytes / (o * 1e-3) / 1e12:9.2f} {ttf}")

# Per-variant view of every op the benchmark swept (prefill attention): both timing rounds, share of torch,
# and the at-scale check against the w8 kernel (relative error, non-finite outputs after NaN poisoning).
checks, rounds, variants = {}, {}, {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if p[0] == "CHECK":
        checks[p[1]] = (float(p[2]), int(p[3]))
    elif p[0] == "ROUNDS":
        rounds[p[1]] = (float(p[2]), float(p[3]))
        key, variant = p[1].split(":", 1)
        variants.setdefault(key, []).append(variant)
for key, vs in variants.items():
    t = torch_ms.get(key)
    print(f"\n{key}: variants (torch {t:.4f} ms)" if t else f"\n{key}: variants")
    h = f"{'variant':14} {'round1 ms':>10} {'round2 ms':>10} {'mean ms':>9} {'/torch':>7} {'vs w8':>7} {'relerr':>9} {'nonfinite':>9}"
    print(h)
    print("-" * len(h))
    w8 = sum(rounds[key + ":w8"]) / 2 if key + ":w8" in rounds else None
    for v in vs:
        r1, r2 = rounds[key + ":" + v]
        m = (r1 + r2) / 2
        err, bad = checks.get(key + ":" + v, (float("nan"), -1))
        share = f"{t / m * 100:6.1f}%" if t else "      -"
        speed = f"{w8 / m:6.3f}x" if w8 else "      -"
        print(f"{v:14} {r1:10.4f} {r2:10.4f} {m:9.4f} {share} {speed} {err:9.2e} {bad:9d}")
