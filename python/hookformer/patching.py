"""Patching experiments through the C API (hk_patch_sweep, hk_ablate_sweep, hk_logit_lens,
hk_dla, hk_steer_from_prompts): each returns numpy arrays; docs/PATCHING.md explains the
experiments. The metric is the mean logit difference at the last position,
logit[answer] - logit[wrong] (TransformerLens's usual patching metric). The model's add_hook
hooks fire in every forward of an experiment, before the experiment's own."""

import contextlib
import ctypes as C
from dataclasses import dataclass

import numpy as np

from . import _arrays, _lib
from ._lib import check, lib

_ABLATE = {"zero": 0, "mean": 1, "resample": 2}
_STEER = {"last": 0, "mean": 1, "aligned": 2}


@dataclass
class SweepResult:
    """values / change / normalized: [layer], [layer, pos], [layer, head] or
    [layer, pos, head] (dims says which); normalized is None for an ablation."""
    point: str
    dims: tuple
    layer0: int
    values: np.ndarray
    change: np.ndarray
    normalized: np.ndarray
    baseline: float
    reference: float
    patches: int
    forwards: int
    batch: int


def _ids(x, what, ndim):
    return _arrays.carray(x, np.int32, what, ndim)


class _Prompts:
    """An hk_prompt_set over numpy arrays that it keeps alive."""

    def __init__(self, tokens, answer, wrong, what="prompts"):
        self.tokens = _ids(np.atleast_2d(tokens), f"{what} tokens", 2)
        n = self.tokens.shape[0]
        self.answer = _ids(np.broadcast_to(np.asarray(answer), (n,)), "answer", 1)
        self.wrong = _ids(np.broadcast_to(np.asarray(wrong), (n,)), "wrong", 1)
        self.c = _lib.PromptSet(n, self.tokens.shape[1], _lib.ptr(self.tokens, C.c_int32),
                                _lib.ptr(self.answer, C.c_int32),
                                _lib.ptr(self.wrong, C.c_int32))


def _tokens(model, x, what):
    if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and isinstance(x[0], str)):
        toks, lengths = model._text_batch(x, None)
        if (lengths != toks.shape[1]).any():
            raise ValueError(f"{what}: the prompts encode to {sorted(set(lengths.tolist()))} "
                             "tokens; an experiment needs prompts of one length")
        return toks
    return np.atleast_2d(np.asarray(x))


def _sweep(res):
    shape = tuple(res.shape[:res.ndim])
    try:
        vals = np.ctypeslib.as_array(res.values, shape).copy()
        change = np.ctypeslib.as_array(res.change, shape).copy()
        norm = (np.ctypeslib.as_array(res.normalized, shape).copy()
                if res.normalized else None)
        return SweepResult(res.point.decode(), tuple(d.decode() for d in res.dims[:res.ndim]),
                           res.layer0, vals, change, norm, float(res.baseline),
                           float(res.reference), res.patches, res.forwards, res.batch)
    finally:
        lib.hk_sweep_result_free(C.byref(res))


def sweep_names():
    """The named sweeps (hk_sweep_names): resid_pre, ..., head_out_by_pos, ..."""
    return [n.strip() for n in lib.hk_sweep_names().decode().split(",")]


def _spec(sweep, point, per_position, per_head, layer):
    """hk_sweep_spec of a named sweep (hk_sweep_by_name), or of an explicit point."""
    if point is None:
        sp = _lib.SweepSpec()
        check(lib.hk_sweep_by_name(str(sweep).encode(), C.byref(sp)))
    else:
        sp = _lib.SweepSpec(point.encode(), bool(per_position), bool(per_head), -1)
    sp.layer = -1 if layer is None else int(layer)
    return sp


def _hooks(model):
    return model._hooks if lib.hk_hooks_count(model._hooks) else None


def metric(model, tokens, answer, wrong):
    """The mean logit difference of the prompts (hk_prompt_metric)."""
    p = _Prompts(_tokens(model, tokens, "tokens"), answer, wrong)
    out = C.c_float()
    with model._busy("metric"):
        st = lib.hk_prompt_metric(model.handle, _hooks(model), C.byref(p.c), C.byref(out))
        model._dispatch.raise_pending()
        check(st)
    return float(out.value)


def act_patch(model, clean, corrupted, answer, wrong, sweep="resid_pre", layer=None,
              point=None, per_position=True, per_head=False, pos_map=None, batch=0,
              max_bytes=0, full_forward=False):
    """Activation patching (hk_patch_sweep): per layer (and position, and head), the clean
    run's activation written over the corrupted run's, and the metric. sweep names the
    point and split as `hookformer patch --sweep` does (sweep_names()); or give point
    ("hook_resid_pre", "attn.hook_z", ...) with per_position / per_head. Equals
    TransformerLens's patching.get_act_patch_* with the logit-difference metric."""
    bad = _Prompts(_tokens(model, corrupted, "corrupted"), answer, wrong, "corrupted")
    good = _ids(np.atleast_2d(_tokens(model, clean, "clean")), "clean", 2)
    if good.shape[0] != bad.tokens.shape[0]:
        raise ValueError(f"clean: {good.shape[0]} prompts, corrupted {bad.tokens.shape[0]}")
    pmap = None if pos_map is None else _arrays.carray(pos_map, np.int64, "pos_map", 1)
    o = _lib.PatchOpts(_lib.ptr(good, C.c_int32), good.shape[1], _lib.ptr(pmap, C.c_int64),
                       None, int(batch), int(max_bytes), bool(full_forward), None)
    res = _lib.SweepResult()
    with model._busy("act_patch"):
        o.hooks = _hooks(model)
        st = lib.hk_patch_sweep(model.handle, C.byref(bad.c), C.byref(o),
                                C.byref(_spec(sweep, point, per_position, per_head, layer)),
                                C.byref(res))
        model._dispatch.raise_pending()
        check(st)
    return _sweep(res)


def ablate(model, tokens, answer, wrong, sweep="resid_pre", mode="zero", layer=None,
           point=None, per_position=True, per_head=False, ref=None, ref_lengths=None,
           resample_idx=None, seed=0, batch=0, max_bytes=0, full_forward=False):
    """Ablation sweep (hk_ablate_sweep): per patch the activation := 0 (mode "zero"), its
    mean over the reference prompts ("mean"), or its value in a reference prompt
    ("resample"); values are the metric with it, change = values - baseline. sweep / point
    as act_patch."""
    if mode not in _ABLATE:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(_ABLATE)}")
    p = _Prompts(_tokens(model, tokens, "tokens"), answer, wrong)
    r = None if ref is None else _ids(np.atleast_2d(_tokens(model, ref, "ref")), "ref", 2)
    rl = None if ref_lengths is None else _arrays.carray(ref_lengths, np.int64, "ref_lengths", 1)
    ri = None if resample_idx is None else _arrays.carray(resample_idx, np.int64,
                                                          "resample_idx", 1)
    o = _lib.AblateOpts(_ABLATE[mode], _lib.ptr(r, C.c_int32), 0 if r is None else r.shape[0],
                        0 if r is None else r.shape[1], _lib.ptr(rl, C.c_int64),
                        _lib.ptr(ri, C.c_int64), int(seed), int(batch), int(max_bytes),
                        bool(full_forward), None)
    res = _lib.SweepResult()
    with model._busy("ablate"):
        o.hooks = _hooks(model)
        st = lib.hk_ablate_sweep(model.handle, C.byref(p.c), C.byref(o),
                                 C.byref(_spec(sweep, point, per_position, per_head, layer)),
                                 C.byref(res))
        model._dispatch.raise_pending()
        check(st)
    return _sweep(res)


def logit_lens(model, tokens, k=5):
    """Logit lens (hk_logit_lens): (top_ids, top_logits, top_probs), each
    [n_layers + 1, pos, k]: row l is blocks.l.hook_resid_pre (the last row the final
    hook_resid_post) through ln_final and the unembedding."""
    toks = _ids(np.asarray(_tokens(model, tokens, "tokens")).reshape(-1), "tokens", 1)
    res = _lib.LensResult()
    with model._busy("logit_lens"):
        st = lib.hk_logit_lens_hooked(model.handle, _hooks(model), _lib.ptr(toks, C.c_int32),
                                      len(toks), int(k), C.byref(res))
        model._dispatch.raise_pending()
        check(st)
    try:
        shape = (res.n_rows, res.seq, res.k)
        return (np.ctypeslib.as_array(res.top_ids, shape).copy(),
                np.ctypeslib.as_array(res.top_logits, shape).copy(),
                np.ctypeslib.as_array(res.top_probs, shape).copy())
    finally:
        lib.hk_lens_result_free(C.byref(res))


def dla(model, tokens, answer, wrong):
    """Direct logit attribution of the last position's logit difference (hk_dla): (labels,
    values [n_components, n_prompts], total [n_prompts]), components in TransformerLens's
    get_full_resid_decomposition order."""
    p = _Prompts(_tokens(model, tokens, "tokens"), answer, wrong)
    res = _lib.DlaResult()
    with model._busy("dla"):
        st = lib.hk_dla_hooked(model.handle, _hooks(model), C.byref(p.c), C.byref(res))
        model._dispatch.raise_pending()
        check(st)
    try:
        labels = [res.labels[i].decode() for i in range(res.n_components)]
        vals = np.ctypeslib.as_array(res.values, (res.n_components, res.n_prompts)).copy()
        total = np.ctypeslib.as_array(res.total, (res.n_prompts,)).copy()
        return labels, vals, total
    finally:
        lib.hk_dla_result_free(C.byref(res))


def steering_vector(model, point, layer, pos, neg, mode="last"):
    """A steering vector (hk_steer_from_prompts) [n_pos, d_model]: the activation of
    blocks.<layer>.<point> for the pos prompt minus the neg prompt (mode "last": last
    positions; "mean": means over positions; "aligned": per position)."""
    if mode not in _STEER:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(_STEER)}")
    a = _ids(np.asarray(_tokens(model, pos, "pos")).reshape(-1), "pos", 1)
    b = _ids(np.asarray(_tokens(model, neg, "neg")).reshape(-1), "neg", 1)
    v = _lib.SteerVector()
    with model._busy("steering_vector"):
        check(lib.hk_steer_from_prompts(model.handle, point.encode(), int(layer),
                                        _lib.ptr(a, C.c_int32), len(a),
                                        _lib.ptr(b, C.c_int32), len(b), _STEER[mode],
                                        C.byref(v)))
    try:
        return np.ctypeslib.as_array(v.vec, (v.n_pos, v.d_model)).copy()
    finally:
        lib.hk_steer_vector_free(C.byref(v))


@contextlib.contextmanager
def steering(model, vector, layer, point="hook_resid_pre", coef=4.0, start=0):
    """`with steering(m, v, layer):` every run, generate and experiment of m inside adds
    coef * v at blocks.<layer>.<point> (hk_steer_add): v [d_model] or [1, d_model] at every
    position >= start, or [n_pos, d_model] with row i at position start + i (absolute
    positions: generation steps included)."""
    vec = _arrays.carray(np.atleast_2d(vector), np.float32, "vector", 2)
    sv = _lib.SteerVector(point.encode(), int(layer), vec.shape[0], vec.shape[1],
                          _lib.ptr(vec, C.c_float))
    apply = _lib.SteerApply(C.pointer(sv), float(coef), int(start))
    handle = C.c_uint64()
    with model._busy("steering"):
        model.handle  # noqa: B018 - raises when closed
        check(lib.hk_steer_add(model._hooks, C.byref(apply), C.byref(handle)))
    try:
        yield
    finally:
        with model._busy("steering"):
            if model._h:
                check(lib.hk_hooks_remove(model._hooks, handle.value))
