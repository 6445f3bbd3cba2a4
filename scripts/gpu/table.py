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
