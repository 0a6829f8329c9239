"""load, cfg, hook_names, __call__: equal to what the C library gives through the CLI."""
import json

import h5py
import numpy as np
import pytest
from conftest import FIX, PROMPT, cli, ids_arg, in_threads

import hookformer as hf


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(hf.HookformerError, match=str(tmp_path / "nope")) as e:
        hf.load(tmp_path / "nope")
    assert e.value.status.startswith("HK_ERR_")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(hf.HookformerError, match="config.json"):
        hf.load(tmp_path)


def test_bad_device_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="device='gpu'.*'cpu', 'cuda', 'cuda:N', 'test'"):
        hf.load(FIX / "gpt2", device="gpu")
    # the library's parser (--device's): an index is a number >= 0 after the colon
    for bad, why in [("cuda:", "no index after ':'"), ("cuda:-1", "not a number >= 0"),
                     ("cuda:x", "not a number >= 0"), ("cpu:1", "the CPU is one device"),
                     (1, "not a str")]:
        with pytest.raises(ValueError, match=f"device={bad!r}: .*{why}"):
            hf.load(FIX / "gpt2", device=bad)
    with pytest.raises(ValueError, match="weights_dtype='f8'"):
        hf.load(FIX / "gpt2", weights_dtype="f8")
    with pytest.raises(ValueError, match="weights='q4'"):
        hf.load(FIX / "gpt2", weights="q4")
    # the CPU computes in f32: the C library refuses bf16 weights, naming them
    with pytest.raises(hf.HookformerError, match="(?i)bf16"):
        hf.load(FIX / "gpt2", weights_dtype="bf16")


def test_test_device_matches_cpu_bit_for_bit():
    """device="test" runs the forward on separate "device" memory; hooks still get numpy views
    (host copies the runtime makes), and an in-place edit there flows on as on the CPU."""
    toks = [[5, 1, 9, 3]]
    cpu, dev = hf.load(FIX / "gpt2"), hf.load(FIX / "gpt2", device="test")
    assert dev.device == "test"
    a, ca = cpu.run_with_cache(toks)
    b, cb = dev.run_with_cache(toks)
    assert a.tobytes() == b.tobytes()
    assert set(ca) == set(cb) and all(ca[k].tobytes() == cb[k].tobytes() for k in ca)

    def zero(act, hook):
        act[:, 1] = 0

    pa = cpu.run_with_hooks(toks, fwd_hooks=[("blocks.0.hook_resid_post", zero)])
    pb = dev.run_with_hooks(toks, fwd_hooks=[("blocks.0.hook_resid_post", zero)])
    assert pa.tobytes() == pb.tobytes() and pa.tobytes() != a.tobytes()


def test_test_device_index(monkeypatch):
    """device="test:N" opens test device N of HK_TEST_DEVICES (default 1); an index past them
    is an error naming both numbers, before the checkpoint is read."""
    assert hf.load(FIX / "gpt2", device="test").device_index == 0
    assert hf.load(FIX / "gpt2").device_index == 0
    with pytest.raises(hf.HookformerError, match="test:1: index 1 is past the last test device: "
                                                 "there is 1"):
        hf.load(FIX / "gpt2", device="test:1")
    monkeypatch.setenv("HK_TEST_DEVICES", "2")
    m = hf.load(FIX / "gpt2", device="test:1")
    assert m.device == "test:1" and m.device_index == 1
    assert m([[5, 1, 9, 3]]).tobytes() == hf.load(FIX / "gpt2")([[5, 1, 9, 3]]).tobytes()
    with pytest.raises(hf.HookformerError, match="test:2: index 2 is past the last test device: "
                                                 "HK_TEST_DEVICES=2 makes 2"):
        hf.load(FIX / "nonexistent", device="test:2")  # said before the checkpoint is read


def test_cuda_without_a_gpu_names_what_is_missing():
    try:
        m = hf.load(FIX / "gpt2", device="cuda")
    except hf.HookformerError as e:
        assert "cuda" in str(e).lower()
    else:  # a machine with a GPU: it runs, and agrees with the CPU
        a = hf.load(FIX / "gpt2")([[1, 2, 3]])
        assert np.allclose(m([[1, 2, 3]]), a, atol=1e-4)


def test_cfg_is_the_canonical_config(gpt2):
    info = json.loads(cli("info", "--model", FIX / "gpt2", "--json"))
    assert gpt2.cfg == info["config"]
    assert gpt2.cfg["n_layers"] == 2 and gpt2.cfg["d_vocab"] == 300
    assert gpt2.family == "gpt2"


def test_hook_names_are_the_models_points(gpt2):
    def names(*flags):
        return [line.split()[0] for line in cli("hooks", "--model", FIX / "gpt2", *flags)
                .splitlines() if "hook_" in line.split(" ")[0]]
    assert gpt2.hook_names(optional=False) == names()
    assert sorted(gpt2.hook_names()) == sorted(names("--all"))
    pts = {p["name"]: p for p in gpt2.hook_points()}
    assert pts["blocks.1.attn.hook_pattern"]["dims"] == "batch head_index query_pos key_pos"
    assert pts["blocks.0.attn.hook_result"]["optional"]
    assert "blocks.0.attn.hook_result" not in gpt2.hook_names(optional=False)


def test_logits_equal_the_c_forward(gpt2, tmp_path):
    seqs = [[1, 2, 3, 4, 5], [6, 7, 8]]
    (tmp_path / "ids.txt").write_text("\n".join(ids_arg(s) for s in seqs) + "\n")
    cli("cache", "--model", FIX / "gpt2", "--tokens-file", tmp_path / "ids.txt",
        "--hooks", "unembed.hook_out", "--out", tmp_path / "c.h5", "--batch", "1")
    with h5py.File(tmp_path / "c.h5") as f:
        rows, seq_id = f["unembed.hook_out"][:], f["seq_id"][:]
    padded = np.zeros((2, 5), np.int64)
    padded[0], padded[1, :3] = seqs[0], seqs[1]
    for i, s in enumerate(seqs):
        one = gpt2(np.array(s))
        assert one.shape == (1, len(s), 300) and one.dtype == np.float32
        np.testing.assert_array_equal(one[0], rows[seq_id == i])
    # a list of token lists is not text; a 2-D array runs as one batch
    both = gpt2(padded)
    np.testing.assert_allclose(both[0], rows[seq_id == 0], atol=1e-5)


def test_logits_of_a_batch_of_texts_are_right_padded(bert_body):
    a, b = "hello world", "a longer sentence than the first"
    toks = bert_body.to_tokens([a, b])
    out = bert_body([a, b])
    n_a = len(bert_body.to_tokens(a)[0])
    np.testing.assert_allclose(out[0, :n_a], bert_body(a)[0], atol=1e-5)
    assert not out[0, n_a:].any(), "padded rows are zero"
    assert out.shape[:2] == toks.shape


def test_bad_tokens_are_clear_errors(gpt2):
    with pytest.raises(hf.HookformerError, match="300"):
        gpt2([1, 2, 300])
    with pytest.raises(TypeError, match="integer"):
        gpt2(np.array([1.5, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        gpt2(np.zeros((1, 1, 2), np.int64))
    with pytest.raises(ValueError, match="return_type='loss'"):
        gpt2([1, 2], return_type="loss")


def test_stop_at_layer_returns_the_residual(gpt2):
    resid, cache = gpt2.run_with_cache(PROMPT, names_filter="blocks.1.hook_resid_pre")
    out = gpt2(PROMPT, stop_at_layer=1)
    assert out.shape == (1, 6, 64)
    np.testing.assert_array_equal(out, cache["blocks.1.hook_resid_pre"])
    with pytest.raises(hf.HookformerError, match="stop_at_layer"):
        gpt2(PROMPT, stop_at_layer=7)


def test_weights_by_transformerlens_name(gpt2):
    w = gpt2.weight("blocks.0.attn.W_Q")
    assert w.shape == (4, 64, 16)
    with pytest.raises(hf.HookformerError, match="W_gate"):
        gpt2.weight("blocks.0.mlp.W_gate")


def test_a_closed_model_raises_and_its_outputs_live_on():
    m = hf.load(FIX / "gpt2")
    logits, cache = m.run_with_cache(PROMPT)
    keep = cache["blocks.0.hook_resid_post"][0, 1].copy()
    m.close()
    for call in (lambda: m(PROMPT), lambda: m.run_with_cache(PROMPT), lambda: m.cfg,
                 lambda: m.hook_names(), lambda: m.generate(PROMPT, max_new_tokens=2),
                 lambda: m.run_with_hooks(PROMPT, fwd_hooks=[])):
        with pytest.raises(ValueError, match="closed"):
            call()
    m.close()  # twice is fine
    import gc
    gc.collect()
    np.testing.assert_array_equal(cache["blocks.0.hook_resid_post"][0, 1], keep)
    assert logits.shape == (1, 6, 300)


def test_threads_share_a_model_safely(gpt2):
    want = gpt2.run_with_cache(PROMPT, names_filter="blocks.*")[0]
    results = []

    def work():
        for _ in range(5):
            results.append(gpt2.run_with_cache(PROMPT, names_filter="blocks.*")[0])

    assert not in_threads(work, 4)
    assert len(results) == 20
    for r in results:
        np.testing.assert_array_equal(r, want)
