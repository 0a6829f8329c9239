#!/usr/bin/env python3
"""Hugging Face tokenizers (Rust) on the corpus bench_tokenize reads: MB/s of input text.

    peer_tokenize.py TOKENIZER.json CORPUS.bin.gz [ROUNDS]

Three measures: "lines" encodes one sample per call from one thread (encode() does not
parallelize); "document" encodes the whole corpus (the samples' bytes back to back) in one
call; "batch" calls encode_batch on all samples, which Hugging Face parallelizes over
RAYON_NUM_THREADS threads (default: every core; HK_BENCH_BATCH_THREADS sets it). Texts are bytes.decode("utf-8", errors="replace"),
decoded before the clock starts; MB counts the corpus bytes, as bench_tokenize does."""
import gzip
import os
import struct
import sys
import time

threads_batch = int(os.environ.get("HK_BENCH_BATCH_THREADS", "0") or 0)
if threads_batch:
    os.environ["RAYON_NUM_THREADS"] = str(threads_batch)
os.environ["TOKENIZERS_PARALLELISM"] = "true"
from tokenizers import Tokenizer  # noqa: E402


def main():
    path, corpus = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    data = gzip.open(corpus, "rb").read()
    n = struct.unpack_from("<I", data, 8)[0]
    offs = struct.unpack_from("<%dI" % (n + 1), data, 12)
    base = 12 + 4 * (n + 1)
    texts = [data[base + offs[i]: base + offs[i + 1]].decode("utf-8", errors="replace")
             for i in range(n)]
    nbytes = offs[n]
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    tok.no_padding()
    document = data[base:base + nbytes].decode("utf-8", errors="replace")
    single, batch, doc = [], [], []
    ids = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        ids = 0
        for t in texts:
            ids += len(tok.encode(t).ids)
        single.append(nbytes / 1e6 / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        tok.encode_batch(texts)
        batch.append(nbytes / 1e6 / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        tok.encode(document)
        doc.append(nbytes / 1e6 / (time.perf_counter() - t0))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print("hf lines MB/s %.2f document MB/s %.2f batch MB/s %.2f ids %d batch_threads %s" %
          (med(single), med(doc), med(batch), ids,
           os.environ.get("RAYON_NUM_THREADS", str(os.cpu_count()))))


if __name__ == "__main__":
    main()
