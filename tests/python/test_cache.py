"""run_with_cache: TransformerLens's shapes, names_filter / pos_slice / stop_at_layer, equal
to the C library's store of the same run (hookformer cache)."""
import h5py
import numpy as np
import pytest
from conftest import FIX, PROMPT, cli, ids_arg

import hookformer as hf


def test_every_point_equals_the_c_store(gpt2, tmp_path):
    (tmp_path / "ids.txt").write_text(ids_arg(PROMPT[0]) + "\n")
    cli("cache", "--model", FIX / "gpt2", "--tokens-file", tmp_path / "ids.txt",
        "--hooks", ",".join(gpt2.hook_names(optional=False)),
        "--out", tmp_path / "all.h5", "--ctx", "6")
    logits, cache = gpt2.run_with_cache(PROMPT)
    assert list(cache) == gpt2.hook_names(optional=False)
    # hooked patterns are materialized per query chunk: the same logits up to rounding
    np.testing.assert_allclose(logits, gpt2(PROMPT), atol=1e-5)
    with h5py.File(tmp_path / "all.h5") as f:
        for name, act in cache.items():
            stored = f[name][:]
            if "hook_pattern" in name or "hook_attn_scores" in name:
                np.testing.assert_array_equal(act, stored, err_msg=name)  # [seq, head, q, k]
            else:
                np.testing.assert_array_equal(act[0], stored, err_msg=name)  # rows = positions


def test_shapes_are_transformerlens_shapes(llama):
    _, c = llama.run_with_cache(PROMPT[:, :5])
    cfg = llama.cfg
    assert c["blocks.0.attn.hook_q"].shape == (1, 5, cfg["n_heads"], cfg["d_head"])
    assert c["blocks.0.attn.hook_k"].shape == (1, 5, cfg["n_kv_heads"], cfg["d_head"])
    assert c["blocks.1.attn.hook_pattern"].shape == (1, cfg["n_heads"], 5, 5)
    assert c["blocks.0.mlp.hook_post"].shape == (1, 5, cfg["d_mlp"])
    assert c["ln_final.hook_scale"].shape == (1, 5, 1)
    # TransformerLens's short keys
    assert c["resid_post", 1] is c["blocks.1.hook_resid_post"]
    assert c["pattern", 0] is c["blocks.0.attn.hook_pattern"]
    assert c["ln_final.hook_normalized", None] is c["ln_final.hook_normalized"]


def test_names_filter_forms(gpt2):
    want = ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    for f in ("blocks.*.hook_resid_post", want, lambda n: n.endswith("hook_resid_post")):
        _, c = gpt2.run_with_cache(PROMPT, names_filter=f)
        assert list(c) == want
    _, c = gpt2.run_with_cache(PROMPT, names_filter=lambda n: n.endswith("attn.hook_result"))
    assert c["blocks.0.attn.hook_result"].shape == (1, 6, 4, 64), "optional points on request"
    _, c = gpt2.run_with_cache(PROMPT, names_filter="blocks.*.attn.hook_result")
    assert list(c) == ["blocks.0.attn.hook_result", "blocks.1.attn.hook_result"]
    # a glob over both kinds picks the ordinary points: ln1 keeps its TransformerLens shape
    _, c = gpt2.run_with_cache(PROMPT, names_filter="blocks.0.*")
    assert "blocks.0.hook_q_input" not in c and "blocks.0.attn.hook_result" not in c
    assert c["blocks.0.ln1.hook_normalized"].shape == (1, 6, 64)
    with pytest.raises(hf.HookformerError, match="matches no hook point"):
        gpt2.run_with_cache(PROMPT, names_filter="blocks.0.hook_nothing")
    with pytest.raises(TypeError):
        gpt2.run_with_cache(PROMPT, names_filter=[1, 2])


def test_pos_slice(gpt2):
    _, full = gpt2.run_with_cache(PROMPT, names_filter=["blocks.0.hook_resid_post",
                                                        "blocks.0.attn.hook_z",
                                                        "blocks.0.attn.hook_pattern"])
    for ps, sl in [(-1, -1), (2, 2), (slice(1, 4), slice(1, 4)), ((None, 3), slice(None, 3)),
                   (slice(-2, None), slice(-2, None))]:
        _, c = gpt2.run_with_cache(PROMPT, names_filter=list(full), pos_slice=ps)
        np.testing.assert_array_equal(c["blocks.0.hook_resid_post"],
                                      full["blocks.0.hook_resid_post"][:, sl], err_msg=str(ps))
        np.testing.assert_array_equal(c["blocks.0.attn.hook_z"],
                                      full["blocks.0.attn.hook_z"][:, sl], err_msg=str(ps))
        # scores/patterns: query positions sliced, every key kept
        np.testing.assert_array_equal(c["blocks.0.attn.hook_pattern"],
                                      full["blocks.0.attn.hook_pattern"][:, :, sl],
                                      err_msg=str(ps))
    with pytest.raises(ValueError, match="step"):
        gpt2.run_with_cache(PROMPT, pos_slice=slice(0, 4, 2))


def test_stop_at_layer_and_return_type_none(gpt2):
    resid, c = gpt2.run_with_cache(PROMPT, stop_at_layer=1)
    assert resid.shape == (1, 6, 64)
    assert "blocks.0.hook_resid_post" in c and "blocks.1.hook_resid_pre" not in c
    assert "ln_final.hook_normalized" not in c
    _, full = gpt2.run_with_cache(PROMPT)
    np.testing.assert_array_equal(resid, full["blocks.1.hook_resid_pre"])
    out, c = gpt2.run_with_cache(PROMPT, names_filter="blocks.0.*", return_type=None)
    assert out is None
    np.testing.assert_array_equal(c["blocks.0.hook_resid_post"], full["blocks.0.hook_resid_post"])


def test_remove_batch_dim_and_batches(gpt2):
    _, c = gpt2.run_with_cache(PROMPT, names_filter="blocks.0.hook_resid_post",
                               remove_batch_dim=True)
    assert c["blocks.0.hook_resid_post"].shape == (6, 64)
    two = np.concatenate([PROMPT, PROMPT[:, ::-1]])
    _, c2 = gpt2.run_with_cache(two, names_filter="blocks.1.hook_resid_post")
    assert c2["blocks.1.hook_resid_post"].shape == (2, 6, 64)


def test_cache_arrays_are_views_of_the_c_cache(gpt2):
    """No copy: every array of one run sits in memory the C cache owns (their base is one
    owner), and the memory stays valid while any array is alive."""
    _, c = gpt2.run_with_cache(PROMPT, names_filter="blocks.*.hook_resid_post")
    a = c["blocks.0.hook_resid_post"]
    b = c["blocks.1.hook_resid_post"]
    assert not a.flags.owndata and a.base.owner is b.base.owner
    keep = a[0, 3]
    want = keep.copy()
    del c, a, b
    import gc
    gc.collect()
    np.testing.assert_array_equal(keep, want)
