"""Gives the random Llama-3.2-1B-shaped checkpoint confident predictions, so that greedy decoding can be
compared across implementations (run on the GPU machine between ModelBench's `write` and `trained` steps).

Usage: train_peer.py WORK_DIR [STEPS]
  reads WORK_DIR/ckpt (the random checkpoint), writes WORK_DIR/ckpt_trained (bf16 safetensors, same config)
  and WORK_DIR/lang_prompt_{1024,8192}.i32 (prompts in the synthetic language below).

Why: with random weights the last-position logits are a near-Gaussian cloud over 128K tokens, whose top two
lie about 0.2 sigma apart, while bf16 rounding moves each logit by about 0.03 sigma: two correct bf16
implementations then pick different argmaxes at roughly one step in five, so 64 equal greedy steps are out of
reach for any pair of them (HF bf16 against HF fp32 included). A trained model's top token usually leads by
several units. This script makes that true by training every weight of the model for a few hundred steps on a
synthetic language: a fixed random permutation `succ` of a sub-vocabulary, sequences that follow
x[t+1] = succ(x[t]) and jump to a random word with probability JUMP. The greedy continuation is then the chain
of `succ`, with a margin of several logits, and the whole network (all layers, attention, MLP, head) is
changed by training, so the comparison still runs through every kernel.
"""
import json
import os
import sys
import time

import numpy as np
import torch

wd = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 300
src, dst = os.path.join(wd, "ckpt"), os.path.join(wd, "ckpt_trained")
DRY = os.environ.get("SPS2_PEER_DRYRUN") == "1"
dev = "cpu" if DRY else "cuda"
WORDS, FIRST, JUMP, SEQ, BATCH, SEED = (64, 16, 0.1, 32, 2, 7) if DRY else (1024, 16, 0.1, 1024, 8, 7)

torch.manual_seed(SEED)
rng = np.random.default_rng(SEED)
succ = rng.permutation(WORDS)  # word w is followed by word succ[w]


def sentence(n, r):
    """n tokens of the language: a chain of successors with random jumps (token id = FIRST + word)."""
    out = np.empty(n, dtype=np.int64)
    w = r.integers(WORDS)
    for i in range(n):
        out[i] = FIRST + w
        w = succ[w] if r.random() >= JUMP else r.integers(WORDS)
    return out


def log(*a):
    print(*a, flush=True)


from transformers import LlamaForCausalLM  # noqa: E402

t0 = time.time()
model = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="sdpa").to(dev)
model.train()
log(f"train_peer: loaded {src} in {time.time() - t0:.1f} s; {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, "
    f"language of {WORDS} words, jump probability {JUMP}, {steps} steps of {BATCH} x {SEQ} tokens")
opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0)
data_rng = np.random.default_rng(SEED + 1)
t0 = time.time()
for step in range(steps):
    lr = 3e-4 * min(1.0, (step + 1) / 20)
    for g in opt.param_groups:
        g["lr"] = lr
    ids = torch.from_numpy(np.stack([sentence(SEQ, data_rng) for _ in range(BATCH)])).to(dev)
    with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=not DRY):
        loss = model(input_ids=ids, labels=ids).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 25 == 0 or step + 1 == steps:
        log(f"train_peer: step {step + 1}/{steps}, loss {loss.item():.3f} (the language's entropy floor is about "
            f"{-(1 - JUMP) * np.log(1 - JUMP + JUMP / WORDS) - JUMP * np.log(JUMP / WORDS):.3f}), {time.time() - t0:.0f} s")
    del loss

model.eval()
# how confident the trained model is at long range: top-1 accuracy on the chain steps and the mean top-2 margin
with torch.no_grad():
    for n in ((64, 128) if DRY else (1024, 8192)):
        p = sentence(n, np.random.default_rng(SEED + 100 + n))
        np.asarray(p, dtype="<i4").tofile(os.path.join(wd, f"lang_prompt_{n}.i32"))
        with torch.autocast(device_type=dev, dtype=torch.bfloat16, enabled=not DRY):
            logits = model(input_ids=torch.from_numpy(p).view(1, -1).to(dev), logits_to_keep=256).logits[0].float()
        target = torch.from_numpy(p[-255:]).to(dev)
        pred = logits[:-1].argmax(-1)
        top2 = logits[:-1].topk(2, dim=-1).values
        expected = torch.from_numpy(FIRST + succ[p[-256:-1] - FIRST]).to(dev)
        log(f"train_peer: {n}-token prompt: the argmax is the successor at {(pred == expected).float().mean().item() * 100:.1f}% of the last 255 "
            f"positions (the next token is the successor at {(target == expected).float().mean().item() * 100:.1f}%), mean top-2 margin "
            f"{(top2[:, 0] - top2[:, 1]).mean().item():.2f}, min {(top2[:, 0] - top2[:, 1]).min().item():.2f}")
model.to(torch.bfloat16).save_pretrained(dst, safe_serialization=True)
# the architecture is unchanged: keep the source's config.json (newer transformers rewrite its rope fields)
with open(os.path.join(src, "config.json")) as f:
    cfg = json.load(f)
with open(os.path.join(dst, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
log(f"train_peer: wrote {dst} ({cfg.get('torch_dtype', cfg.get('dtype'))}, tied embeddings {cfg.get('tie_word_embeddings')})")
