#!/usr/bin/env python3
"""PyTorch eager peer for the prefill benchmark.

Builds a GPT-2-small-shaped GPT2LMHeadModel (12 layers, d_model 768, 12 heads, vocab 50257,
n_positions 1024; random weights, no download), fp32, attn_implementation="eager", and times
the prefill of ONE sequence of N tokens (one forward, use_cache=False, under
torch.inference_mode) for every (threads, tokens) pair.  Each case: --warmup untimed runs, then
--reps timed runs; the median is reported.  One line per case:

    peer pytorch-eager threads=1 tokens=128 tok_per_s=1234.5 ms=103.7 logits=last reps=5

By default only the last position's logits are computed (logits_to_keep=1), as a prefill that
feeds generation does; --all-logits computes [1, N, 50257] logits like a scoring run
(logits=all in the output line).  Needs torch + transformers; never run by CI.

    python bench/peer_prefill.py --threads 1,2 --tokens 128,1024 --reps 5
"""

import argparse
import statistics
import time


def ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=ints, default=[1, 2], help="comma list, e.g. 1,2,8")
    ap.add_argument("--tokens", type=ints, default=[128, 1024], help="comma list, each <= 1024")
    ap.add_argument("--reps", type=int, default=5, help="timed runs per case (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs per case")
    ap.add_argument("--all-logits", action="store_true", help="compute logits for every position")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if max(args.tokens) > 1024:
        ap.error("GPT-2 has 1024 positions")

    torch.manual_seed(args.seed)
    cfg = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                     attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg).to(torch.float32).eval()   # random init (normal 0.02)
    assert model.config._attn_implementation == "eager"
    keep = 0 if args.all_logits else 1
    print(f"# peer: torch {torch.__version__}, transformers {__import__('transformers').__version__}, "
          f"fp32 eager, {torch.get_num_interop_threads()} interop threads", flush=True)
    g = torch.Generator().manual_seed(args.seed)

    for n_threads in args.threads:
        torch.set_num_threads(n_threads)
        for n_tok in args.tokens:
            ids = torch.randint(0, cfg.vocab_size, (1, n_tok), generator=g)
            times = []
            with torch.inference_mode():
                for i in range(args.warmup + args.reps):
                    t0 = time.perf_counter()
                    out = model(input_ids=ids, use_cache=False, logits_to_keep=keep)
                    _ = out.logits[0, -1, 0].item()   # make sure the work is done
                    dt = time.perf_counter() - t0
                    if i >= args.warmup:
                        times.append(dt)
            ms = statistics.median(times) * 1e3
            print(f"peer pytorch-eager threads={n_threads} tokens={n_tok} "
                  f"tok_per_s={n_tok / (ms / 1e3):.1f} ms={ms:.1f} "
                  f"logits={'all' if args.all_logits else 'last'} reps={args.reps}", flush=True)


if __name__ == "__main__":
    main()
