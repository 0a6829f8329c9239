#!/usr/bin/env python3
"""PyTorch peers of bench_cuda_attention: the same shape, mask, dtype and FLOP count.

  causal:   torch SDPA with the flash backend (is_causal=True), GQA through enable_gqa
  windowed: flex_attention with a sliding-window causal block mask (compiled), and SDPA with
            an explicit boolean mask (efficient backend) — SDPA-flash has no window argument

Prints one line per peer in bench_cuda_attention's format. --device cpu --n 256 checks the
script itself on a machine without a GPU (timings meaningless there).
"""
import argparse
import time

import torch
import torch.nn.functional as F


def visible_pairs(n, window):
    if window <= 0:
        return n * (n + 1) // 2
    return sum(min(i + 1, window) for i in range(n))


def bench(fn, reps, sync):
    for _ in range(2):
        fn()
    sync()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--d-head", type=int, default=128)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        print("peer_cuda_attention: no CUDA device; nothing measured")
        return
    dt = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[a.dtype]
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    g = torch.Generator(device="cpu").manual_seed(0)
    shape_q = (1, a.heads, a.n, a.d_head)
    shape_k = (1, a.kv_heads, a.n, a.d_head)
    q = (torch.rand(shape_q, generator=g) * 2 - 1).to(dev, dt)
    k = (torch.rand(shape_k, generator=g) * 2 - 1).to(dev, dt)
    v = (torch.rand(shape_k, generator=g) * 2 - 1).to(dev, dt)
    flops = 4.0 * a.d_head * a.heads * visible_pairs(a.n, a.window)
    tag = f"n={a.n} window={a.window} dtype={a.dtype} heads={a.heads}/{a.kv_heads} d={a.d_head}"

    def report(impl, t):
        print(f"impl={impl} {tag} ms={t * 1e3:.3f} tflops={flops / t * 1e-12:.2f}", flush=True)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    if a.window <= 0:
        # flash has no f32 kernel: the memory-efficient one is SDPA's best there
        if a.device != "cuda":
            backend, name = SDPBackend.MATH, "sdpa_math"
        elif dt == torch.float32:
            backend, name = SDPBackend.EFFICIENT_ATTENTION, "sdpa_efficient"
        else:
            backend, name = SDPBackend.FLASH_ATTENTION, "sdpa_flash"

        def run():
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

        report(name, bench(run, a.reps, sync))
        return

    # windowed: flex_attention with a block mask, then SDPA with a dense boolean mask
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def sliding(b, h, qi, ki):
            return (qi >= ki) & (qi - ki < a.window)

        bm = create_block_mask(sliding, None, None, a.n, a.n, device=a.device)
        flex = torch.compile(flex_attention)

        def run_flex():
            flex(q, k, v, block_mask=bm, enable_gqa=True)

        report("flex_attention", bench(run_flex, a.reps, sync))
    except Exception as e:  # noqa: BLE001 - report and go on to the next peer
        print(f"impl=flex_attention {tag} status=error ({type(e).__name__}: {e})")
    i = torch.arange(a.n, device=dev)
    mask = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < a.window)
    backend = SDPBackend.EFFICIENT_ATTENTION if a.device == "cuda" else SDPBackend.MATH

    def run_sdpa():
        with sdpa_kernel(backend):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    report("sdpa_masked", bench(run_sdpa, a.reps, sync))


if __name__ == "__main__":
    main()
