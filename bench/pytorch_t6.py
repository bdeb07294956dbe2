"""Yardstick only (never a dependency of t6): a plain PyTorch T6 written from ../shared/T6-SPEC.md, timed
on the same machine as `t6 bench train`: on the GPU (PyTorch 2), or with --device cpu on the CPU, where
Debian's PyTorch 1.13 (apt install python3-torch) lacks F.rms_norm and F.scaled_dot_product_attention
and the same formulas are spelled out instead.

usage: python3 bench/pytorch_t6.py --layers 12 --embd 768 --heads 34 --batch 16 --seq 1024 [--dtype bf16|fp32|tf32]
       python3 bench/pytorch_t6.py --device cpu --threads 2 --dtype fp32 --vocab 256 --layers 4 --embd 256 \
           --heads 8 --head-dim 32 --batch 16 --seq 128        # the model and batch of configs/bench_cpu.json
prints one JSON line: {"ms_per_step", "tokens_per_s", "peak_mem_mb" (GPU only), ...}
With --decode-context N: times an eager decode loop instead (batch --batch, N cached tokens, --new-tokens
steps), the factor cache kept as A_k, rotated B_k, A_v, B_v and K, V formed from it at every step:
{"decode_tokens_per_s", ...}.
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def rms_norm(x):  # spec RMSNorm, no weight, eps = float32 machine epsilon
    eps = torch.finfo(torch.float32).eps
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), eps=eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)  # PyTorch < 2.4


def causal_attention(q, k, v):  # (B,H,T,dh)
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]  # PyTorch < 2.0
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return torch.matmul(scores.masked_fill(mask, float("-inf")).softmax(-1), v)


def rope(x, pos):  # x (B,T,R,dh), half-split convention of the spec
    dh = x.shape[-1]
    inv = 10000.0 ** (-torch.arange(0, dh // 2, device=x.device, dtype=torch.float32) * 2 / dh)
    ang = pos[:, None].float() * inv[None, :]                      # (T, dh/2)
    c, s = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., : dh // 2].float(), x[..., dh // 2:].float()
    return torch.cat([x1 * c + x2 * s, -x1 * s + x2 * c], -1).type_as(x)


class TPA(nn.Module):
    def __init__(s, d, H, dh, RQ, R):
        super().__init__()
        s.H, s.dh, s.RQ, s.R = H, dh, RQ, R
        s.A_q, s.A_k, s.A_v = nn.Linear(d, H * RQ, bias=False), nn.Linear(d, H * R, bias=False), nn.Linear(d, H * R, bias=False)
        s.B_q, s.B_k, s.B_v = nn.Linear(d, RQ * dh, bias=False), nn.Linear(d, R * dh, bias=False), nn.Linear(d, R * dh, bias=False)
        s.c_proj = nn.Linear(H * dh, d, bias=False)

    def forward(s, x):
        B, T, _ = x.shape
        pos = torch.arange(T, device=x.device)
        aq, ak, av = s.A_q(x).view(B, T, s.H, s.RQ), s.A_k(x).view(B, T, s.H, s.R), s.A_v(x).view(B, T, s.H, s.R)
        bq = rope(s.B_q(x).view(B, T, s.RQ, s.dh), pos)
        bk = rope(s.B_k(x).view(B, T, s.R, s.dh), pos)
        bv = s.B_v(x).view(B, T, s.R, s.dh)
        q = torch.matmul(aq.view(B * T, s.H, s.RQ), bq.view(B * T, s.RQ, s.dh)).view(B, T, s.H, s.dh) / s.RQ
        k = torch.matmul(ak.view(B * T, s.H, s.R), bk.view(B * T, s.R, s.dh)).view(B, T, s.H, s.dh) / s.R
        v = torch.matmul(av.view(B * T, s.H, s.R), bv.view(B * T, s.R, s.dh)).view(B, T, s.H, s.dh) / s.R
        y = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return s.c_proj(y.transpose(1, 2).reshape(B, T, s.H * s.dh))

    def decode(s, x, pos, cache):  # x (B,1,d) at position pos; cache: this layer's factors, slots [0, pos) filled
        B = x.shape[0]
        p = torch.tensor([pos], device=x.device)
        aq = s.A_q(x).view(B, s.H, s.RQ)
        bq = rope(s.B_q(x).view(B, 1, s.RQ, s.dh), p).view(B, s.RQ, s.dh)
        cache["ak"][:, pos] = s.A_k(x).view(B, s.H, s.R)
        cache["bk"][:, pos] = rope(s.B_k(x).view(B, 1, s.R, s.dh), p)[:, 0]
        cache["av"][:, pos] = s.A_v(x).view(B, s.H, s.R)
        cache["bv"][:, pos] = s.B_v(x).view(B, s.R, s.dh)
        n = pos + 1
        q = torch.matmul(aq, bq) / s.RQ                                                      # (B,H,dh)
        k = torch.einsum("bmhr,bmrd->bhmd", cache["ak"][:, :n], cache["bk"][:, :n]) / s.R    # (B,H,n,dh)
        v = torch.einsum("bmhr,bmrd->bhmd", cache["av"][:, :n], cache["bv"][:, :n]) / s.R
        y = F.scaled_dot_product_attention(q[:, :, None], k, v)                              # (B,H,1,dh)
        return s.c_proj(y.reshape(B, 1, s.H * s.dh))


class Block(nn.Module):
    def __init__(s, d, H, dh, RQ, R):
        super().__init__()
        F_ = 8 * d // 3
        s.attn = TPA(d, H, dh, RQ, R)
        s.fc1, s.fc2, s.proj = nn.Linear(d, F_, bias=False), nn.Linear(d, F_, bias=False), nn.Linear(F_, d, bias=False)

    def forward(s, x):
        x = x + s.attn(rms_norm(x))
        h = rms_norm(x)
        return x + s.proj(F.silu(s.fc1(h)) * s.fc2(h))

    def decode(s, x, pos, cache):
        x = x + s.attn.decode(rms_norm(x), pos, cache)
        h = rms_norm(x)
        return x + s.proj(F.silu(s.fc1(h)) * s.fc2(h))


class T6(nn.Module):
    def __init__(s, V, L, d, H, dh, RQ, R):
        super().__init__()
        s.wte = nn.Embedding(V, d)
        s.h = nn.ModuleList(Block(d, H, dh, RQ, R) for _ in range(L))

    def forward(s, idx, tgt):
        x = s.wte(idx)
        for b in s.h:
            x = b(x)
        x = rms_norm(x)
        logits = F.linear(x, s.wte.weight).float()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1), ignore_index=-1)


def time_decode(model, a):
    """Greedy decode steps after a.decode_context cached tokens (random factors: values do not matter for speed)."""
    M, B, dev = a.decode_context + a.new_tokens, a.batch, "cuda"
    caches = [dict(ak=torch.randn(B, M, a.heads, a.rank, device=dev), bk=torch.randn(B, M, a.rank, a.head_dim, device=dev),
                   av=torch.randn(B, M, a.heads, a.rank, device=dev), bv=torch.randn(B, M, a.rank, a.head_dim, device=dev))
              for _ in model.h]
    tok = torch.randint(0, a.vocab, (B, 1), device=dev)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
        for pos in range(a.decode_context, M):
            if pos == a.decode_context + 4:  # after 4 warm-up steps
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            x = model.wte(tok)
            for blk, cache in zip(model.h, caches):
                x = blk.decode(x, pos, cache)
            x = rms_norm(x)
            tok = F.linear(x, model.wte.weight).argmax(-1)
        torch.cuda.synchronize()
    steps = a.new_tokens - 4
    print(json.dumps({"impl": "pytorch eager decode", "dtype": a.dtype, "batch": B, "context": a.decode_context,
                      "decode_tokens_per_s": B * steps / (time.perf_counter() - t0)}))


def main():
    p = argparse.ArgumentParser()
    for k, v in dict(vocab=50304, layers=12, embd=768, heads=34, head_dim=64, q_rank=6, rank=2, batch=16, seq=1024,
                     steps=20, warmup=5, decode_context=0, new_tokens=36).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32", "tf32"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (torch.set_num_threads); 0: PyTorch's default")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = a.dtype == "tf32"
    gpu = a.device == "cuda"
    model = T6(a.vocab, a.layers, a.embd, a.heads, a.head_dim, a.q_rank, a.rank).to(a.device)
    if a.decode_context > 0:
        return time_decode(model, a)
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, **({"fused": True} if gpu else {}))
    step_fn = torch.compile(model) if a.compile else model
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    times = []
    for i in range(a.warmup + a.steps):
        idx = torch.randint(0, a.vocab, (a.batch, a.seq), device=a.device)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            loss = step_fn(idx, idx)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    ms = sorted(times)[len(times) // 2] * 1000
    result = {"impl": "pytorch" + ("+compile" if a.compile else ""), "torch": torch.__version__, "device": a.device,
              "threads": torch.get_num_threads(), "dtype": a.dtype, "ms_per_step": ms,
              "tokens_per_s": a.batch * a.seq / (ms / 1000), "params": sum(p.numel() for p in model.parameters())}
    if gpu:
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
