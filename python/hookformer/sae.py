"""Sparse autoencoders (include/hookformer_sae.h) from Python: hookformer.load_sae gives an SAE
whose weights are zero-copy numpy views and whose encode/decode are hk_sae_encode/_decode.
Splicing into a model (run_with_saes, run_with_cache_with_saes, add_sae), evaluation and top
contexts are Model methods (model.py); TopContexts is what sae_top_contexts returns.
docs/PYTHON.md ("SAEs") and docs/SAE.md (formats, maths, points) describe them."""

import ctypes as C
import threading

import numpy as np

from . import _arrays, _lib
from ._lib import check, lib

_ARCH = {_lib.HK_SAE_STANDARD: "standard", _lib.HK_SAE_JUMPRELU: "jumprelu",
         _lib.HK_SAE_TOPK: "topk", _lib.HK_SAE_GATED: "gated"}
_NORM = {_lib.HK_SAE_NORM_NONE: "none",
         _lib.HK_SAE_NORM_CONSTANT_NORM_RESCALE: "constant_norm_rescale",
         _lib.HK_SAE_NORM_LAYER_NORM: "layer_norm"}
# hk_sae_mode by name (hk_sae_mode_name's names)
MODES = {"observe": _lib.HK_SAE_OBSERVE, "replace": _lib.HK_SAE_REPLACE,
         "replace_error": _lib.HK_SAE_REPLACE_WITH_ERROR}
# the SAE's own points, in the order they fire (SAELens's HookedSAETransformer names)
POINTS = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons",
          "hook_sae_error", "hook_sae_output")
_WEIGHTS = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "b_gate", "b_mag", "r_mag")


def load_sae(path, hook=None):
    """Load an SAE or transcoder (hk_sae_load): a SAELens folder (cfg.json +
    sae_weights.safetensors) or a Gemma Scope params.npz (or a folder holding one). hook: the
    point it reads (hk_sae_load_opts.hook): required for a params.npz, which names none; for a
    SAELens folder it overrides cfg.json's metadata.hook_name."""
    return SAE(path, hook=hook)


class _SaeOwner:
    """Frees an hk_sae once neither its SAE object nor any weight array of it is left."""

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        if self.handle and lib is not None:
            lib.hk_sae_free(self.handle)
            self.handle = None


def mode_value(mode, use_error_term=None):
    """hk_sae_mode of a mode name; use_error_term (SAELens's flag) True/False overrides it
    with "replace_error"/"replace"."""
    if use_error_term is not None:
        mode = "replace_error" if use_error_term else "replace"
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(map(repr, MODES))}")
    return MODES[mode]


def _floats(x, what):
    """x as a C-contiguous float32 array (copied only when it is not one); integer, bool,
    complex and object arrays are refused."""
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{what}: expected an array of floats, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


class SAE:
    """A loaded SAE (hk_sae). sae.cfg describes it (SAELens's cfg fields); W_enc, W_dec,
    b_enc, b_dec, threshold (jumprelu), b_gate, b_mag, r_mag (gated) are writable zero-copy
    float32 views of its weights: an edit changes later encodes and spliced runs.
    encode / decode work on arrays of any leading shape. close() (or the end of a `with`
    block) releases it; weight arrays already taken keep its memory alive until they go."""

    def __init__(self, path, hook=None):
        self.path = str(path)
        self._owner = None
        self._lock = threading.Lock()
        self._attached = 0     # models it is added to (Model.add_sae)
        self._views = {}       # weight name -> the array handed out
        h = C.c_void_p()
        opts = _lib.SaeLoadOpts(None if hook is None else str(hook).encode())
        check(lib.hk_sae_load(self.path.encode(), C.byref(opts), C.byref(h)))
        self._owner = _SaeOwner(h)
        info = _lib.SaeInfo()
        check(lib.hk_sae_get_info(h, C.byref(info)))
        s = lambda p: p.decode() if p else None  # noqa: E731
        arch = _ARCH.get(info.arch, lib.hk_sae_arch_name(info.arch).decode())
        if info.transcoder:
            arch = "transcoder" if arch == "standard" else f"{arch}_transcoder"
        self.hook_name = s(info.hook)
        self.hook_name_out = s(info.hook_out)
        self.d_in, self.d_sae, self.d_out = info.d_in, info.d_sae, info.d_out
        self.transcoder = bool(info.transcoder)
        cfg = {"architecture": arch, "d_in": info.d_in, "d_sae": info.d_sae,
               "d_out": info.d_out, "apply_b_dec_to_input": bool(info.apply_b_dec_to_input),
               "normalize_activations": _NORM.get(info.norm, str(info.norm)),
               "hook_name": self.hook_name,
               "metadata": {"hook_name": self.hook_name}, "format": s(info.format),
               "path": s(info.path)}
        if info.arch == _lib.HK_SAE_TOPK:
            cfg["k"] = info.k
        if info.transcoder:
            cfg["hook_name_out"] = self.hook_name_out
            cfg["metadata"]["hook_name_out"] = self.hook_name_out
        self.cfg = cfg
        self._gated = info.arch == _lib.HK_SAE_GATED

    # ---- lifetime ----
    @property
    def handle(self):
        if self._owner is None:
            raise ValueError(f"hookformer SAE {self.path!r} is closed")
        return self._owner.handle

    def close(self):
        """Release the SAE (later calls raise ValueError). Refused while a model holds it
        (add_sae: reset_saes() first). Its memory goes when the last weight array taken from
        it goes."""
        if self._attached:
            raise ValueError(f"SAE {self.path!r} is added to a model: reset_saes() (or "
                             "leave the `with model.saes(...)` block) before closing it")
        self._owner = None
        self._views = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._owner is None else f"d_in={self.d_in}, d_sae={self.d_sae}"
        return (f"SAE({self.path!r}, {self.cfg['architecture']}, {self.hook_name}, "
                f"{state})")

    # ---- points ----
    def point_names(self, mode="replace"):
        """The SAE's hook points when spliced in `mode` ("<hook>.hook_sae_acts_post", ...;
        hook_sae_error only with "replace_error")."""
        m = mode_value(mode)
        return [f"{self.hook_name}.{p}" for p in POINTS
                if p != "hook_sae_error" or m == _lib.HK_SAE_REPLACE_WITH_ERROR]

    def _fresh(self):
        """Before a use: a gated SAE caches W_enc * exp(r_mag), which hk_sae_weight marks
        stale; when views of W_enc or r_mag are out, edits through them may have happened."""
        h = self.handle
        if self._gated and ("W_enc" in self._views or "r_mag" in self._views):
            t = _lib.Tensor()
            check(lib.hk_sae_weight(h, b"r_mag", C.byref(t)))
        return h

    # ---- weights ----
    def weight(self, name):
        """A weight by name (hk_sae_weight) as a writable zero-copy float32 view:
        W_enc [d_in, d_sae], W_dec [d_sae, d_out], b_enc [d_sae], b_dec [d_out],
        threshold [d_sae] (jumprelu), b_gate, b_mag, r_mag [d_sae] (gated)."""
        with self._lock:
            h = self.handle
            a = self._views.get(name)
            if a is None:
                t = _lib.Tensor()
                st = lib.hk_sae_weight(h, str(name).encode(), C.byref(t))
                if st != _lib.HK_OK and name in _WEIGHTS:
                    raise AttributeError(f"{_lib.last_error()} ({self.path})")
                check(st)
                a = _arrays.tensor_array(t, name, self._owner)
                self._views[name] = a
            return a

    def __getattr__(self, name):
        if name in _WEIGHTS:
            return self.weight(name)
        raise AttributeError(f"'SAE' object has no attribute {name!r}")

    def weights(self):
        """name -> view of every weight this SAE has."""
        out = {}
        for n in _WEIGHTS:
            try:
                out[n] = self.weight(n)
            except AttributeError:
                pass
        return out

    # ---- encode / decode ----
    def _rows(self, x, width, what):
        arr = _floats(x, what)
        if arr.ndim < 1 or arr.shape[-1] != width:
            raise ValueError(f"{what}: expected an array [..., {width}], got shape "
                             f"{arr.shape} (SAE {self.path})")
        return arr, arr.shape[:-1], int(np.prod(arr.shape[:-1], dtype=np.int64))

    def encode(self, x):
        """Feature activations [..., d_sae] of inputs [..., d_in] (hk_sae_encode: SAELens's
        sae.encode, the input normalization and b_dec included). float32 out; any float
        dtype in."""
        arr, lead, n = self._rows(x, self.d_in, "encode")
        out = np.empty(lead + (self.d_sae,), np.float32)
        with self._lock:
            h = self._fresh()
            check(lib.hk_sae_encode(h, _lib.ptr(arr, C.c_float), n, _lib.ptr(out, C.c_float)))
        return out

    def decode(self, acts):
        """Reconstructions [..., d_out] = acts @ W_dec + b_dec of activations [..., d_sae]
        (hk_sae_decode; it cannot undo an input normalization: the spliced SAE does)."""
        arr, lead, n = self._rows(acts, self.d_sae, "decode")
        out = np.empty(lead + (self.d_out,), np.float32)
        with self._lock:
            h = self.handle
            check(lib.hk_sae_decode(h, _lib.ptr(arr, C.c_float), n, _lib.ptr(out, C.c_float)))
        return out


class _TopOwner:
    """Frees an hk_sae_top once no array of it is left."""

    def __init__(self):
        self.top = _lib.SaeTop()
        self.filled = False

    def __del__(self):
        if self.filled and lib is not None:
            lib.hk_sae_top_free(C.byref(self.top))
            self.filled = False


class TopContexts:
    """Each feature's top-activating contexts (hk_sae_top_contexts): per feature the `top`
    sequences where it fires most, the token window around that maximum and the feature's
    activation there. Arrays (zero-copy views of the C result):
      active [d_sae] int64 (tokens where the feature was != 0), max_act [d_sae],
      top_values [d_sae, top] (descending), top_seq, top_pos [d_sae, top] int64 (sequence
      index, position; -1 past the entries found), win_tokens [d_sae, top, 2 window + 1] int32
      (-1 outside the sequence), win_values [d_sae, top, 2 window + 1].
    save(path) writes the HDF5 file of `hookformer features --out`, html(path) its page."""

    def __init__(self, owner, model, sae):
        t = owner.top
        self._owner, self._model, self._sae = owner, model, sae
        self.d_sae, self.top, self.window, self.tokens = t.d_sae, t.top, t.window, t.tokens
        D, K, W = t.d_sae, t.top, 2 * t.window + 1

        def arr(p, shape, typestr):
            addr = C.cast(p, C.c_void_p).value
            strides, acc = [], 1
            for s in reversed(shape):
                strides.append(acc)
                acc *= s
            return _arrays.array_at(addr, shape, list(reversed(strides)), typestr, owner)

        self.active = arr(t.active, (D,), "<i8")
        self.max_act = arr(t.max_act, (D,), "<f4")
        self.top_values = arr(t.top_values, (D, K), "<f4")
        self.top_seq = arr(t.top_seq, (D, K), "<i8")
        self.top_pos = arr(t.top_pos, (D, K), "<i8")
        self.win_tokens = arr(t.win_tokens, (D, K, W), "<i4")
        self.win_values = arr(t.win_values, (D, K, W), "<f4")

    def strongest(self, n=8):
        """The n features with the largest maxima (ties by index), active ones only: the
        features `hookformer features --html` shows by default."""
        alive = np.flatnonzero(self.max_act > 0)
        return alive[np.argsort(-self.max_act[alive], kind="stable")][:n]

    def save(self, path, force=False):
        """HDF5 (docs/FORMAT.md, kind "sae_top_contexts"; hk_sae_top_save); an existing
        file is an error unless force."""
        with self._model._busy("TopContexts.save"):
            check(lib.hk_sae_top_save(C.byref(self._owner.top), self._sae.handle,
                                      self._model.handle, str(path).encode(), bool(force)))

    def html(self, path, features=None, force=False):
        """A static HTML page of `features` (default: strongest(8)), each token shaded by
        the feature's activation (hk_sae_top_html)."""
        feats = self.strongest() if features is None else np.atleast_1d(features)
        feats = _arrays.carray(feats, np.int64, "features", 1)
        if feats.size and (feats.min() < 0 or feats.max() >= self.d_sae):
            raise ValueError(f"features: expected indices in [0, {self.d_sae}), got "
                             f"{feats.tolist()}")
        with self._model._busy("TopContexts.html"):
            check(lib.hk_sae_top_html(C.byref(self._owner.top), self._sae.handle,
                                      self._model.handle, _lib.ptr(feats, C.c_int64),
                                      len(feats), str(path).encode(), bool(force)))
