#!/usr/bin/env python3
"""TransformerLens peer for the store benchmark (bench/run_store.sh).

Builds a HookedTransformer from the GPT-2-small-shaped checkpoint that bench_prefill
--write-model wrote (same config and weights, converted with TL's convert_gpt2_weights), and
times, over the same number of prompts x tokens in the same batches:

  tl-forward    model(tokens, return_type=None)
  tl-h5py       run_with_cache(names_filter=hook_resid_post, return_type=None), then each
                layer's [batch*len, d_model] appended to a resizable float32 h5py dataset
  tl-torchsave  run_with_cache as above, then torch.save(cache dict) per batch

Each writing case ends with an fsync of what it wrote (as bench_store does). One line each:
  tl-h5py ms=... tok_per_s=... bytes=...
Needs /opt/venv-tl/bin/python (transformer_lens 3.9, torch, transformers, h5py); never run by CI.
"""
import argparse
import os
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import warnings

    warnings.filterwarnings("ignore")
    import h5py
    import torch
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    hf = GPT2LMHeadModel.from_pretrained(args.model, torch_dtype=torch.float32)
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd, n_layers=c.n_layer, n_ctx=c.n_positions,
        eps=c.layer_norm_epsilon, d_vocab=c.vocab_size, act_fn=c.activation_function,
        normalization_type="LN", original_architecture="GPT2LMHeadModel",
        dtype=torch.float32, device="cpu", init_weights=False, default_prepend_bos=False)
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, model.cfg), fold_ln=False,
                                      center_writing_weights=False, center_unembed=False)
    model.eval()
    del hf
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, cfg.d_vocab, (args.prompts, args.len), generator=g)
    n_tok = args.prompts * args.len
    names = lambda n: n.endswith("hook_resid_post")  # noqa: E731
    print(f"# peer: transformer_lens HookedTransformer, torch {torch.__version__}, "
          f"{args.threads} threads", flush=True)

    def batches():
        for p in range(0, args.prompts, args.batch):
            yield tokens[p:p + args.batch]

    def fsync(path):
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    with torch.inference_mode():
        t0 = time.perf_counter()
        for t in batches():
            model(t, return_type=None)
        dt = time.perf_counter() - t0
        print(f"tl-forward ms={1e3 * dt:.1f} tok_per_s={n_tok / dt:.1f}", flush=True)

        path = os.path.join(args.out, "tl_store.h5")
        t0 = time.perf_counter()
        nbytes = 0
        with h5py.File(path, "w") as f:
            ds = {}
            for t in batches():
                _, cache = model.run_with_cache(t, names_filter=names, return_type=None)
                for name, act in cache.items():
                    rows = act.reshape(-1, act.shape[-1]).numpy()
                    if name not in ds:
                        ds[name] = f.create_dataset(name, shape=(0, rows.shape[1]),
                                                    maxshape=(None, rows.shape[1]),
                                                    dtype="f4", chunks=(512, rows.shape[1]))
                    d = ds[name]
                    n0 = d.shape[0]
                    d.resize(n0 + rows.shape[0], axis=0)
                    d[n0:] = rows
                    nbytes += rows.nbytes
        fsync(path)
        dt = time.perf_counter() - t0
        print(f"tl-h5py ms={1e3 * dt:.1f} tok_per_s={n_tok / dt:.1f} bytes={nbytes}", flush=True)
        os.unlink(path)

        t0 = time.perf_counter()
        paths = []
        for i, t in enumerate(batches()):
            _, cache = model.run_with_cache(t, names_filter=names, return_type=None)
            p = os.path.join(args.out, f"tl_cache_{i}.pt")
            torch.save({k: v for k, v in cache.items()}, p)
            paths.append(p)
        for p in paths:
            fsync(p)
        dt = time.perf_counter() - t0
        print(f"tl-torchsave ms={1e3 * dt:.1f} tok_per_s={n_tok / dt:.1f}", flush=True)
        for p in paths:
            os.unlink(p)


if __name__ == "__main__":
    main()
