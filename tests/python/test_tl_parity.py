"""TransformerLens 3.9's run_with_cache on the fixtures (tl_cache*.safetensors, written by
tests/fixtures/make_tl_references.py) matched through the Python API within 1e-4, every hook
TransformerLens caches, as tests/models/test_tl_parity.c matches it through C."""
import numpy as np
import pytest
from conftest import FIX, read_safetensors

import hookformer as hf

FAMILIES = [("gpt2", ""), ("llama", ""), ("mistral", ""), ("qwen2", ""), ("phi3", "_longrope"),
            ("neox", ""), ("qwen3", ""), ("mixtral", ""), ("gemma2", "")]


def _split_input(name):
    return name.endswith("_input") or name.endswith("hook_attn_in")


@pytest.mark.parametrize("family,suffix", FAMILIES)
def test_run_with_cache_matches_transformerlens(family, suffix):
    ref = read_safetensors(FIX / family / f"tl_cache{suffix}.safetensors")
    m = hf.load(FIX / family)
    ids = ref["input_ids"]
    ours = set(m.hook_names())
    names = [n for n in ref if n in ours]
    # each expert's activations are [tokens routed to it, d_mlp] in TransformerLens and one
    # hook_expert_post [batch, pos, k, d_mlp] here: tests/models/test_tl_parity.c maps them
    others = [n for n in ref if n not in ours and n not in ("input_ids", "logits")]
    assert all(".mlp.experts." in n for n in others), others
    worst, compared = 0.0, 0
    # split inputs reroute ln1 (TransformerLens's use_split_qkv_input): a run of their own
    for part in ([n for n in names if not _split_input(n)], [n for n in names if _split_input(n)]):
        if not part:
            continue
        logits, cache = m.run_with_cache(ids, names_filter=part)
        if part[0] == names[0]:
            np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, err_msg=f"{family} logits")
        for n in part:
            got, want = cache[n], ref[n]
            if got.shape != want.shape:
                # TransformerLens's q/k norms (Qwen3) and MoE routing (Mixtral) run on
                # [batch * pos (* head), ...]: the same numbers in the same order
                assert want.ndim == 2 and got.size == want.size, (n, got.shape, want.shape)
                got = got.reshape(want.shape)
            with np.errstate(invalid="ignore"):  # -inf - -inf: masked scores are equal
                diff = np.where(got == want, 0.0, np.abs(got - want))
            worst = max(worst, float(diff.max()))
            assert diff.max() <= 1e-4, f"{family} {n}: {diff.max()}"  # NaN fails too
            compared += 1
    print(f"{family}: {compared} hooks, max |diff| {worst:.2g}")
    assert compared == len(names) > 10
    m.close()
