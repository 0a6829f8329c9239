#!/usr/bin/env python3
"""TransformerLens peer of bench_patching: the same two sweeps with
transformer_lens.patching.get_act_patch_resid_pre and get_act_patch_attn_head_out_all_pos, on
the same weights, timed.

    /opt/venv-tl/bin/python bench/peer_patching.py --model DIR --clean IDS --corrupted IDS \
        --answer ID --wrong ID [--threads N] [--reps R] [--out PREFIX]

DIR is a Hugging Face folder (config.json + model.safetensors) or a .gguf file (loaded with
transformers' gguf_file, dequantized to f32). TransformerLens 3.9 has no SmolLM2 in its list of
official models, so HookedTransformer.from_pretrained cannot take it; the model is built as
tests/fixtures/make_tl_references.py builds the fixtures: TL's convert_hf_model_config on the
folder's config.json, TL's convert_llama_weights, load_and_process_state_dict without folding
(fold_ln, centering off: the activations are those of the HF model). Prints one line per sweep
like bench_patching; --out writes PREFIX<sweep>.f32.
--export DIR writes the (dequantized) weights as an HF folder and exits.
"""
import argparse
import os
import statistics
import sys
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np                                                # noqa: E402
import torch                                                      # noqa: E402
from transformers import AutoModelForCausalLM                     # noqa: E402


def load_hf(path):
    if path.endswith(".gguf"):
        return AutoModelForCausalLM.from_pretrained(os.path.dirname(path) or ".",
                                                    gguf_file=os.path.basename(path),
                                                    dtype=torch.float32).eval()
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def export(hf, out):
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    tied = getattr(hf.config, "tie_word_embeddings", False)
    sd = {k: v.detach().clone().contiguous() for k, v in hf.state_dict().items()
          if not (tied and k == "lm_head.weight")}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    if not hf.config.architectures:   # a config made from GGUF metadata has none
        hf.config.architectures = [type(hf).__name__]
    hf.config.save_pretrained(out)


def build_tl(hf, cfg_dir):
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.loading_from_pretrained import convert_hf_model_config
    from transformer_lens.pretrained.weight_conversions import convert_llama_weights
    cfg = convert_hf_model_config(cfg_dir)
    cfg.pop("tokenizer_name", None)
    cfg.pop("quantization_method", None)
    cfg.update(dtype=torch.float32, device="cpu", init_weights=False, tokenizer_name=None,
               default_prepend_bos=False)
    model = HookedTransformer(HookedTransformerConfig(**cfg))
    sd = {k: v.detach().clone().float() for k, v in convert_llama_weights(hf, model.cfg).items()}
    model.load_and_process_state_dict(sd, fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False,
                                      refactor_factored_attn_matrices=False)
    return model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--clean")
    ap.add_argument("--corrupted")
    ap.add_argument("--answer", type=int)
    ap.add_argument("--wrong", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--out")
    ap.add_argument("--export")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    hf = load_hf(a.model)
    if a.export:
        export(hf, a.export)
        return
    # TL reads config.json from a folder; a GGUF-made config names no architecture
    import tempfile
    cfg_dir = tempfile.mkdtemp()
    if not hf.config.architectures:
        hf.config.architectures = [type(hf).__name__]
    hf.config.save_pretrained(cfg_dir)
    model = build_tl(hf, cfg_dir)
    del hf
    import transformer_lens.patching as patching
    clean = torch.tensor([[int(x) for x in a.clean.split(",")]])
    bad = torch.tensor([[int(x) for x in a.corrupted.split(",")]])
    print(f"# transformer_lens peer: load {time.time() - t0:.2f} s, {model.cfg.n_layers} layers, "
          f"{bad.shape[1]} tokens, torch threads {torch.get_num_threads()}")

    def metric(logits):
        return logits[0, -1, a.answer] - logits[0, -1, a.wrong]
    with torch.inference_mode():
        cm, km = metric(model(clean)).item(), metric(model(bad)).item()
        _, cache = model.run_with_cache(clean)
        for name, fn in (("resid_pre", patching.get_act_patch_resid_pre),
                         ("head_out", patching.get_act_patch_attn_head_out_all_pos)):
            ts = []
            for _ in range(a.reps):
                s = time.time()
                r = fn(model, bad, cache, metric)
                ts.append(time.time() - s)
            print(f"peer sweep={name} patches={r.numel()} s={statistics.median(ts):.3f} "
                  f"clean={cm:.4f} corrupted={km:.4f}", flush=True)
            if a.out:
                r.float().numpy().astype(np.float32).tofile(f"{a.out}{name}.f32")


if __name__ == "__main__":
    sys.exit(main())
