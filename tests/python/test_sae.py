"""SAEs from Python (hookformer.load_sae, run_with_saes, run_with_cache_with_saes, add_sae,
sae_eval, sae_top_contexts, cache_saes) against SAELens's references of the fixtures
(tests/fixtures/sae/*/reference.safetensors, eval.json: tests/fixtures/make_sae_references.py),
numpy maths on the SAE's own weights, and the C CLI's outputs (cache --sae, sae eval,
features, steer --sae, ablate --sae)."""
import json
import re

import h5py
import numpy as np
import pytest
from conftest import FIX, cli, ids_arg, in_threads, read_safetensors

import hookformer as hf
from hookformer import _lib

SAE_DIR = FIX / "sae"
SAES = ["standard", "jumprelu", "topk", "gated", "hookz", "transcoder", "jumprelu_transcoder"]
GEMMA_HOOK = "blocks.1.hook_resid_post"
TOL = 1e-4


def load(name):
    return hf.load_sae(SAE_DIR / name, hook=GEMMA_HOOK if name.startswith("gemma") else None)


def refs(name):
    return read_safetensors(SAE_DIR / name / "reference.safetensors")


def n_hooks(model):
    return _lib.lib.hk_hooks_count(model._hooks)


# ---- loading, cfg, weights ----

@pytest.mark.parametrize("name", SAES)
def test_cfg_and_weights_are_the_folders(name):
    d = SAE_DIR / f"gpt2_{name}"
    want = json.loads((d / "cfg.json").read_text())
    weights = read_safetensors(d / "sae_weights.safetensors")
    with hf.load_sae(d) as sae:
        c = sae.cfg
        for k in ("d_in", "d_sae", "architecture", "apply_b_dec_to_input",
                  "normalize_activations"):
            assert c[k] == want[k], k
        assert c["hook_name"] == c["metadata"]["hook_name"] == want["metadata"]["hook_name"]
        assert sae.hook_name == want["metadata"]["hook_name"]
        assert c["format"] == "saelens"
        if name == "topk":
            assert c["k"] == want["k"] == 8
        if "transcoder" in name:
            assert c["hook_name_out"] == sae.hook_name_out == want["metadata"]["hook_name_out"]
            assert sae.transcoder
        for w, a in weights.items():
            got = getattr(sae, w)
            assert got.dtype == np.float32 and got.shape == a.shape, w
            np.testing.assert_array_equal(got, a, err_msg=w)
            assert sae.weight(w) is got  # one view, handed out again
        assert set(sae.weights()) == set(weights)
        for w in {"threshold", "b_enc", "b_gate"} - set(weights):
            with pytest.raises(AttributeError, match=rf"no weight '{w}'"):
                getattr(sae, w)


def test_gemma_scope_npz_needs_its_hook_and_loads_with_it():
    with pytest.raises(hf.HookformerError, match="hook") as e:
        hf.load_sae(SAE_DIR / "gemma_scope_deflated" / "params.npz")
    assert "params.npz" in str(e.value) and e.value.status == "HK_ERR_INVALID_ARG"
    for kind in ("stored", "deflated"):
        with hf.load_sae(SAE_DIR / f"gemma_scope_{kind}", hook=GEMMA_HOOK) as sae:
            assert sae.cfg["architecture"] == "jumprelu"
            assert sae.cfg["format"] == "gemma-scope-npz"
            assert sae.cfg["hook_name"] == GEMMA_HOOK
            assert sae.cfg["apply_b_dec_to_input"] is False
            npz = np.load(SAE_DIR / f"gemma_scope_{kind}" / "params.npz")
            for w in npz.files:
                np.testing.assert_array_equal(getattr(sae, w), npz[w], err_msg=w)


def test_the_hook_option_overrides_the_folders_hook():
    with hf.load_sae(SAE_DIR / "gpt2_standard", hook="blocks.1.hook_resid_pre") as sae:
        assert sae.hook_name == sae.cfg["hook_name"] == "blocks.1.hook_resid_pre"


def test_a_missing_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(hf.HookformerError, match=str(tmp_path / "nope")):
        hf.load_sae(tmp_path / "nope")


def test_weights_are_zero_copy_views_an_edit_changes_decode():
    sae = load("gpt2_standard")
    W, b = sae.W_dec, sae.b_dec
    assert W.flags.writeable and not W.flags.owndata
    acts = np.abs(np.random.default_rng(0).standard_normal((3, sae.d_sae))).astype(np.float32)
    before = sae.decode(acts)
    np.testing.assert_allclose(before, acts @ W + b, atol=TOL)
    saved = W.copy()
    W[...] = 0
    np.testing.assert_array_equal(sae.decode(acts), np.broadcast_to(b, (3, sae.d_out)))
    W[...] = saved
    np.testing.assert_array_equal(sae.decode(acts), before)
    sae.close()


def test_gated_edits_of_w_enc_through_a_kept_view_reach_encode():
    """a gated SAE caches W_enc * exp(r_mag): an edit through a view taken earlier must
    still be seen by the next encode"""
    sae = load("gpt2_gated")
    W = sae.W_enc
    x = np.random.default_rng(1).standard_normal((4, sae.d_in)).astype(np.float32)
    a0 = sae.encode(x)
    W *= 2.0
    a1 = sae.encode(x)
    np.testing.assert_allclose(a1, np_encode(sae, x), atol=TOL)
    assert not np.allclose(a0, a1)
    W /= 2.0
    np.testing.assert_allclose(sae.encode(x), a0, atol=1e-6)


# ---- encode / decode: numpy maths on the weights, SAELens's values ----

def np_encode(sae, x):
    """docs/SAE.md's encoding, in float64 numpy"""
    c, w = sae.cfg, {k: v.astype(np.float64) for k, v in sae.weights().items()}
    x = np.asarray(x, np.float64)
    if c["normalize_activations"] == "constant_norm_rescale":
        x = x * np.sqrt(c["d_in"]) / np.linalg.norm(x, axis=-1, keepdims=True)
    elif c["normalize_activations"] == "layer_norm":
        mu = x.mean(-1, keepdims=True)
        x = (x - mu) / (x.std(-1, ddof=1, keepdims=True) + 1e-5)
    if c["apply_b_dec_to_input"]:
        x = x - w["b_dec"]
    arch = c["architecture"].replace("_transcoder", "")
    if arch == "gated":
        gate = x @ w["W_enc"] + w["b_gate"]
        pre = x @ (w["W_enc"] * np.exp(w["r_mag"])) + w["b_mag"]
        return (gate > 0) * np.maximum(pre, 0)
    pre = x @ w["W_enc"] + w["b_enc"]
    if arch in ("standard", "transcoder"):
        return np.maximum(pre, 0)
    if arch == "jumprelu":
        return np.maximum(pre, 0) * (pre > w["threshold"])
    assert arch == "topk"
    kth = np.sort(pre, axis=-1)[..., -c["k"]][..., None]
    return np.where(pre >= kth, np.maximum(pre, 0), 0.0)


@pytest.mark.parametrize("name", SAES + ["gemma_scope_stored"])
def test_encode_equals_numpy_on_the_weights(name):
    sae = load(name if name.startswith("gemma") else f"gpt2_{name}")
    x = np.random.default_rng(2).standard_normal((2, 3, sae.d_in)).astype(np.float32) * 2
    acts = sae.encode(x)
    assert acts.shape == (2, 3, sae.d_sae) and acts.dtype == np.float32
    want = np_encode(sae, x)
    np.testing.assert_allclose(acts, want, atol=TOL, rtol=TOL)
    assert (acts > 0).any() and (acts == 0).any()
    if sae.cfg["architecture"] == "topk":
        assert ((acts != 0).sum(-1) <= sae.cfg["k"]).all()
    rec = sae.decode(acts)
    assert rec.shape == (2, 3, sae.d_out)
    np.testing.assert_allclose(rec, acts @ sae.W_dec + sae.b_dec, atol=TOL, rtol=TOL)
    # any leading shape, any float dtype in; one row and no rows
    np.testing.assert_array_equal(sae.encode(x.reshape(-1, sae.d_in)), acts.reshape(-1, sae.d_sae))
    np.testing.assert_allclose(sae.encode(x[0, 0].astype(np.float64)), acts[0, 0], atol=1e-6)
    assert sae.encode(np.zeros((0, sae.d_in), np.float32)).shape == (0, sae.d_sae)
    np.testing.assert_allclose(sae.encode(x[:, ::2]), acts[:, ::2], atol=1e-6)  # strided in


@pytest.mark.parametrize("model_name", ["gpt2", "llama"])
def test_encode_of_the_hook_activation_equals_saelens(model_name, request):
    m = request.getfixturevalue(model_name)
    for name in ("standard", "jumprelu", "topk", "gated"):
        sae = load(f"{model_name}_{name}")
        r = refs(f"{model_name}_{name}")
        _, cache = m.run_with_cache(r["input_ids"], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name])
        np.testing.assert_allclose(acts, r["acts_post"], atol=TOL, err_msg=name)
        if sae.cfg["normalize_activations"] == "none":  # decode does not un-normalize
            np.testing.assert_allclose(sae.decode(acts), r["recons"], atol=TOL, err_msg=name)


def test_encode_decode_errors_are_clear():
    sae = load("gpt2_standard")
    with pytest.raises(ValueError, match=r"encode: expected an array \[\.\.\., 64\], got shape "
                                         r"\(2, 63\)"):
        sae.encode(np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError, match=r"decode: expected an array \[\.\.\., 96\]"):
        sae.decode(np.zeros((2, 64), np.float32))
    with pytest.raises(ValueError, match=r"\[\.\.\., 64\]"):
        sae.encode(np.float32(1.0))
    with pytest.raises(TypeError, match="expected an array of floats, got dtype int64"):
        sae.encode(np.zeros((2, 64), np.int64))
    with pytest.raises(TypeError, match="floats"):
        sae.encode(np.zeros((2, 64), np.complex64))
    with pytest.raises(TypeError, match="floats"):
        sae.encode([["a"] * 64])


def test_a_closed_sae_refuses_every_call_and_its_arrays_stay_valid():
    sae = load("gpt2_standard")
    W = sae.W_enc
    want = W.copy()
    sae.close()
    sae.close()  # twice is fine
    for call in (lambda: sae.encode(np.zeros((1, 64), np.float32)),
                 lambda: sae.decode(np.zeros((1, 96), np.float32)),
                 lambda: sae.W_dec, lambda: sae.weight("b_dec")):
        with pytest.raises(ValueError, match="gpt2_standard' is closed"):
            call()
    import gc
    gc.collect()
    np.testing.assert_array_equal(W, want)  # the view keeps the C memory alive
    with load("gpt2_standard") as s:
        assert s.d_sae == 96
    with pytest.raises(ValueError, match="is closed"):
        s.encode(np.zeros((1, 64), np.float32))


# ---- splicing: run_with_saes against SAELens ----

ALL = [f"gpt2_{n}" for n in SAES] + [f"llama_{n}" for n in SAES] + ["gemma_scope_stored",
                                                                   "gemma_scope_deflated"]


@pytest.mark.parametrize("name", ALL)
def test_run_with_saes_equals_saelens(name, request):
    m = request.getfixturevalue("llama" if name.startswith("llama") else "gpt2")
    sae, r = load(name), refs(name)
    ids = r["input_ids"]
    clean = m(ids)
    np.testing.assert_allclose(clean, r["logits_clean"], atol=TOL)
    rep = m.run_with_saes(ids, saes=[sae])
    np.testing.assert_allclose(rep, r["logits_replace"], atol=TOL)
    assert np.abs(rep - clean).max() > 1e-2  # the SAE did replace the activation
    np.testing.assert_allclose(m.run_with_saes(ids, saes=[sae], use_error_term=True),
                               r["logits_replace_error"], atol=TOL)
    np.testing.assert_allclose(m.run_with_saes(ids, saes=sae, mode="observe"), clean,
                               atol=TOL)
    # use_error_term with a feature zeroed by a hook on hook_sae_acts_post
    f = int(r["ablate_feature"][0])

    def zero(act, hook):
        act[..., f] = 0.0

    abl = m.run_with_saes(ids, saes=[sae], mode="replace_error",
                          fwd_hooks=[(f"{sae.hook_name}.hook_sae_acts_post", zero)])
    np.testing.assert_allclose(abl, r["logits_ablate_error"], atol=TOL)
    # detached afterwards: the model is its clean self again
    assert n_hooks(m) == 0
    np.testing.assert_array_equal(m(ids), clean)


def test_run_with_saes_several_saes_and_none(gpt2):
    r = refs("gpt2_standard")
    ids = r["input_ids"]
    a, b = load("gpt2_standard"), load("gpt2_jumprelu")  # blocks.0 resid_post, blocks.1 resid_pre
    both = gpt2.run_with_saes(ids, saes=[a, b])
    one = gpt2.run_with_saes(ids, saes=[a])
    assert not np.allclose(both, one)
    # b alone in replace_error mode after a: b changes nothing then
    np.testing.assert_allclose(gpt2.run_with_saes(ids, saes=[a]), r["logits_replace"], atol=TOL)
    np.testing.assert_array_equal(gpt2.run_with_saes(ids, saes=[]), gpt2(ids))
    assert n_hooks(gpt2) == 0


# ---- run_with_cache_with_saes ----

def test_the_cache_holds_the_saes_points_as_saelens(gpt2):
    sae, r = load("gpt2_jumprelu"), refs("gpt2_jumprelu")
    ids, h = r["input_ids"], sae.hook_name
    logits, cache = gpt2.run_with_cache_with_saes(ids, saes=[sae], mode="observe")
    np.testing.assert_allclose(logits, r["logits_clean"], atol=TOL)
    for p in ("acts_pre", "acts_post", "recons", "output"):
        a = cache[f"{h}.hook_sae_{p}"]
        assert a.dtype == np.float32 and a.shape == r[p].shape, p
        np.testing.assert_allclose(a, r[p], atol=TOL, err_msg=p)
    # names_filter None: every point of the model (non-optional) and of the SAE, in firing
    # order with the SAE's beside its hook
    names = list(cache)
    sae_pts = [f"{h}.hook_sae_{p}" for p in ("input", "acts_pre", "acts_post", "recons",
                                             "output")]
    model_pts = gpt2.hook_names(optional=False)
    assert [n for n in names if n not in sae_pts] == model_pts
    at = names.index(h)
    assert names[at + 1:at + 6] == sae_pts
    assert f"{h}.hook_sae_error" not in cache  # replace_error only
    np.testing.assert_array_equal(cache[f"{h}.hook_sae_input"], cache[h])
    # the in-observe input is the hook's own activation; the features equal encode of it
    np.testing.assert_allclose(sae.encode(cache[h]), cache[f"{h}.hook_sae_acts_post"],
                               atol=1e-5)


def test_names_filter_globs_functions_and_pos_slice_reach_the_sae_points(gpt2):
    sae, r = load("gpt2_standard"), refs("gpt2_standard")
    ids, h = r["input_ids"], sae.hook_name
    post = f"{h}.hook_sae_acts_post"
    _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter="*.hook_sae_acts_*")
    assert list(c) == [f"{h}.hook_sae_acts_pre", post]
    np.testing.assert_allclose(c[post], r["acts_post"], atol=TOL)
    _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter=lambda n: "sae_o" in n,
                                         use_error_term=True)
    assert list(c) == [f"{h}.hook_sae_output"]
    # with the error term the output is the hook's clean activation
    _, clean = gpt2.run_with_cache(ids, names_filter=h)
    np.testing.assert_allclose(c[f"{h}.hook_sae_output"], clean[h], atol=TOL)
    _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter=[post, h,
                                                                        f"{h}.hook_sae_error"],
                                         mode="replace_error", pos_slice=-1,
                                         remove_batch_dim=True)
    assert c[post].shape == (sae.d_sae,)
    np.testing.assert_allclose(c[post], r["acts_post"][0, -1], atol=TOL)
    np.testing.assert_allclose(c[f"{h}.hook_sae_error"], clean[h][0, -1] - r["output"][0, -1],
                               atol=TOL)
    _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter=post, pos_slice=(2, 5))
    np.testing.assert_allclose(c[post], r["acts_post"][:, 2:5], atol=TOL)
    # the cache's arrays are zero-copy views of the C cache
    assert not c[post].flags.owndata
    assert n_hooks(gpt2) == 0


def test_the_cache_equals_hookformer_cache_sae(gpt2, tmp_path):
    for name in ("standard", "topk", "transcoder"):
        sae, r = load(f"gpt2_{name}"), refs(f"gpt2_{name}")
        ids = r["input_ids"][0]
        out = tmp_path / f"{name}.h5"
        cli("cache", "--model", FIX / "gpt2", "--tokens", ids_arg(ids), "--sae",
            SAE_DIR / f"gpt2_{name}", "--out", out)
        post = f"{sae.hook_name}.hook_sae_acts_post"
        _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], mode="observe", names_filter=post)
        with h5py.File(out) as f:
            g = f[post]
            ind, val, ptr = g["indices"][:], g["values"][:], g["row_ptr"][:]
        dense = np.zeros((len(ptr) - 1, sae.d_sae), np.float32)
        for row in range(len(ptr) - 1):
            dense[row, ind[ptr[row]:ptr[row + 1]]] = val[ptr[row]:ptr[row + 1]]
        np.testing.assert_allclose(c[post][0], dense, atol=1e-6, err_msg=name)
        assert (dense != 0).sum() == len(val)


def test_transcoders_splice_at_their_output_hook(gpt2):
    sae, r = load("gpt2_transcoder"), refs("gpt2_transcoder")
    ids = r["input_ids"]
    logits, c = gpt2.run_with_cache_with_saes(
        ids, saes=sae, names_filter=[sae.hook_name_out, f"{sae.hook_name}.hook_sae_output"])
    np.testing.assert_allclose(logits, r["logits_replace"], atol=TOL)
    # the output hook's activation is the transcoder's output
    np.testing.assert_allclose(c[sae.hook_name_out], r["output"], atol=TOL)
    np.testing.assert_array_equal(c[sae.hook_name_out], c[f"{sae.hook_name}.hook_sae_output"])
    names = list(c)
    assert names == [sae.hook_name_out, f"{sae.hook_name}.hook_sae_output"]


# ---- hooks on the SAE's points: ablation, steering ----

def test_zeroing_a_feature_changes_the_reconstruction_by_its_decoder_row(gpt2):
    sae, r = load("gpt2_standard"), refs("gpt2_standard")
    ids, h = r["input_ids"], sae.hook_name
    post, rec = f"{h}.hook_sae_acts_post", f"{h}.hook_sae_recons"
    _, base = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter=[post, rec])
    acts = base[post].copy()
    f = int(np.argmax(acts[0, -1]))
    assert acts[0, -1, f] > 0

    def ablate(act, hook):
        assert hook.name == post and act.shape == (1, ids.shape[1], sae.d_sae)
        act[:, :, f] = 0.0

    logits, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], names_filter=[post, rec, h],
                                              fwd_hooks=[(post, ablate)])
    assert (c[post][..., f] == 0).all()
    want = base[rec] - acts[..., f:f + 1] * sae.W_dec[f]
    np.testing.assert_allclose(c[rec], want, atol=TOL)
    np.testing.assert_allclose(c[h], c[rec], atol=0)  # replace mode: the hook is the output
    assert not np.allclose(logits, r["logits_replace"], atol=1e-3)


def test_steering_a_feature_with_the_error_term_adds_its_decoder_row(gpt2):
    sae, r = load("gpt2_standard"), refs("gpt2_standard")
    ids, h = r["input_ids"], sae.hook_name
    _, clean = gpt2.run_with_cache(ids, names_filter=h)

    def steer(act, hook):
        act[:, :, 3] += 8.0

    _, c = gpt2.run_with_cache_with_saes(ids, saes=[sae], mode="replace_error", names_filter=h,
                                         fwd_hooks=[(f"{h}.hook_sae_acts_post", steer)])
    np.testing.assert_allclose(c[h], clean[h] + 8.0 * sae.W_dec[3], atol=TOL)


def test_steer_sae_equals_the_cli(gpt2):
    sae = load("gpt2_standard")
    prompt = [227, 187, 164, 39]
    out = cli("steer", "--model", FIX / "gpt2", "--tokens", ids_arg(prompt), "--sae",
              SAE_DIR / "gpt2_standard", "--feature", 3, "--coef", 8, "--max-new", 8)
    lines = dict(re.findall(r"^(plain|steered)\s+([\d,]+)$", out, re.M))
    plain = [int(t) for t in lines["plain"].split(",")]
    steered = [int(t) for t in lines["steered"].split(",")]
    assert plain != steered

    def steer(act, hook):
        act[..., 3] += 8.0

    def gen():
        return gpt2.generate(prompt, max_new_tokens=8, do_sample=False,
                             stop_at_eos=False)[0, len(prompt):].tolist()

    assert gen() == plain
    with gpt2.saes(saes=[sae], mode="replace_error"), \
            gpt2.hooks(fwd_hooks=[(f"{sae.hook_name}.hook_sae_acts_post", steer)]):
        assert gen() == steered
    assert gen() == plain
    assert n_hooks(gpt2) == 0 and not gpt2.acts_to_saes


def test_ablate_sae_features_equals_the_cli(gpt2):
    sae = load("gpt2_standard")
    prompt = [227, 187, 164, 39]
    out = cli("ablate", "--model", FIX / "gpt2", "--tokens", ids_arg(prompt), "--answer", 68,
              "--wrong", 100, "--sae", SAE_DIR / "gpt2_standard", "--feature", "3,7")
    rows = dict((int(f), float(v)) for f, v in re.findall(r"^(\d+)\s+(-?[\d.]+)\s", out, re.M))
    assert set(rows) == {3, 7}
    for f, want in rows.items():
        def zero(act, hook, f=f):
            act[..., f] = 0.0

        lg = gpt2.run_with_saes(prompt, saes=[sae], mode="replace_error",
                                fwd_hooks=[(f"{sae.hook_name}.hook_sae_acts_post", zero)])
        assert abs(float(lg[0, -1, 68] - lg[0, -1, 100]) - want) < 1e-4 + 5e-5, f


# ---- errors: the SAE is detached and the model usable afterwards ----

def test_a_raising_hook_on_an_sae_point_detaches_the_sae(gpt2):
    sae, r = load("gpt2_standard"), refs("gpt2_standard")
    ids = r["input_ids"]
    post = f"{sae.hook_name}.hook_sae_acts_post"

    def boom(act, hook):
        raise KeyError("feature 12")

    for call in (lambda: gpt2.run_with_saes(ids, saes=[sae], fwd_hooks=[(post, boom)]),
                 lambda: gpt2.run_with_cache_with_saes(ids, saes=[sae],
                                                       fwd_hooks=[(post, boom)])):
        with pytest.raises(hf.HookError, match=rf"^{re.escape(post)}: KeyError") as e:
            call()
        assert e.value.hook_name == post and isinstance(e.value.__cause__, KeyError)
        assert n_hooks(gpt2) == 0
        np.testing.assert_allclose(gpt2(ids), r["logits_clean"], atol=TOL)
        np.testing.assert_allclose(gpt2.run_with_saes(ids, saes=[sae]), r["logits_replace"],
                                   atol=TOL)

    # a hook that keeps its view of an SAE point is refused as for any point
    kept = []
    with pytest.raises(hf.HookError, match="kept a reference"):
        gpt2.run_with_saes(ids, saes=[sae], fwd_hooks=[(post, lambda a, h: kept.append(a))])
    kept.clear()
    # StopForward at an SAE point stops the run quietly
    def stop(act, hook):
        raise hf.StopForward

    assert gpt2.run_with_saes(ids, saes=[sae], fwd_hooks=[(post, stop)]) is None
    assert n_hooks(gpt2) == 0


def test_an_sae_that_does_not_fit_the_model_is_refused(gpt2):
    ids = refs("gpt2_standard")["input_ids"]
    clean = gpt2(ids)
    wide = hf.load_sae(SAE_DIR / "gpt2_standard", hook="blocks.0.mlp.hook_post")  # d_mlp 128
    with pytest.raises(hf.HookformerError, match=r"d_in is 64 but hook 'blocks.0.mlp.hook_post' "
                                                 r"has width 128") as e:
        gpt2.run_with_saes(ids, saes=[wide])
    assert e.value.status == "HK_ERR_SHAPE"
    nowhere = hf.load_sae(SAE_DIR / "gpt2_standard", hook="blocks.7.hook_resid_post")
    with pytest.raises(hf.HookformerError, match="blocks.7.hook_resid_post") as e:
        gpt2.run_with_cache_with_saes(ids, saes=[nowhere])
    assert e.value.status == "HK_ERR_NOT_FOUND"
    with pytest.raises(hf.HookformerError, match="hook_pattern"):
        gpt2.run_with_saes(ids, saes=[hf.load_sae(SAE_DIR / "gpt2_standard",
                                                  hook="blocks.0.attn.hook_pattern")])
    # the second SAE fails: the first, attached already, is detached again
    ok = load("gpt2_standard")
    with pytest.raises(hf.HookformerError, match="width 128"):
        gpt2.run_with_saes(ids, saes=[ok, wide])
    assert n_hooks(gpt2) == 0
    np.testing.assert_array_equal(gpt2(ids), clean)
    # an SAE point without its SAE
    with pytest.raises(hf.HookformerError, match="hook_sae_acts_post"):
        gpt2.run_with_hooks(ids, fwd_hooks=[("blocks.1.hook_mlp_out.hook_sae_acts_post",
                                             lambda a, h: None)])
    assert n_hooks(gpt2) == 0


def test_bad_arguments_are_clear_errors(gpt2):
    ids = refs("gpt2_standard")["input_ids"]
    a = load("gpt2_standard")
    with pytest.raises(ValueError, match=r"mode='swap': expected one of 'observe', 'replace', "
                                         r"'replace_error'"):
        gpt2.run_with_saes(ids, saes=[a], mode="swap")
    with pytest.raises(TypeError, match="expected SAE objects"):
        gpt2.run_with_saes(ids, saes=[str(SAE_DIR / "gpt2_standard")])
    with pytest.raises(ValueError, match="both read blocks.0.hook_resid_post"):
        gpt2.run_with_saes(ids, saes=[a, load("gpt2_standard")])
    a.close()
    with pytest.raises(ValueError, match="is closed"):
        gpt2.run_with_saes(ids, saes=[a])
    with pytest.raises(ValueError, match="is closed"):
        gpt2.sae_eval(a, ids)
    assert n_hooks(gpt2) == 0


def test_a_closed_model_refuses_sae_calls():
    m = hf.load(FIX / "gpt2")
    sae = load("gpt2_standard")
    m.add_sae(sae)
    with pytest.raises(ValueError, match="added to a model"):
        sae.close()
    m.close()  # detaches it
    sae.close()
    sae = load("gpt2_standard")
    for call in (lambda: m.run_with_saes([1, 2], saes=[sae]),
                 lambda: m.run_with_cache_with_saes([1, 2], saes=[sae]),
                 lambda: m.add_sae(sae), lambda: m.sae_eval(sae, [1, 2]),
                 lambda: m.sae_top_contexts(sae, [1, 2])):
        with pytest.raises(ValueError, match="is closed"):
            call()
    np.testing.assert_allclose(sae.encode(np.ones((1, 64))), np_encode(sae, np.ones((1, 64))),
                               atol=TOL)


# ---- add_sae / reset_saes / saes() ----

def test_added_saes_stay_for_every_call_until_reset():
    m = hf.load(FIX / "gpt2")
    sae, r = load("gpt2_standard"), refs("gpt2_standard")
    ids, post = r["input_ids"], "blocks.0.hook_resid_post.hook_sae_acts_post"
    m.add_sae(sae)
    assert m.acts_to_saes == {sae.hook_name: sae}
    np.testing.assert_allclose(m(ids), r["logits_replace"], atol=TOL)
    _, c = m.run_with_cache(ids, names_filter="*.hook_sae_acts_post")
    np.testing.assert_allclose(c[post], r["acts_post"], atol=TOL)
    # hooks on its points; reset_hooks removes those and keeps the SAE
    f = int(r["ablate_feature"][0])
    m.add_hook(post, lambda a, h: a.__setitem__((..., f), 0.0))
    ablated = m(ids)
    assert not np.allclose(ablated, r["logits_replace"], atol=1e-3)
    m.reset_hooks()
    np.testing.assert_allclose(m(ids), r["logits_replace"], atol=TOL)
    with m.hooks(fwd_hooks=[(post, lambda a, h: a.__setitem__((..., f), 0.0))]):
        np.testing.assert_allclose(m(ids), ablated, atol=1e-6)
    np.testing.assert_allclose(m(ids), r["logits_replace"], atol=TOL)
    # an SAE added inside a hooks() block stays after it
    b = load("gpt2_jumprelu")
    with m.hooks(fwd_hooks=[(post, lambda a, h: None)]):
        m.add_sae(b, use_error_term=True)
    assert set(m.acts_to_saes) == {sae.hook_name, b.hook_name}
    np.testing.assert_allclose(m(ids), r["logits_replace"], atol=TOL)  # b with its error term
    with pytest.raises(ValueError, match="both read"):
        m.run_with_saes(ids, saes=[load("gpt2_standard")])
    m.reset_saes(sae.hook_name)
    assert list(m.acts_to_saes) == [b.hook_name]
    np.testing.assert_allclose(m(ids), r["logits_clean"], atol=TOL)
    m.reset_saes()
    assert not m.acts_to_saes and n_hooks(m) == 0
    np.testing.assert_allclose(m(ids), r["logits_clean"], atol=TOL)
    sae.close()
    b.close()
    # saes(): for the block only, also when it raises
    c2 = load("gpt2_standard")
    with pytest.raises(RuntimeError):
        with m.saes(saes=[c2]):
            np.testing.assert_allclose(m(ids), r["logits_replace"], atol=TOL)
            raise RuntimeError
    assert n_hooks(m) == 0
    np.testing.assert_allclose(m(ids), r["logits_clean"], atol=TOL)
    m.close()


def test_hook_names_list_the_added_saes_points_beside_their_hook():
    m = hf.load(FIX / "gpt2")
    base, required = m.hook_names(), m.hook_names(optional=False)
    sae, tc = load("gpt2_standard"), load("gpt2_transcoder")
    h = sae.hook_name
    m.add_sae(sae)
    pts = [f"{h}.{p}" for p in ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post",
                                "hook_sae_recons", "hook_sae_output")]
    i = base.index(h)
    assert m.hook_names() == base[:i + 1] + pts + base[i + 1:]
    j = required.index(h)
    assert m.hook_names(optional=False) == required[:j + 1] + pts + required[j + 1:]
    # the names are hook points: a hook on one fires, with [batch, pos, width]
    seen = []
    m.run_with_hooks(refs("gpt2_standard")["input_ids"],
                     fwd_hooks=[(pts[2], lambda a, hook: seen.append(a.shape))])
    assert len(seen) == 1 and seen[0][-1] == sae.d_sae
    # a transcoder with its error term: error and output fire at its output hook
    m.add_sae(tc, use_error_term=True)
    names = m.hook_names()
    t = tc.hook_name
    k = names.index(t) + 1
    while names[k].startswith(f"{h}.hook_sae"):  # the standard SAE's, if it reads the same point
        k += 1
    assert names[k:k + 4] == [f"{t}.{p}" for p in ("hook_sae_input", "hook_sae_acts_pre",
                                                   "hook_sae_acts_post", "hook_sae_recons")]
    out = names.index(tc.hook_name_out)
    assert names[out + 1:out + 3] == [f"{t}.hook_sae_error", f"{t}.hook_sae_output"]
    assert len(names) == len(base) + len(pts) + 6
    m.reset_saes(h)
    assert not any(n.startswith(f"{h}.hook_sae") for n in m.hook_names())
    m.reset_saes()
    assert m.hook_names() == base and m.hook_names(optional=False) == required
    sae.close()
    tc.close()
    m.close()
    with pytest.raises(ValueError, match="closed"):
        m.hook_names()


def test_an_added_sae_splices_the_experiments_too():
    m = hf.load(FIX / "gpt2")
    sae = load("gpt2_standard")
    prompt = [227, 187, 164, 39]
    with m.saes(saes=sae):
        lg = m(prompt)
        got = hf.metric(m, prompt, 68, 100)
    assert abs(got - float(lg[0, -1, 68] - lg[0, -1, 100])) < 1e-5
    assert abs(got - hf.metric(m, prompt, 68, 100)) > 1e-3
    m.close()


# ---- sae_eval ----

@pytest.mark.parametrize("model_name", ["gpt2", "llama"])
def test_sae_eval_equals_saelens(model_name, request):
    m = request.getfixturevalue(model_name)
    ref = read_safetensors(FIX / model_name / "reference.safetensors")
    seqs = [row[:int(n)] for row, n in zip(ref["input_ids"], ref["lengths"])]
    keys = {"tokens": "tokens", "mse": "mse", "explained_variance": "explained_variance",
            "l0": "l0", "l1": "l1", "dead_features": "dead", "ce_loss_without": "ce_without",
            "ce_loss_with_sae": "ce_with", "ce_loss_ablation": "ce_ablation",
            "ce_loss_delta": "ce_delta", "ce_loss_score": "ce_score"}
    for name in ("standard", "jumprelu", "topk", "gated"):
        sae = load(f"{model_name}_{name}")
        want = json.loads((SAE_DIR / f"{model_name}_{name}" / "eval.json").read_text())
        got = m.sae_eval(sae, seqs)
        assert list(got) == ["tokens", "mse", "explained_variance", "l0", "l1",
                             "dead_features", "d_sae", "ce_loss_without", "ce_loss_with_sae",
                             "ce_loss_ablation", "ce_loss_delta", "ce_loss_score"]
        assert got["d_sae"] == 96
        for k, w in keys.items():
            assert abs(got[k] - want[w]) <= 1e-4 * (1 + abs(want[w])), (name, k, got[k], want[w])
        one = m.sae_eval(sae, seqs, batch=1)  # batching changes nothing
        for k in keys:
            assert abs(one[k] - got[k]) <= 1e-5 * (1 + abs(got[k])), (name, k)
    assert n_hooks(m) == 0


def test_sae_eval_equals_the_cli(gpt2):
    ids = [227, 187, 164, 39, 18, 5]
    for name in ("standard", "topk"):
        out = cli("sae", "eval", "--sae", SAE_DIR / f"gpt2_{name}", "--model", FIX / "gpt2",
                  "--tokens", ids_arg(ids))
        printed = dict(re.findall(r"^(\w+)\s+(\S+)", out, re.M))
        got = gpt2.sae_eval(load(f"gpt2_{name}"), np.array(ids))
        for k in ("mse", "explained_variance", "l0", "l1", "ce_loss_without",
                  "ce_loss_with_sae", "ce_loss_ablation", "ce_loss_delta", "ce_loss_score"):
            assert float(printed[k]) == pytest.approx(got[k], rel=1e-5, abs=1e-6), (name, k)
        assert re.search(rf"^dead_features\s+{got['dead_features']} of 96$", out, re.M)
        assert f"tokens={got['tokens']}" in out and got["tokens"] == 6
    with pytest.raises(TypeError, match="sequence 0 is not a 1-d array of integer ids"):
        gpt2.sae_eval(load("gpt2_standard"), [np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match="batch=0"):
        gpt2.sae_eval(load("gpt2_standard"), ids, batch=0)


# ---- top contexts ----

def brute_top(m, sae, seqs, top, window):
    """per feature the sequences ranked by the feature's maximum, from encode of the cached
    hook activation of each sequence alone"""
    acts = [sae.encode(m.run_with_cache(q, names_filter=sae.hook_name)[1][sae.hook_name])[0]
            for q in seqs]
    out = []
    for f in range(sae.d_sae):
        best = sorted(((float(a[:, f].max()), -i, int(a[:, f].argmax())) for i, a in
                       enumerate(acts) if a[:, f].max() > 0), reverse=True)[:top]
        out.append([(v, -ni, p) for v, ni, p in best])
    return acts, out


def test_top_contexts_equal_a_brute_force_ranking(gpt2):
    sae = load("gpt2_topk")
    ref = read_safetensors(FIX / "gpt2" / "reference.safetensors")
    seqs = [row[:int(n)] for row, n in zip(ref["input_ids"], ref["lengths"])]
    seqs += [np.array([227, 187, 164, 39, 18, 5]), np.array([5, 18, 39])]
    t = gpt2.sae_top_contexts(sae, seqs, top=3, window=2, batch=2)
    assert isinstance(t, hf.TopContexts)
    assert (t.d_sae, t.top, t.window, t.tokens) == (96, 3, 2, sum(map(len, seqs)))
    assert t.top_values.shape == (96, 3) and t.win_tokens.shape == (96, 3, 5)
    assert t.win_tokens.dtype == np.int32 and t.top_seq.dtype == np.int64
    acts, want = brute_top(gpt2, sae, seqs, 3, 2)
    for f in range(96):
        n = len(want[f])
        np.testing.assert_allclose(t.top_values[f, :n], [v for v, _, _ in want[f]], atol=1e-5)
        assert t.top_seq[f, :n].tolist() == [i for _, i, _ in want[f]], f
        assert t.top_pos[f, :n].tolist() == [p for _, _, p in want[f]], f
        assert (t.top_seq[f, n:] == -1).all() and (t.top_values[f, n:] == 0).all()
        assert t.active[f] == sum(int((a[:, f] != 0).sum()) for a in acts)
        assert t.max_act[f] == pytest.approx(max(float(a[:, f].max()) for a in acts), abs=1e-5)
        for k, (_, i, p) in enumerate(want[f]):
            for j, q in enumerate(range(p - 2, p + 3)):
                inside = 0 <= q < len(seqs[i])
                assert t.win_tokens[f, k, j] == (seqs[i][q] if inside else -1)
                assert t.win_values[f, k, j] == pytest.approx(acts[i][q, f] if inside else 0,
                                                              abs=1e-5)
    order = t.strongest(8)
    assert len(order) == 8 and (np.diff(t.max_act[order]) <= 0).all()


def test_top_contexts_save_and_html_equal_hookformer_features(gpt2, tmp_path):
    sae = load("gpt2_topk")
    ids = [227, 187, 164, 39, 18, 5]
    cli("features", "--model", FIX / "gpt2", "--sae", SAE_DIR / "gpt2_topk", "--tokens",
        ids_arg(ids), "--top", 5, "--out", tmp_path / "cli.h5", "--html", tmp_path / "cli.html")
    t = gpt2.sae_top_contexts(sae, ids, top=5)
    t.save(tmp_path / "py.h5")
    t.html(tmp_path / "py.html")
    with h5py.File(tmp_path / "cli.h5") as a, h5py.File(tmp_path / "py.h5") as b:
        assert sorted(a) == sorted(b) and len(a) >= 7
        for k in a:
            np.testing.assert_array_equal(a[k][()], b[k][()], err_msg=k)
        np.testing.assert_array_equal(b["top_values"][()], t.top_values)
        np.testing.assert_array_equal(b["window_tokens"][()], t.win_tokens)
    assert (tmp_path / "py.html").read_bytes() == (tmp_path / "cli.html").read_bytes()
    page = (tmp_path / "py.html").read_text()
    assert "<script" not in page
    # an existing file is refused unless force; chosen features; bad features
    with pytest.raises(hf.HookformerError, match="exists"):
        t.save(tmp_path / "py.h5")
    t.save(tmp_path / "py.h5", force=True)
    f = int(t.strongest(1)[0])
    t.html(tmp_path / "one.html", features=[f])
    one = (tmp_path / "one.html").read_text()
    assert one.count("<section") == 1 and f'<section id="feature-{f}">' in one
    with pytest.raises(ValueError, match=r"indices in \[0, 96\)"):
        t.html(tmp_path / "bad.html", features=[96])


def test_top_contexts_arrays_outlive_the_result_and_the_sae(gpt2):
    sae = load("gpt2_standard")
    t = gpt2.sae_top_contexts(sae, [[227, 187, 164]], top=2, window=1)
    vals = t.top_values
    want = vals.copy()
    del t
    sae.close()
    import gc
    gc.collect()
    np.testing.assert_array_equal(vals, want)
    with pytest.raises(ValueError, match="sequence 0 is empty"):
        gpt2.sae_top_contexts(load("gpt2_standard"), [np.zeros(0, np.int64)])


# ---- cache_saes: the sparse feature file of `hookformer cache --sae` ----

def test_cache_saes_writes_the_file_of_hookformer_cache_sae(gpt2, tmp_path):
    ids = [227, 187, 164, 39, 18, 5]
    a, b = load("gpt2_standard"), load("gpt2_topk")
    cli("cache", "--model", FIX / "gpt2", "--tokens", ids_arg(ids), "--sae",
        SAE_DIR / "gpt2_standard", "--sae", SAE_DIR / "gpt2_topk", "--out", tmp_path / "cli.h5")
    nnz = gpt2.cache_saes(tmp_path / "py.h5", [a, b], ids)
    with h5py.File(tmp_path / "cli.h5") as f, h5py.File(tmp_path / "py.h5") as g:
        assert sorted(f) == sorted(g)
        for k in f:
            if isinstance(f[k], h5py.Group):
                for d in f[k]:
                    np.testing.assert_array_equal(f[k][d][()], g[k][d][()], err_msg=f"{k}/{d}")
            else:
                np.testing.assert_array_equal(f[k][()], g[k][()], err_msg=k)
        assert nnz == [len(g[f"{s.hook_name}.hook_sae_acts_post"]["values"]) for s in (a, b)]
        assert nnz[1] == 6 * 8  # topk k 8 on every token
    with pytest.raises(hf.HookformerError, match="exists"):
        gpt2.cache_saes(tmp_path / "py.h5", [a], ids)
    assert n_hooks(gpt2) == 0


def test_cache_saes_leaves_no_file_when_a_hook_raises(tmp_path):
    m = hf.load(FIX / "gpt2")

    def boom(act, hook):
        raise ValueError("no")

    m.add_hook("blocks.0.hook_resid_pre", boom)
    with pytest.raises(hf.HookError, match="blocks.0.hook_resid_pre: ValueError: no"):
        m.cache_saes(tmp_path / "x.h5", load("gpt2_standard"), [1, 2, 3])
    assert not list(tmp_path.iterdir())
    m.reset_hooks()
    assert m.cache_saes(tmp_path / "x.h5", load("gpt2_standard"), [1, 2, 3])[0] > 0
    m.close()


# ---- devices, threads ----

def test_the_test_device_gives_the_cpus_results():
    m = hf.load(FIX / "gpt2", device="test")
    cpu = hf.load(FIX / "gpt2")
    sae, r = load("gpt2_jumprelu"), refs("gpt2_jumprelu")
    post = f"{sae.hook_name}.hook_sae_acts_post"

    def zero(act, hook):
        act[..., 5] = 0.0

    for mm in (m, cpu):
        mm.out = mm.run_with_cache_with_saes(r["input_ids"], saes=[sae], mode="replace_error",
                                             names_filter=post, fwd_hooks=[(post, zero)])
    np.testing.assert_array_equal(m.out[0], cpu.out[0])
    np.testing.assert_array_equal(m.out[1][post], cpu.out[1][post])
    m.close()
    cpu.close()


def test_one_sae_in_several_threads(gpt2):
    sae = load("gpt2_standard")
    r = refs("gpt2_standard")

    def work():
        for _ in range(5):
            np.testing.assert_allclose(gpt2.run_with_saes(r["input_ids"], saes=[sae]),
                                       r["logits_replace"], atol=TOL)

    assert not in_threads(work, 3)
