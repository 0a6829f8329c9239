#!/usr/bin/env python3
"""transformers peer for bench/run_smollm2.sh: the same GGUF file loaded by transformers (its
GGUF loader dequantizes every tensor to f32), fp32, default attention (sdpa), torch threads as
given. Same measurements as bench_smollm2, same token ids (the generator below mirrors the C
one): prefill of N tokens (one forward under inference_mode, logits for the last position
only), and greedy decode of D tokens after a P-token prompt through the KV cache. One line per
measurement (wall time, and process CPU time, which a shared machine disturbs far less):

    peer transformers case=prefill threads=1 tokens=128 tok_per_s=812.3 ms=157.6 tok_per_cpu_s=...
"""
import argparse
import statistics
import time


def ints(s):
    return [int(x) for x in s.split(",") if x]


def tokens(n, vocab):
    rng, out = 42, []
    for _ in range(n):
        rng = (rng * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(100 + (rng >> 33) % (vocab - 100))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="path to the .gguf file")
    ap.add_argument("--prefill", type=ints, default=[128, 512])
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    import os
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    m = AutoModelForCausalLM.from_pretrained(os.path.dirname(os.path.abspath(a.model)),
                                             gguf_file=os.path.basename(a.model),
                                             dtype=torch.float32).eval()
    print(f"peer transformers case=load threads={a.threads} ms={1e3 * (time.perf_counter() - t0):.1f}"
          f" torch={torch.__version__} attn={m.config._attn_implementation}", flush=True)
    V = m.config.vocab_size
    ids = torch.tensor([tokens(max(a.prefill + [a.prompt + a.decode]), V)])
    with torch.inference_mode():
        for n in a.prefill:
            ms, cpu = [], []
            for r in range(a.reps + 1):
                t0, c0 = time.perf_counter(), time.process_time()
                m(ids[:, :n], logits_to_keep=1)
                if r:
                    ms.append(1e3 * (time.perf_counter() - t0))
                    cpu.append(1e3 * (time.process_time() - c0))
            med, cmed = statistics.median(ms), statistics.median(cpu)
            print(f"peer transformers case=prefill threads={a.threads} tokens={n} "
                  f"tok_per_s={1e3 * n / med:.1f} ms={med:.1f} tok_per_cpu_s={1e3 * n / cmed:.1f} "
                  f"cpu_ms={cmed:.1f} reps={a.reps}", flush=True)
        ms, cpu = [], []
        for r in range(a.reps + 1):
            out = m(ids[:, :a.prompt], use_cache=True, logits_to_keep=1)
            past, logits = out.past_key_values, out.logits[:, -1]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(a.decode):
                nxt = logits.argmax(-1, keepdim=True)
                out = m(nxt, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
            if r:
                ms.append(1e3 * (time.perf_counter() - t0))
                cpu.append(1e3 * (time.process_time() - c0))
        med, cmed = statistics.median(ms), statistics.median(cpu)
        print(f"peer transformers case=decode threads={a.threads} tokens={a.decode} "
              f"prompt={a.prompt} tok_per_s={1e3 * a.decode / med:.1f} ms={med:.1f} "
              f"tok_per_cpu_s={1e3 * a.decode / cmed:.1f} cpu_ms={cmed:.1f} reps={a.reps}",
              flush=True)


if __name__ == "__main__":
    main()
