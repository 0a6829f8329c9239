"""run_with_hooks: zero-copy views, returned arrays, errors, filters, add_hook/hooks()."""
import numpy as np
import pytest
from conftest import FIX, PROMPT, read_safetensors

import hookformer as hf

R0 = "blocks.0.hook_resid_post"
R1 = "blocks.1.hook_resid_pre"


def test_a_write_through_the_view_changes_the_next_activation(gpt2):
    seen = {}

    def write(act, hook):
        assert act.flags.writeable and act.dtype == np.float32
        assert hook.name == R0 and hook.layer() == 0
        act[0, 2, :] = 7.0  # in place, nothing returned

    def read(act, hook):
        seen["next"] = act.copy()

    base = gpt2(PROMPT)
    out = gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, write), (R1, read)])
    assert (seen["next"][0, 2] == 7.0).all()
    assert not np.array_equal(out[0, 2], base[0, 2])
    np.testing.assert_array_equal(out[0, :2], base[0, :2])  # causal: earlier positions kept


def test_the_view_is_the_activation_itself(gpt2):
    """Two hooks at one point see the same memory: the second sees the first one's write
    without any copy back in between, and both views share one address."""
    addrs = []

    def first(act, hook):
        addrs.append(act.__array_interface__["data"][0])
        act += 1.0

    def second(act, hook):
        addrs.append(act.__array_interface__["data"][0])
        seen.append(act.copy())

    seen = []
    _, cache = gpt2.run_with_cache(PROMPT, names_filter=R0)
    gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, first), (R0, second)])
    assert addrs[0] == addrs[1]
    np.testing.assert_allclose(seen[0], cache[R0] + 1.0, atol=1e-6)


def test_a_returned_array_replaces_the_activation(gpt2):
    _, want = gpt2.run_with_cache(PROMPT, names_filter=R1,
                                  fwd_hooks=[(R0, lambda a, h: np.zeros_like(a))])
    assert not want[R1].any()
    # returning the view itself (the usual TransformerLens habit) is fine too
    out = gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: a)])
    np.testing.assert_array_equal(out, gpt2(PROMPT))


def test_a_wrong_returned_shape_is_a_clear_error(gpt2):
    with pytest.raises(hf.HookError, match=rf"{R0}.*shape \(1, 6\).*\(1, 6, 64\)") as e:
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: a[:, :, 0])])
    assert e.value.hook_name == R0
    with pytest.raises(hf.HookError, match="not an array"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: object())])
    np.testing.assert_array_equal(gpt2(PROMPT), gpt2(PROMPT))  # still usable


def test_an_exception_is_reraised_with_the_hook_name(gpt2):
    calls = []

    def boom(act, hook):
        raise KeyError("no such feature")

    def later(act, hook):
        calls.append(hook.name)

    with pytest.raises(hf.HookError, match=r"blocks\.0\.hook_resid_post: KeyError") as e:
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, boom), ("blocks.1.hook_resid_post", later)])
    assert isinstance(e.value.__cause__, KeyError)
    assert calls == [], "the forward stopped at the raising hook"
    assert gpt2(PROMPT).shape == (1, 6, 300)


def test_keyboard_interrupt_propagates_as_itself(gpt2):
    def stop(act, hook):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, stop)])


def test_stop_forward_ends_the_run_quietly(gpt2):
    def stop(act, hook):
        raise hf.StopForward

    assert gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, stop)]) is None


def test_keeping_the_view_is_refused(gpt2):
    kept = []
    with pytest.raises(hf.HookError, match="kept a reference"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: kept.append(a[0]))])
    kept.clear()
    copies = []
    gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: copies.append(a.copy()))])
    assert copies[0].shape == (1, 6, 64)


def test_calling_the_model_from_its_own_hook_is_refused(gpt2):
    with pytest.raises(hf.HookError, match="not reentrant"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, lambda a, h: gpt2(PROMPT))])


def test_filters_and_globs(gpt2):
    names = []
    gpt2.run_with_hooks(PROMPT, fwd_hooks=[(lambda n: n.endswith("hook_resid_post"),
                                            lambda a, h: names.append(h.name))])
    assert names == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    names.clear()
    gpt2.run_with_hooks(PROMPT, fwd_hooks=[("blocks.*.attn.hook_pattern",
                                            lambda a, h: names.append((h.name, a.shape)))])
    assert names == [(f"blocks.{i}.attn.hook_pattern", (1, 4, 6, 6)) for i in range(2)]
    with pytest.raises(hf.HookformerError, match="resid_pots.*did you mean"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[("blocks.0.hook_resid_pots", print)])

    def bad_filter(name):
        raise ValueError("filter broke")

    with pytest.raises(hf.HookError, match="filter broke"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(bad_filter, print)])
    with pytest.raises(TypeError, match="pairs"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[R0])
    with pytest.raises(TypeError, match="not callable"):
        gpt2.run_with_hooks(PROMPT, fwd_hooks=[(R0, 3)])


def test_add_hook_and_the_hooks_context(gpt2):
    base = gpt2(PROMPT)

    def zero(act, hook):
        act[:] = 0

    with gpt2.hooks(fwd_hooks=[(R0, zero)]):
        inside = gpt2(PROMPT)
        _, c = gpt2.run_with_cache(PROMPT, names_filter=R1)
    assert not c[R1].any(), "the cache sees the hook's values"
    assert not np.array_equal(inside, base)
    np.testing.assert_array_equal(gpt2(PROMPT), base)
    gpt2.add_hook(R0, zero)
    try:
        np.testing.assert_array_equal(gpt2(PROMPT), inside)
    finally:
        gpt2.reset_hooks()
    np.testing.assert_array_equal(gpt2(PROMPT), base)


def test_transformerlens_patch_through_run_with_hooks():
    """tests/fixtures/<family>/tl_patch.safetensors: TransformerLens's run_with_hooks patch of
    resid_pre at one position (make_tl_references.py), reproduced from Python."""
    for family, suffix in [("gpt2", ""), ("llama", ""), ("qwen2", ""), ("neox", ""),
                           ("phi3", "_longrope"), ("gemma2", "")]:
        ref = read_safetensors(FIX / family / f"tl_patch{suffix}.safetensors")
        m = hf.load(FIX / family)
        a, b = ref["patch_input_ids_a"], ref["patch_input_ids_b"]
        layer, pos = int(ref["patch_layer"].reshape(-1)[0]), int(ref["patch_pos"].reshape(-1)[0])
        name = f"blocks.{layer}.hook_resid_pre"
        _, cache_a = m.run_with_cache(a, names_filter=name)

        def patch(act, hook):
            act[:, pos, :] = cache_a[name][:, pos, :]
            return act

        got = m.run_with_hooks(b, fwd_hooks=[(name, patch)])
        np.testing.assert_allclose(got, ref["patched_logits"].reshape(got.shape), atol=1e-4,
                                   err_msg=family)
        m.close()
