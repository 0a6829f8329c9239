#!/usr/bin/env python3
"""The Python package on the GPT-2-small shape (12 layers, d_model 768, vocab 50257, random
weights written by bench_prefill --write-model), 128 tokens, logits for every position:

  1. run_with_cache of every layer's hook_resid_post from Python beside TransformerLens 3.9's
     run_with_cache on the same weights (loaded from the same checkpoint through transformers
     and TL's own GPT-2 converter, as tests/fixtures/make_tl_references.py does), same process;
     the cached values are compared.
  2. The Python layer's own cost: model(tokens) and run_with_cache against the same C calls
     made bare (hk_model_run_opts into a preallocated buffer; hk_cache_new + hk_cache_attach +
     the run, as the CLI's commands make them), in the same process, rounds alternated; and
     a no-op Python callback on every hook point (run_with_hooks) against no hooks.
Times are process CPU time (time.process_time: every thread of the process), which a loaded
machine does not inflate the way it inflates wall time; wall medians are printed beside.

Not run by CI (TransformerLens needs torch). Run with the TransformerLens virtualenv from the
repository root after `ninja -C build`:

  PYTHONPATH=python HOOKFORMER_LIBRARY=build/libhookformer.so \
      /opt/venv-tl/bin/python bench/bench_python.py [--threads 1] [--tokens 128] [--reps 5] [--rounds 3]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import hookformer

REPO = Path(__file__).resolve().parents[1]


def median_ms(fn, reps):
    """(CPU ms, wall ms): medians over reps after a warm-up."""
    fn()
    cpu, wall = [], []
    for _ in range(reps):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - w0) * 1e3)
    return statistics.median(cpu), statistics.median(wall)


def bare_c(m, toks):
    """The C calls alone, through ctypes (a call costs ~1 us): the forward into a preallocated
    buffer, and hk_cache_new + hk_cache_attach + run + hk_cache_free."""
    import ctypes as C

    from hookformer import _lib
    lib = _lib.lib
    B, S = toks.shape
    t32 = np.ascontiguousarray(toks, np.int32)
    out = np.empty((B, S, m.cfg["d_vocab"]), np.float32)
    opts = _lib.RunOpts(_lib.HK_RUN_ALL_LAYERS, None)
    tp, op = _lib.ptr(t32, C.c_int32), _lib.ptr(out, C.c_float)

    def forward():
        _lib.check(lib.hk_model_run_opts(m.handle, None, tp, None, B, S, C.byref(opts), op))

    pat = (C.c_char_p * 1)(b"blocks.*.hook_resid_post")

    def cache():
        h, c = C.c_void_p(), C.c_void_p()
        _lib.check(lib.hk_hooks_new(m.handle, C.byref(h)))
        _lib.check(lib.hk_cache_new(m.handle, C.byref(c)))
        _lib.check(lib.hk_cache_attach(c, h, pat, 1, b"all"))
        _lib.check(lib.hk_model_run_opts(m.handle, h, tp, None, B, S, C.byref(opts), op))
        lib.hk_hooks_free(h)
        lib.hk_cache_free(c)

    return {"none": forward, "cache": cache}


def tl_model(model_dir, threads):
    import torch
    from transformers import GPT2LMHeadModel
    sys.path.insert(0, str(REPO / "tests" / "fixtures"))
    import make_tl_references as mtr  # the same TL config and converter as the references
    torch.set_num_threads(threads)
    hf = GPT2LMHeadModel.from_pretrained(str(model_dir), attn_implementation="eager").float()
    cfg, _, _ = mtr.build_cfg("gpt2", hf.config, lambda s: None)
    return mtr.make_model("gpt2", hf, cfg), torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--build", default=os.environ.get("BUILD_DIR", str(REPO / "build")))
    ap.add_argument("--no-tl", action="store_true", help="skip TransformerLens")
    a = ap.parse_args()
    build = Path(a.build)
    hookformer.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(build / "bench" / "bench_prefill"), "--write-model", tmp], check=True,
                       capture_output=True)
        m = hookformer.load(tmp)
        V = m.cfg["d_vocab"]
        toks = np.array([[(t * 7919 + 13) % V for t in range(a.tokens)]])  # bench_hooks' ids
        names = "blocks.*.hook_resid_post"
        every = m.hook_names(optional=False)

        def noop(act, hook):
            pass

        py_cases = {
            "none": lambda: m(toks),
            "cache": lambda: m.run_with_cache(toks, names_filter=names),
        }
        c_cases = bare_c(m, toks)
        rows = {k: ([], [], [], []) for k in py_cases}  # py cpu, c cpu, py wall, c wall
        noop_rows = []
        for r in range(a.rounds):
            for k in py_cases:
                pc, pw = median_ms(py_cases[k], a.reps)
                cc, cw = median_ms(c_cases[k], a.reps)
                for lst, v in zip(rows[k], (pc, cc, pw, cw)):
                    lst.append(v)
            noop_rows.append(median_ms(
                lambda: m.run_with_hooks(toks, fwd_hooks=[(n, noop) for n in every]), a.reps)[0])
        med = statistics.median
        print(f"# GPT-2-small shape, {a.tokens} tokens, {a.threads} thread(s), medians of "
              f"{a.rounds} rounds x {a.reps} reps; CPU ms (wall ms)")
        print(f"{'case':8s} {'python':>18s} {'bare C':>18s} {'python/C':>9s}   rounds")
        for k, (pc, cc, pw, cw) in rows.items():
            ratios = [p / q for p, q in zip(pc, cc)]
            print(f"{k:8s} {med(pc):8.1f} ({med(pw):7.1f}) {med(cc):8.1f} ({med(cw):7.1f}) "
                  f"{med(ratios):9.3f}   " + " ".join(f"{x:.3f}" for x in ratios))
        fires = len(every)
        per = (med(noop_rows) - med(rows["none"][0])) / fires * 1e3
        print(f"noop Python callback on all {fires} points: {med(noop_rows):.1f} CPU ms, "
              f"{med(noop_rows) / med(rows['none'][0]):.3f} x no hooks ({per:.0f} us per fire, "
              "patterns materialized)")

        if a.no_tl:
            return
        tl, torch = tl_model(tmp, a.threads)
        tt = torch.tensor(toks)
        flt = lambda n: n.endswith("hook_resid_post")  # noqa: E731
        hk_ms, tl_ms = [], []
        for r in range(a.rounds):
            hk_ms.append(median_ms(lambda: m.run_with_cache(toks, names_filter=names), a.reps)[0])
            with torch.inference_mode():
                tl_ms.append(median_ms(lambda: tl.run_with_cache(tt, names_filter=flt),
                                       a.reps)[0])
        _, ours = m.run_with_cache(toks, names_filter=names)
        with torch.inference_mode():
            _, theirs = tl.run_with_cache(tt, names_filter=flt)
        diff = max(float(np.abs(ours[k] - theirs[k].numpy()).max()) for k in ours)
        print(f"run_with_cache(every resid_post), CPU ms: hookformer "
              f"{statistics.median(hk_ms):.1f}, TransformerLens {statistics.median(tl_ms):.1f}, hookformer/TL "
              f"{statistics.median([h / t for h, t in zip(hk_ms, tl_ms)]):.3f} (rounds "
              + " ".join(f"{h / t:.3f}" for h, t in zip(hk_ms, tl_ms))
              + f"); max |diff| of the cached values {diff:.2g}")


if __name__ == "__main__":
    main()
