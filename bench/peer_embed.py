#!/usr/bin/env python3
"""sentence-transformers peer of bench_embed: the same ids file, the same batches.

    python3 bench/peer_embed.py --model DIR --ids FILE [--batch 32] [--threads 1] [--reps 5]

Each batch goes through SentenceTransformer.forward (Transformer -> Pooling -> Normalize, what
encode() runs after tokenizing) on the right-padded ids with their attention mask, under
torch.inference_mode; one warm-up pass, then the median of --reps.  Prints
    peer threads=1 batch=32 sequences=256 tokens=4096 ms=123.4 seq_per_s=2074.6
and, with --save FILE, the embeddings as .npy (the C side's output can be compared).
"""
import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--save")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    seqs = [[int(t) for t in line.replace(",", " ").split()]
            for line in open(a.ids) if line.strip()]
    st = SentenceTransformer(a.model, device="cpu").eval()
    batches = []
    for s0 in range(0, len(seqs), a.batch):
        chunk = seqs[s0:s0 + a.batch]
        T = max(map(len, chunk))
        ids = torch.zeros(len(chunk), T, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for b, s in enumerate(chunk):
            ids[b, :len(s)] = torch.tensor(s)
            mask[b, :len(s)] = 1
        batches.append({"input_ids": ids, "attention_mask": mask,
                        "token_type_ids": torch.zeros_like(ids)})
    times, out = [], None
    with torch.inference_mode():
        for r in range(a.reps + 1):
            t0 = time.perf_counter()
            out = [st.forward(dict(f))["sentence_embedding"] for f in batches]
            if r:
                times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times)
    print(f"peer threads={a.threads} batch={a.batch} sequences={len(seqs)} "
          f"tokens={sum(map(len, seqs))} ms={ms:.1f} seq_per_s={1e3 * len(seqs) / ms:.1f}")
    if a.save:
        np.save(a.save, torch.cat(out).numpy())


if __name__ == "__main__":
    main()
