#!/usr/bin/env python3
"""transformers on the checkpoints scripts/gpu_check.sh writes, for its comparisons (needs torch
and transformers; the script skips these rows without them).

  peer_transformers.py longctx --model DIR --tokens N --attn sdpa|eager [--device cuda|cpu]
      one forward over N tokens keeping every layer's hidden state (output_hidden_states:
      transformers' way of caching every resid_post), copied to the host; prints
      impl=transformers-ATTN status=ok|oom ms=T peak_alloc_mib=A peak_reserved_mib=R
  peer_transformers.py speed --model DIR --prompt P --new D [--attn sdpa] [--device cuda|cpu]
      prefill of P tokens, then D greedy decode steps through the KV cache; prints
      impl=transformers-ATTN prefill_tok_s=X decode_tok_s=Y

bf16 on cuda, f32 on cpu. Token ids are (7919 * i + 13) mod vocab, as the hookformer side
uses."""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM


def load(a):
    dtype = torch.bfloat16 if a.device == "cuda" else torch.float32
    m = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=dtype,
                                             attn_implementation=a.attn)
    return m.to(a.device).eval()


def ids_for(n, vocab, device):
    return torch.tensor([[(7919 * i + 13) % vocab for i in range(n)]], device=device)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def forward(m, ids, **kw):
    try:
        return m(ids, logits_to_keep=1, **kw)
    except TypeError:
        return m(ids, num_logits_to_keep=1, **kw)


def longctx(a):
    m = load(a)
    ids = ids_for(a.tokens, m.config.vocab_size, a.device)
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    status = "ok"
    try:
        with torch.no_grad():
            out = forward(m, ids, use_cache=True, output_hidden_states=True)
            hidden = [h.cpu() for h in out.hidden_states[1:]]
            del hidden, out
        sync(a.device)
    except torch.OutOfMemoryError:
        status = "oom"
    ms = 1e3 * (time.perf_counter() - t0)
    alloc = torch.cuda.max_memory_allocated() / 2**20 if a.device == "cuda" else 0.0
    res = torch.cuda.max_memory_reserved() / 2**20 if a.device == "cuda" else 0.0
    print(f"impl=transformers-{a.attn} status={status} ms={ms:.1f} peak_alloc_mib={alloc:.1f} "
          f"peak_reserved_mib={res:.1f}")


def speed(a):
    m = load(a)
    ids = ids_for(a.prompt, m.config.vocab_size, a.device)
    with torch.no_grad():
        forward(m, ids[:, :16], use_cache=True)  # warm-up
        sync(a.device)
        t0 = time.perf_counter()
        out = forward(m, ids, use_cache=True)
        sync(a.device)
        t_prefill = time.perf_counter() - t0
        past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        t0 = time.perf_counter()
        for _ in range(a.new):
            out = m(tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
        sync(a.device)
        t_decode = time.perf_counter() - t0
    print(f"impl=transformers-{a.attn} prefill_tok_s={a.prompt / t_prefill:.1f} "
          f"decode_tok_s={a.new / t_decode:.1f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["longctx", "speed"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tokens", type=int, default=32768)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=128)
    a = ap.parse_args()
    longctx(a) if a.mode == "longctx" else speed(a)


if __name__ == "__main__":
    main()
