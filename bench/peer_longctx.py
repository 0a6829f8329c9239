#!/usr/bin/env python3
"""transformers peer for the long-context prefill benchmark (bench/run_longctx.sh).

Two modes.

  --make-model DIR [--window W]
      Builds the benchmark model, a small Mistral-shaped MistralForCausalLM (4 layers,
      d_model 256, 8 query / 2 KV heads, d_mlp 512, vocab 1000, max_position_embeddings
      32768; random weights, seed 0, no download), and saves it as an fp32 Hugging Face
      checkpoint (config.json + model.safetensors) that hookformer loads too. --window sets
      sliding_window (0: none). The weights depend only on the seed, so the models with and
      without a window hold the same weights.

  --model DIR --attn eager|sdpa --tokens N [--threads T] [--reps R] [--mem-cap-gib G]
      Runs ONE case in this process and prints one line:

        peer attn=sdpa tokens=4096 window=1024 threads=2 status=ok ms=812.3 \
             peak_rss_mib=612.4 base_rss_mib=540.1 top1=417 reps=3

      The prefill is one forward over N tokens, fp32, under torch.inference_mode, with
      use_cache=True and logits_to_keep=1: the prefill that feeds generation, as hookformer's
      session runs it (KV cache kept, last-position logits). Token ids are (7919*i + 13) % vocab,
      as bench_longctx uses. A warm-up forward over 64 tokens comes first (threads, allocator);
      then --reps timed runs, the median reported. peak_rss_mib is the process's VmHWM at the
      end (everything: Python, torch, the model, the prefill); base_rss_mib its VmRSS before
      the first timed run.

      The address space is capped at the size after setup + --mem-cap-gib (RLIMIT_AS), so that
      eager attention at long contexts, which materializes [heads, N, N] scores, fails with an
      allocation error (status=oom) instead of exhausting the machine.

Needs torch + transformers; never run by CI.
"""

import argparse
import os
import resource
import statistics
import sys
import time

VOCAB = 1000


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def make_model(out_dir, window):
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=512,
                        num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2,
                        head_dim=32, max_position_embeddings=32768, rope_theta=10000.0,
                        rms_norm_eps=1e-5, sliding_window=window if window > 0 else None,
                        tie_word_embeddings=False)
    model = MistralForCausalLM(cfg).to(torch.float32).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"peer: wrote {out_dir} ({n} parameters, sliding_window={cfg.sliding_window})")


def make_family_model(out_dir, family):
    """bench/run_families.sh's models, random fp32 weights (seed 0), vocab 1000:
      gemma2:        Gemma-2-2B's layer shape (d_model 2304, 8/4 heads of 256, d_mlp 9216,
                     window 4096 on even layers, soft-caps 50/30), 2 layers
      mixtral:       a Mixtral-8x7B layer shape scaled by 1/4 (d_model 1024, 8/2 heads of 128,
                     8 experts of 3584, top-2), 2 layers
      mixtral_dense: the same weights with num_experts_per_tok = 8: every expert on every
                     token, the dense-all-experts cost the routed forward is compared with"""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    if family == "gemma2":
        cfg = Gemma2Config(vocab_size=VOCAB, hidden_size=2304, intermediate_size=9216,
                           num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=4,
                           head_dim=256, query_pre_attn_scalar=256, sliding_window=4096,
                           max_position_embeddings=8192)
        model = Gemma2ForCausalLM(cfg)
    else:
        cfg = MixtralConfig(vocab_size=VOCAB, hidden_size=1024, intermediate_size=3584,
                            num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
                            head_dim=128, num_local_experts=8,
                            num_experts_per_tok=8 if family == "mixtral_dense" else 2,
                            max_position_embeddings=32768, tie_word_embeddings=False)
        model = MixtralForCausalLM(cfg)
    model = model.to(torch.float32).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"peer: wrote {out_dir} ({family}, {n} parameters)")


def run_case(args):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation=args.attn).eval()
    assert model.config._attn_implementation == args.attn
    window = getattr(model.config, "sliding_window", None) or 0
    ids = torch.tensor([[(7919 * i + 13) % VOCAB for i in range(args.tokens)]])
    warm = ids[:, :64]

    head = (f"peer attn={args.attn} tokens={args.tokens} window={window} "
            f"threads={args.threads}")
    with torch.inference_mode():
        model(input_ids=warm, use_cache=True, logits_to_keep=1)
    cap = None
    if args.mem_cap_gib > 0:
        vm = status_kib("VmSize:") * 1024
        cap = vm + int(args.mem_cap_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    base = status_kib("VmRSS:") / 1024
    times, top1 = [], -1
    try:
        with torch.inference_mode():
            for _ in range(args.reps):
                t0 = time.perf_counter()
                out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                top1 = int(out.logits[0, -1].argmax())
                times.append(time.perf_counter() - t0)
                del out
    except (RuntimeError, MemoryError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, MemoryError) or "memory" in msg.lower() or "alloc" in msg.lower():
            print(f"{head} status=oom cap_gib={args.mem_cap_gib:g} "
                  f"peak_rss_mib={status_kib('VmHWM:') / 1024:.1f} base_rss_mib={base:.1f} "
                  f"error=\"{msg[:120]}\"", flush=True)
            return 0
        raise
    ms = statistics.median(times) * 1e3
    print(f"{head} status=ok ms={ms:.1f} peak_rss_mib={status_kib('VmHWM:') / 1024:.1f} "
          f"base_rss_mib={base:.1f} top1={top1} reps={args.reps}", flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-model", metavar="DIR")
    ap.add_argument("--window", type=int, default=0)
    ap.add_argument("--family", choices=["gemma2", "mixtral", "mixtral_dense"],
                    help="with --make-model: bench/run_families.sh's models instead")
    ap.add_argument("--model", metavar="DIR")
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--mem-cap-gib", type=float, default=12.0,
                    help="address-space cap above the size after setup (0: none)")
    args = ap.parse_args()
    if args.make_model and args.family:
        make_family_model(args.make_model, args.family)
        return 0
    if args.make_model:
        make_model(args.make_model, args.window)
        return 0
    if not args.model:
        ap.error("--model DIR or --make-model DIR is required")
    return run_case(args)


if __name__ == "__main__":
    sys.exit(main())
