# %% [markdown]
# # hookformer from Python: a tour
# A notebook-style script (cells marked `# %%`, which Jupyter/VS Code open as a notebook):
# load a model, cache activations, patch with a hook, run a patching sweep and the logit
# lens, then splice in a sparse autoencoder. Run it as `python3 examples/python_tour.py [MODEL]` (default: the GPT-2 fixture);
# tests/python/test_example.py runs it in CI.

# %%
import os
import sys
from pathlib import Path

import numpy as np

import hookformer

model_path = sys.argv[1] if len(sys.argv) > 1 else \
    Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpt2"
model = hookformer.load(model_path)
cfg = model.cfg
print(f"{cfg['family']}: {cfg['n_layers']} layers, d_model {cfg['d_model']}, "
      f"{len(model.hook_names())} hook points")
tokens = np.array([[227, 187, 164, 39, 225, 23]])  # [batch 1, pos 6]

# %% [markdown]
# ## run_with_cache: the residual stream after every block

# %%
logits, cache = model.run_with_cache(tokens, names_filter="blocks.*.hook_resid_post")
for name, act in cache.items():  # act: [batch, pos, d_model], a view of the C cache
    print(f"  {name:28s} {act.shape}  |x| at the last position {np.linalg.norm(act[0, -1]):.4f}")
print("  next token:", int(logits[0, -1].argmax()))

# %% [markdown]
# ## run_with_hooks: zero-ablate head 1 of layer 0
# The hook gets a zero-copy, writable view of `attn.hook_z` [batch, pos, head, d_head]:
# editing it in place changes the rest of the forward.

# %%
def zero_head(z, hook):
    z[:, :, 1, :] = 0.0


ablated = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_z", zero_head)])
print(f"max |logit change| at the last position: {np.abs(ablated - logits)[0, -1].max():.4f}")

# %% [markdown]
# ## Activation patching: clean resid_pre into the corrupted run, per layer and position

# %%
clean, corrupted = [227, 187, 164, 39], [227, 12, 164, 39]
r = hookformer.act_patch(model, clean, corrupted, answer=68, wrong=100, sweep="resid_pre")
print(f"{r.point} {r.dims}: baseline {r.baseline:.4f}, clean {r.reference:.4f}")
print(np.array2string(r.normalized, precision=3, suppress_small=True))

# %% [markdown]
# ## Logit lens: the top token of every layer at the last position

# %%
ids, lens_logits, probs = hookformer.logit_lens(model, clean, k=1)
for layer in range(ids.shape[0]):
    print(f"  row {layer}: token {ids[layer, -1, 0]:4d}  p {probs[layer, -1, 0]:.3f}")

# %% [markdown]
# ## A sparse autoencoder: its features at the last position, and how well it reconstructs
# `load_sae` reads a SAELens folder (cfg.json + sae_weights.safetensors) or a Gemma Scope
# npz; the default is the fixture SAE trained for the GPT-2 fixture's
# `blocks.0.hook_resid_post` (pass SAE=DIR to use another that fits MODEL).

# %%
fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
sae_path = os.environ.get("SAE") or (fixtures / "sae" / "gpt2_standard"
                                     if len(sys.argv) < 2 else None)
if sae_path is None:
    print("no SAE for this MODEL: set SAE=DIR (one trained on it) for this cell")
else:
    sae = hookformer.load_sae(sae_path)
    print(f"SAE at {sae.hook_name}: d_in {sae.d_in}, d_sae {sae.d_sae}")
    model.add_sae(sae)  # spliced into every later run until reset_saes()
    post = f"{sae.hook_name}.hook_sae_acts_post"
    print("  its points:", [n for n in model.hook_names() if n.startswith(sae.hook_name + ".")])
    sae_logits, sae_cache = model.run_with_cache(tokens, names_filter=post)
    acts = sae_cache[post][0, -1]  # [d_sae] feature activations at the last position
    top = np.argsort(acts)[::-1][:5]
    print("  top features:", ", ".join(f"{f} ({acts[f]:.3f})" for f in top))
    print(f"  max |logit change| with the SAE spliced in: "
          f"{np.abs(sae_logits - logits)[0, -1].max():.4f}")
    model.reset_saes()
    # the fixture SAE has random weights: its metrics mean nothing (a trained SAE's explained
    # variance is near 1 and its CE loss score near 1)
    ev = model.sae_eval(sae, [clean, corrupted, tokens[0].tolist()])
    print(f"  sae_eval over {ev['tokens']} tokens: explained variance "
          f"{ev['explained_variance']:.3f}, L0 {ev['l0']:.1f}, CE loss score "
          f"{ev['ce_loss_score']:.3f}")

# %% [markdown]
# torch users: `torch.from_numpy(cache["blocks.0.hook_resid_post"])` wraps any of these
# arrays without a copy.
