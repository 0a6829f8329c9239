"""Store (hk_store_open/read) and the experiments (hk_patch_sweep, hk_ablate_sweep,
hk_logit_lens, hk_dla, hk_steer_from_prompts): equal to the CLI's result files."""
import h5py
import numpy as np
import pytest
from conftest import FIX, cli, ids_arg

import hookformer as hf

CLEAN = [227, 187, 164, 39]
CORRUPTED = [227, 12, 164, 39]


def test_store_reads_what_hookformer_cache_wrote(gpt2, tmp_path):
    (tmp_path / "ids.txt").write_text("1,2,3\n4 5 6 7\n8,9\n")
    cli("cache", "--model", FIX / "gpt2", "--tokens-file", tmp_path / "ids.txt", "--hooks",
        "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern", "--out", tmp_path / "a.h5",
        "--ctx", "4")
    before = ((tmp_path / "a.h5").read_bytes(), (tmp_path / "a.h5").stat().st_mtime_ns)
    with hf.Store(tmp_path / "a.h5") as s, h5py.File(tmp_path / "a.h5", "r") as f:
        assert s.n_sequences == 3 and s.info["n_rows"] == 9
        assert s.info["family"] == "gpt2" and s.info["dtype"] == "float32"
        assert s.hooks["blocks.1.hook_resid_post"]["shape"] == (9, 64)
        assert s.hooks["blocks.0.attn.hook_pattern"]["per_sequence"]
        seq_id, pos = f["seq_id"][:], f["position"][:]
        rows = f["blocks.1.hook_resid_post"][:]
        np.testing.assert_array_equal(s.read("blocks.1.hook_resid_post", 1),
                                      rows[seq_id == 1])
        np.testing.assert_array_equal(s.read("blocks.1.hook_resid_post", [0, 2], [2, -1]),
                                      rows[[2, 8]])
        assert s.sequence(1) == {"length": 4, "first_row": 3, "first_pos": 0, "n_rows": 4}
        assert s.token_ids(2).tolist() == [8, 9] and s.positions(1).tolist() == list(pos[3:7])
        np.testing.assert_array_equal(s.read("blocks.0.attn.hook_pattern", [0, 1, 2]),
                                      f["blocks.0.attn.hook_pattern"][:])
        # equal to run_with_cache of the same sequence
        _, c = gpt2.run_with_cache([4, 5, 6, 7], names_filter="blocks.1.hook_resid_post")
        np.testing.assert_allclose(s.read("blocks.1.hook_resid_post", 1),
                                   c["blocks.1.hook_resid_post"][0], atol=1e-5)
        with pytest.raises(hf.HookformerError, match="sequence 5|5"):
            s.read("blocks.1.hook_resid_post", 5, 0)
        with pytest.raises(KeyError, match="blocks.0.hook_mlp_out"):
            s.read("blocks.0.hook_mlp_out", 0)
    with pytest.raises(ValueError, match="closed"):
        s.read("blocks.1.hook_resid_post", 0)
    # reading, refused reads included, leaves the file byte-identical, mtime too
    assert ((tmp_path / "a.h5").read_bytes(), (tmp_path / "a.h5").stat().st_mtime_ns) == before
    with pytest.raises(hf.HookformerError, match="nope.h5"):
        hf.Store(tmp_path / "nope.h5")


def _sweep_group(path, name):
    with h5py.File(path) as f:
        g = f[name]
        return ({k: g[k][:] for k in g}, dict(g.attrs))


def test_act_patch_equals_hookformer_patch(gpt2, tmp_path):
    cli("patch", "--model", FIX / "gpt2", "--clean", ids_arg(CLEAN), "--corrupted",
        ids_arg(CORRUPTED), "--answer", "68", "--wrong", "100",
        "--sweep", "resid_pre,head_out_by_pos", "--out", tmp_path / "p.h5")
    for sweep in ("resid_pre", "head_out_by_pos"):
        r = hf.act_patch(gpt2, CLEAN, CORRUPTED, 68, 100, sweep=sweep)
        want, attrs = _sweep_group(tmp_path / "p.h5", sweep)
        for k in ("values", "change", "normalized"):
            np.testing.assert_allclose(getattr(r, k), want[k], atol=1e-5, err_msg=f"{sweep} {k}")
        assert " ".join(r.dims) == attrs["dims"] and r.point == attrs["point"]
        assert r.baseline == pytest.approx(attrs["baseline"], abs=1e-5)
        assert r.reference == pytest.approx(attrs["reference"], abs=1e-5)
    r = hf.act_patch(gpt2, CLEAN, CORRUPTED, 68, 100, point="hook_resid_pre", layer=1)
    assert r.values.shape == (1, 4) and r.layer0 == 1
    clean_metric = hf.metric(gpt2, CLEAN, 68, 100)
    assert r.reference == pytest.approx(clean_metric, abs=1e-5)
    with pytest.raises(hf.HookformerError, match="unknown sweep 'resid_pots'"):
        hf.act_patch(gpt2, CLEAN, CORRUPTED, 68, 100, sweep="resid_pots")
    assert "head_v_by_pos" in hf.sweep_names()


def test_ablate_equals_hookformer_ablate(gpt2, tmp_path):
    refs = [[5, 6, 7, 8], [9, 10, 11, 12]]
    cli("ablate", "--model", FIX / "gpt2", "--tokens", ids_arg(CLEAN), "--answer", "68",
        "--wrong", "100", "--mode", "mean", "--ref", ids_arg(refs[0]), "--ref", ids_arg(refs[1]),
        "--sweep", "head_out,mlp_out", "--out", tmp_path / "a.h5")
    for sweep in ("head_out", "mlp_out"):
        r = hf.ablate(gpt2, CLEAN, 68, 100, sweep=sweep, mode="mean", ref=refs)
        want, _ = _sweep_group(tmp_path / "a.h5", sweep)
        np.testing.assert_allclose(r.values, want["values"], atol=1e-5, err_msg=sweep)
        assert r.normalized is None
    z = hf.ablate(gpt2, CLEAN, 68, 100, sweep="head_out")
    assert z.values.shape == (2, 4)
    with pytest.raises(ValueError, match="mode='half'"):
        hf.ablate(gpt2, CLEAN, 68, 100, mode="half")


def test_lens_and_dla_equal_hookformer_lens(gpt2, tmp_path):
    cli("lens", "--model", FIX / "gpt2", "--tokens", ids_arg(CLEAN), "--top-k", "3",
        "--answer", "68", "--wrong", "100", "--out", tmp_path / "l.h5")
    ids, logits, probs = hf.logit_lens(gpt2, CLEAN, k=3)
    assert ids.shape == (3, 4, 3)
    with h5py.File(tmp_path / "l.h5") as f:
        np.testing.assert_array_equal(ids, f["lens/top_ids"][:])
        np.testing.assert_allclose(logits, f["lens/top_logits"][:], atol=1e-5)
        np.testing.assert_allclose(probs, f["lens/top_probs"][:], atol=1e-6)
        labels, vals, total = hf.dla(gpt2, [CLEAN], 68, 100)
        assert labels == [x.decode() if isinstance(x, bytes) else x for x in f["dla/labels"][:]]
        np.testing.assert_allclose(vals, f["dla/values"][:], atol=1e-5)
        np.testing.assert_allclose(total, f["dla/total"][:], atol=1e-5)
    # the last lens row is the model's own top-k at every position
    top = np.argsort(-gpt2(CLEAN)[0], axis=-1)[:, :3]
    np.testing.assert_array_equal(ids[-1], top)


def test_steering_vector_equals_hookformer_steer(gpt2, tmp_path):
    cli("steer", "--model", FIX / "gpt2", "--tokens", ids_arg(CLEAN), "--pos", "5,6,7",
        "--neg", "8,9,10", "--layer", "1", "--save", tmp_path / "v.h5", "--max-new", "1")
    v = hf.steering_vector(gpt2, "hook_resid_pre", 1, [5, 6, 7], [8, 9, 10])
    with h5py.File(tmp_path / "v.h5") as f:
        np.testing.assert_allclose(v, f["vector"][:], atol=1e-6)
    assert v.shape == (1, 64)


def test_steering_generates_what_hookformer_steer_generates(gpt2):
    out = cli("steer", "--model", FIX / "gpt2", "--tokens", ids_arg(CLEAN), "--pos", "5,6,7",
              "--neg", "8,9,10", "--layer", "1", "--max-new", "5", "--coef", "4")
    lines = dict(line.split() for line in out.splitlines() if not line.startswith("#"))
    v = hf.steering_vector(gpt2, "hook_resid_pre", 1, [5, 6, 7], [8, 9, 10])
    with hf.steering(gpt2, v, layer=1, coef=4):
        steered = gpt2.generate(CLEAN, max_new_tokens=5, do_sample=False)[0, 4:]
    plain = gpt2.generate(CLEAN, max_new_tokens=5, do_sample=False)[0, 4:]
    assert ids_arg(steered) == lines["steered"] and ids_arg(plain) == lines["plain"]
    assert lines["steered"] != lines["plain"]
    with pytest.raises(hf.HookformerError, match="hook_resid_pots"):
        with hf.steering(gpt2, v, layer=1, point="hook_resid_pots"):
            pass


def test_experiments_run_under_the_models_hooks(gpt2):
    """add_hook hooks fire in the experiments' forwards (hk_patch_opts.hooks, ...): zeroing
    head 1 of layer 0 makes its ablation change nothing."""
    def zero_head1(z, hook):
        z[:, :, 1, :] = 0

    gpt2.add_hook("blocks.0.attn.hook_z", zero_head1)
    try:
        r = hf.ablate(gpt2, CLEAN, 68, 100, sweep="head_out", layer=0)
    finally:
        gpt2.reset_hooks()
    assert r.change[0, 1] == pytest.approx(0.0, abs=1e-6)
    free = hf.ablate(gpt2, CLEAN, 68, 100, sweep="head_out", layer=0)
    assert abs(free.change[0, 1]) > 1e-4
