"""hookformer.Model: a loaded hk_model with TransformerLens's HookedTransformer methods."""

import contextlib
import ctypes as C
import json
import threading

import numpy as np

from . import _arrays, _hooks, _lib
from . import sae as _sae
from ._lib import HookformerError, check, lib

_POOLINGS = {"model": 0, "mean": 1, "cls": 2, "max": 3, "mean_sqrt_len": 4, "last": 5}
_WEIGHTS_DTYPES = {"f32": _lib.HK_DTYPE_F32, "f16": _lib.HK_DTYPE_F16, "bf16": _lib.HK_DTYPE_BF16}
_WEIGHTS = {"blocks": _lib.HK_WEIGHTS_BLOCKS, "f32": _lib.HK_WEIGHTS_F32}


def _device(value):
    """hk_load_opts's device and device_index from "cpu", "cuda", "cuda:N", "test" or "test:N"
    (hk_device_parse, the parser of --device; "test": the test-only backend, CPU kernels on
    separate, checked "device" memory)."""
    d, i = C.c_int(), C.c_int()
    if isinstance(value, str) and lib.hk_device_parse(value.encode(), C.byref(d),
                                                      C.byref(i)) == _lib.HK_OK:
        return d.value, i.value
    why = lib.hk_last_error().decode(errors="replace") if isinstance(value, str) else "not a str"
    why = why.split("': ", 1)[-1]
    raise ValueError(f"device={value!r}: {why}; expected one of 'cpu', 'cuda', 'cuda:N', 'test', "
                     f"'test:N'")


def _choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"{what}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return choices[value]


def load(path, device="cpu", weights_dtype="f32", weights="blocks"):
    """Load a Hugging Face checkpoint folder or a .gguf file (hk_model_load_opts).
    device: "cpu", "cuda" (an NVIDIA GPU through the CUDA backend: GPU 0), "cuda:N" (GPU N,
    as CUDA numbers them under CUDA_VISIBLE_DEVICES) or "test" / "test:N" (the test-only
    backend); weights_dtype: the device's copy of the weight matrices ("f32", or "f16"/"bf16"
    on cuda); weights: a .gguf file's quantized linears kept in their "blocks" for decode or
    all dequantized to "f32". Hooks see host numpy views on every device (the runtime copies)."""
    return Model(path, device=device, weights_dtype=weights_dtype, weights=weights)


class _CacheOwner:
    """Frees an hk_cache once no array of it is left."""

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        if self.handle and lib is not None:
            lib.hk_cache_free(self.handle)
            self.handle = None


class ActivationCache(dict):
    """hook name -> numpy array of TransformerLens's shape, in the order the points fired.
    The arrays view the C cache's memory (no copy); it is freed when the last of them goes.
    `cache["resid_post", 3]` is `cache["blocks.3.hook_resid_post"]` (a point named without
    its "blocks.L." prefix, with or without "hook_"; layer -1 or None for a global point)."""

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2:
            point, layer = key
            full = point if point.split(".")[-1].startswith("hook_") else _tl_alias(point)
            key = full if layer is None or layer < 0 else f"blocks.{layer}.{full}"
        return super().__getitem__(key)


# TransformerLens's utils.get_act_name short names
_TL_ALIASES = {"q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z",
               "pattern": "attn.hook_pattern", "attn_scores": "attn.hook_attn_scores",
               "result": "attn.hook_result", "rot_q": "attn.hook_rot_q",
               "rot_k": "attn.hook_rot_k", "pre": "mlp.hook_pre", "post": "mlp.hook_post",
               "pre_linear": "mlp.hook_pre_linear", "scale": "ln_final.hook_scale",
               "normalized": "ln_final.hook_normalized"}


class _Spliced:
    """An SAE added to the model's hooks (add_sae): its attachment and the handle mark it was
    attached at (a scope that ends at or before the mark removes its registrations)."""

    __slots__ = ("sae", "mode", "att", "mark", "owner")

    def __init__(self, sae, mode):
        self.sae, self.mode, self.att, self.mark = sae, mode, None, 0
        self.owner = sae._owner  # the C SAE stays alive while attached


def _mode_name(mode):
    return next(k for k, v in _sae.MODES.items() if v == mode)


def _spliced_points(spliced):
    """The hook point names of [(SAE, hk_sae_mode)] spliced in, SAE after SAE."""
    return [n for sae, m in spliced for n in sae.point_names(_mode_name(m))]


def _tl_alias(point):
    return _TL_ALIASES.get(point, "hook_" + point)


def _positions(pos_slice):
    """TransformerLens's pos_slice as hk_cache_attach's positions, and whether the int form
    drops the dim."""
    if pos_slice is None:
        return "all", False
    if isinstance(pos_slice, (int, np.integer)) and not isinstance(pos_slice, bool):
        i = int(pos_slice)
        return f"{i}:{'' if i == -1 else i + 1}", True
    if isinstance(pos_slice, tuple):
        pos_slice = slice(*pos_slice)
    if isinstance(pos_slice, slice):
        if pos_slice.step not in (None, 1):
            raise ValueError(f"pos_slice {pos_slice}: only step 1 is supported")
        a = "" if pos_slice.start is None else str(int(pos_slice.start))
        b = "" if pos_slice.stop is None else str(int(pos_slice.stop))
        return f"{a}:{b}", False
    raise TypeError(f"pos_slice: expected None, an int, a slice or a (start, stop) tuple, "
                    f"not {type(pos_slice).__name__}")


class Model:
    """A loaded model. Methods follow TransformerLens's HookedTransformer; arrays are numpy
    (torch.from_numpy wraps any of them without a copy). Not thread-safe in C: calls from
    several threads on one model are serialized by a lock; a call from inside one of the
    model's own hooks is refused."""

    def __init__(self, path, device="cpu", weights_dtype="f32", weights="blocks"):
        opts = lib.hk_load_default_opts()
        opts.device, opts.device_index = _device(device)
        opts.weights_dtype = _choice("weights_dtype", weights_dtype, _WEIGHTS_DTYPES)
        opts.weights = _choice("weights", weights, _WEIGHTS)
        self.path = str(path)
        self.device = device
        self._lock = threading.Lock()
        self._owner = None      # thread running a call on the model
        self._h = None
        h = C.c_void_p()
        check(lib.hk_model_load_opts(self.path.encode(), C.byref(opts), C.byref(h)))
        self._h = h
        # which device of its kind the model runs on (0, 1, ...), as the C API says
        self.device_index = lib.hk_model_device_index(self._h)
        hk = C.c_void_p()
        st = lib.hk_hooks_new(self._h, C.byref(hk))
        if st != _lib.HK_OK:
            lib.hk_model_free(self._h)
            self._h = None
            check(st)
        self._hooks = hk
        self._dispatch = _hooks.Dispatch()
        self._cfg = None
        self._names = None
        self._saes = []         # _Spliced: the SAEs of add_sae, in the order added

    # ---- lifetime and locking ----
    def close(self):
        """Free the model now (later calls raise ValueError). Arrays already returned stay
        valid: they are copies or views of memory that is not the model's. SAEs added with
        add_sae are detached (and stay usable)."""
        with self._busy("close"):
            if self._h:
                self._detach_all()
                lib.hk_hooks_free(self._hooks)
                lib.hk_model_free(self._h)
                self._h = None

    def __del__(self):
        if getattr(self, "_h", None) and lib is not None:
            self._detach_all()
            lib.hk_hooks_free(self._hooks)
            lib.hk_model_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def handle(self):
        if not self._h:
            raise ValueError(f"hookformer model {self.path!r} is closed")
        return self._h

    @contextlib.contextmanager
    def _busy(self, what):
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError(f"{what}: the model is running on this thread already (called "
                               "from inside one of its hooks?); hookformer models are not "
                               "reentrant: use another Model for nested runs")
        with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    # ---- description ----
    @property
    def cfg(self):
        """The canonical config the forward runs on (hk_model_config_json) as a dict."""
        h = self.handle
        if self._cfg is None:
            out = C.c_void_p()
            check(lib.hk_model_config_json(h, C.byref(out)))
            try:
                self._cfg = json.loads(C.string_at(out.value).decode())
            finally:
                lib.hk_free(out)
        return self._cfg

    @property
    def family(self):
        return lib.hk_model_family(self.handle).decode()

    @property
    def n_params(self):
        return lib.hk_model_n_params(self.handle)

    def hook_points(self):
        """Every hook point in execution order: dicts of name, layer, shape (-1 for the
        run's dims), dims, optional."""
        h = self.handle
        out = []
        for i in range(lib.hk_model_hook_count(h)):
            p = lib.hk_model_hook_at(h, i).contents
            out.append({"name": p.name.decode(), "layer": p.layer,
                        "shape": tuple(p.shape[:p.ndim]), "dims": p.dims.decode(),
                        "optional": bool(p.optional)})
        return out

    def hook_names(self, optional=True):
        """The hook point names in execution order (optional points too unless
        optional=False: they fire only when hooked, and cost extra compute then), with the
        points of the SAEs added with add_sae ("<hook>.hook_sae_acts_post", ...) right after
        the point each reads, as HookedSAETransformer's hook_dict has them while attached;
        they are not optional (they change nothing until hooked)."""
        names = self._model_names(optional)
        if not self._saes:
            return names
        spliced = [(r.sae, r.mode) for r in self._saes]
        rank = self._fire_rank(spliced)
        names += _spliced_points(spliced)
        return sorted(names, key=lambda n: rank.get(n, (len(rank), 0)))  # stable

    def _model_names(self, optional=True):
        """hook_names without the SAE points: the model's own, cached."""
        self.handle  # noqa: B018 - raises when closed
        if self._names is None:
            pts = self.hook_points()
            self._names = ([p["name"] for p in pts],
                           [p["name"] for p in pts if not p["optional"]])
        return list(self._names[0] if optional else self._names[1])

    def _pos_axes(self):
        """name -> the axis of its (query) positions, for the points that have one."""
        out = {}
        for p in self.hook_points():
            dims = p["dims"].split()
            for d in ("pos", "query_pos"):
                if d in dims:
                    out[p["name"]] = dims.index(d)
        return out

    def weight(self, name):
        """A weight by TransformerLens's name and shape ("blocks.0.attn.W_Q"), copied."""
        t = _lib.Tensor()
        with self._busy("weight"):
            check(lib.hk_model_weight(self.handle, name.encode(), C.byref(t)))
            return _arrays.tensor_array(t, name).copy()

    # ---- text ----
    def _tokenizer(self):
        tok = lib.hk_model_tokenizer(self.handle)
        if not tok:
            note = lib.hk_model_tokenizer_note(self.handle).decode()
            raise HookformerError(f"{self.path}: no tokenizer ({note})", "HK_ERR_NOT_FOUND")
        return tok

    def _encode(self, text, prepend_bos):
        bos = {None: _lib.HK_BOS_DEFAULT, True: _lib.HK_BOS_YES, False: _lib.HK_BOS_NO}
        if prepend_bos not in bos:
            raise ValueError(f"prepend_bos: expected None, True or False, not {prepend_bos!r}")
        raw = text.encode("utf-8", "surrogatepass")
        ids, n = _lib.i32p(), C.c_size_t()
        check(lib.hk_model_encode(self.handle, raw, len(raw), bos[prepend_bos], C.byref(ids),
                                  C.byref(n)))
        try:
            return np.ctypeslib.as_array(ids, (n.value,)).astype(np.int64) if n.value else \
                np.zeros(0, np.int64)
        finally:
            lib.hk_free(ids)

    def _pad_id(self):
        tok = self._tokenizer()
        for which in (_lib.HK_TOK_PAD, _lib.HK_TOK_EOS):
            i = lib.hk_tokenizer_special_id(tok, which)
            if i >= 0:
                return i
        return 0

    def to_tokens(self, text, prepend_bos=None):
        """[batch, pos] int64 ids of a string or a list of strings (right-padded with the
        tokenizer's pad token, else EOS, else 0), as TransformerLens's to_tokens."""
        toks, _ = self._text_batch(text, prepend_bos)
        return toks

    def _text_batch(self, text, prepend_bos):
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError("to_tokens: expected a string or a non-empty list of strings")
        enc = [self._encode(t, prepend_bos) for t in texts]
        lengths = np.array([len(e) for e in enc], np.int64)
        if (lengths == 0).any():
            raise ValueError(f"to_tokens: text {texts[int(np.argmin(lengths))]!r} encodes to "
                             "no tokens")
        out = np.full((len(enc), int(lengths.max())), self._pad_id(), np.int64)
        for i, e in enumerate(enc):
            out[i, :len(e)] = e
        return out, lengths

    def to_string(self, tokens):
        """Decoded text of a 1-D id sequence (str) or of each row of a 2-D one (list)."""
        arr = np.asarray(tokens)
        if arr.ndim == 2:
            return [self.to_string(row) for row in arr]
        if arr.ndim > 2:
            raise ValueError(f"to_string: expected 1 or 2 dims, got shape {arr.shape}")
        ids = _arrays.carray(arr.reshape(-1), np.int32, "to_string")
        return self._decode(ids)

    def _decode(self, ids):
        out, n = C.c_void_p(), C.c_size_t()
        check(lib.hk_tokenizer_decode(self._tokenizer(), _lib.ptr(ids, C.c_int32), len(ids), 0,
                                      C.byref(out), C.byref(n)))
        try:
            return C.string_at(out.value, n.value).decode("utf-8", "replace")
        finally:
            lib.hk_free(out)

    def to_str_tokens(self, x, prepend_bos=None):
        """The text of every token of x (a string, or ids [pos] / [1, pos])."""
        ids = self.to_tokens(x, prepend_bos)[0] if isinstance(x, str) else np.asarray(x)
        if ids.ndim == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.ndim != 1:
            raise ValueError(f"to_str_tokens: expected a string or one sequence of ids, got "
                             f"shape {ids.shape}")
        ids = _arrays.carray(ids, np.int32, "to_str_tokens")
        return [self._decode(ids[i:i + 1]) for i in range(len(ids))]

    # ---- runs ----
    def _input(self, x, prepend_bos):
        """tokens [batch, seq] int32 and lengths [batch] int64 (None: all valid)."""
        if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and
                                  all(isinstance(t, str) for t in x)):
            toks, lengths = self._text_batch(x, prepend_bos)
            if (lengths == toks.shape[1]).all():
                lengths = None
            return _arrays.carray(toks, np.int32, "tokens"), lengths
        toks = np.asarray(x)
        if toks.ndim == 1:
            toks = toks[None, :]
        if toks.ndim != 2 or toks.shape[0] < 1 or toks.shape[1] < 1:
            raise ValueError(f"tokens: expected ids [pos] or [batch, pos], got shape "
                             f"{toks.shape}")
        if not np.issubdtype(toks.dtype, np.integer):
            raise TypeError(f"tokens: expected integer ids, got {toks.dtype}")
        return _arrays.carray(toks, np.int32, "tokens"), None

    def _run(self, tokens, lengths, stop_at_layer, want_out):
        """One hk_model_run_opts on the model's hooks; the output array or None."""
        B, S = tokens.shape
        opts = _lib.RunOpts(_lib.HK_RUN_ALL_LAYERS if stop_at_layer is None
                            else int(stop_at_layer), None)
        out = None
        if want_out:
            cols = lib.hk_model_output_dim(self._h) if stop_at_layer is None else \
                lib.hk_model_d_model(self._h)
            out = np.empty((B, S, cols), np.float32)
        hooks = self._hooks if lib.hk_hooks_count(self._hooks) else None
        lens = None if lengths is None else _arrays.carray(lengths, np.int64, "lengths")
        st = lib.hk_model_run_opts(self._h, hooks, _lib.ptr(tokens, C.c_int32),
                                   _lib.ptr(lens, C.c_int64), B, S, C.byref(opts),
                                   _lib.ptr(out, C.c_float))
        self._dispatch.raise_pending()
        if st == _lib.HK_STOPPED:
            return None
        check(st)
        return out

    @staticmethod
    def _check_return_type(return_type):
        if return_type not in ("logits", None):
            raise ValueError(f"return_type={return_type!r}: expected 'logits' or None (no loss "
                             "here: compute it from the logits)")

    def __call__(self, x, return_type="logits", prepend_bos=None, stop_at_layer=None):
        """Logits [batch, pos, d_vocab] (or, with stop_at_layer, the residual stream entering
        that block [batch, pos, d_model]); padded rows are zero."""
        self._check_return_type(return_type)
        tokens, lengths = self._input(x, prepend_bos)
        with self._busy("forward"):
            self.handle  # noqa: B018 - raises when closed
            return self._run(tokens, lengths, stop_at_layer, return_type is not None)

    forward = __call__

    @contextlib.contextmanager
    def _scope(self):
        """Registrations made inside are removed at the end (hk_hooks_scope_begin/_end)."""
        mark = lib.hk_hooks_scope_begin(self._hooks)
        dmark = self._dispatch.mark()
        try:
            yield
        finally:
            self._end_scope(mark)
            self._dispatch.truncate(dmark)
            self._dispatch.take_error()

    def _end_scope(self, mark):
        """hk_hooks_scope_end(mark), keeping the SAEs of add_sae: those attached since the
        mark are detached first and attached again after (they stay until reset_saes)."""
        hit = [r for r in self._saes if r.mark >= mark]
        for r in reversed(hit):
            lib.hk_sae_detach(r.att)
            r.att = None
        lib.hk_hooks_scope_end(self._hooks, mark)
        for r in hit:
            try:
                self._attach_spliced(r)
            except HookformerError:  # it attached before: only out of memory gets here
                self._saes.remove(r)
                r.sae._attached -= 1

    def _add_hooks(self, fwd_hooks):
        for item in fwd_hooks:
            try:
                target, fn = item
            except (TypeError, ValueError):
                raise TypeError(f"fwd_hooks: expected (name_or_filter, fn) pairs, got "
                                f"{item!r}") from None
            _hooks.register(self._hooks, self._dispatch, target, fn)

    def run_with_hooks(self, x, fwd_hooks=(), bwd_hooks=(), return_type="logits",
                       prepend_bos=None, stop_at_layer=None, reset_hooks_end=True):
        """The forward with fwd_hooks = [(name, glob or filter, fn(act, hook))] added for this
        run (after the model's own add_hook ones). act is a zero-copy writable view: edit it
        in place or return an array of its shape. A raising hook stops the forward and is
        re-raised as HookError naming the hook; raising StopForward stops it quietly (the
        output is then None)."""
        if bwd_hooks:
            raise NotImplementedError("bwd_hooks: hookformer has no backward pass")
        if not reset_hooks_end:
            raise NotImplementedError("reset_hooks_end=False: use add_hook for hooks that stay")
        self._check_return_type(return_type)
        tokens, lengths = self._input(x, prepend_bos)
        with self._busy("run_with_hooks"):
            self.handle  # noqa: B018
            with self._scope():
                self._add_hooks(fwd_hooks)
                return self._run(tokens, lengths, stop_at_layer, return_type is not None)

    def add_hook(self, name, fn):
        """Register fn at a name, glob or filter for every later run, run_with_cache,
        generate and experiment of this model, until reset_hooks()."""
        with self._busy("add_hook"):
            self.handle  # noqa: B018
            _hooks.register(self._hooks, self._dispatch, name, fn)

    def reset_hooks(self):
        """Remove every hook added with add_hook."""
        with self._busy("reset_hooks"):
            self.handle  # noqa: B018
            self._end_scope(0)
            self._dispatch.truncate((0, 0))

    @contextlib.contextmanager
    def hooks(self, fwd_hooks=()):
        """`with model.hooks(fwd_hooks=[...]):` the hooks fire in every run inside."""
        with self._busy("hooks"):
            self.handle  # noqa: B018
            mark = lib.hk_hooks_scope_begin(self._hooks)
            dmark = self._dispatch.mark()
            try:
                self._add_hooks(fwd_hooks)
            except BaseException:
                self._end_scope(mark)
                self._dispatch.truncate(dmark)
                raise
        try:
            yield self
        finally:
            with self._busy("hooks"):
                if self._h:
                    self._end_scope(mark)
                    self._dispatch.truncate(dmark)

    def _filter_names(self, names_filter, extra=()):
        """Exact names as given; a glob (hk_glob_match) or a function picks among the points
        that are not optional, or among all of them when it picks none of those (so
        "blocks.*.attn.hook_result" works): the optional points change how a layer is
        computed (split inputs give ln1.* a head dim), as TransformerLens's flags do.
        extra: the points of the SAEs spliced in for the run, candidates beside those."""
        extra = list(extra)
        if names_filter is None:
            return self._model_names(optional=False) + extra
        if isinstance(names_filter, str):
            if not any(ch in names_filter for ch in "*?"):
                return [names_filter]
            pat = names_filter.encode()
            pick = lambda n: lib.hk_glob_match(pat, n.encode())  # noqa: E731
        elif callable(names_filter):
            pick = names_filter
        else:
            try:
                names = list(names_filter)
            except TypeError:
                raise TypeError("names_filter: expected None, a name or glob, a list of "
                                "names, or a function of the name") from None
            if not all(isinstance(n, str) for n in names):
                raise TypeError("names_filter: a list of hook names (strings)")
            return names
        names = [n for n in self._model_names(optional=False) + extra if pick(n)]
        if not names:
            names = [n for n in self._model_names() + extra if pick(n)]
        if not names and isinstance(names_filter, str):
            return [names_filter]  # the C library says which names come close
        return names

    def run_with_cache(self, x, names_filter=None, stop_at_layer=None, pos_slice=None,
                       return_type="logits", remove_batch_dim=False, prepend_bos=None,
                       fwd_hooks=()):
        """(logits, cache): cache maps every hook name selected by names_filter (None: every
        point but the optional ones; a name or glob; a list; a function of the name) to a
        numpy array of TransformerLens's shape. pos_slice (an int, a slice or (start,
        stop)) keeps those positions (query positions of scores/patterns); an int drops the
        dim, as TransformerLens. stop_at_layer: blocks [0, L) only, and the first value is
        the residual entering block L. The arrays are views of the C cache (no copy). The
        points of SAEs added with add_sae are candidates too."""
        return self._run_with_cache(x, names_filter, stop_at_layer, pos_slice, return_type,
                                    remove_batch_dim, prepend_bos, fwd_hooks, (), "replace",
                                    None, "run_with_cache")

    def _run_with_cache(self, x, names_filter, stop_at_layer, pos_slice, return_type,
                        remove_batch_dim, prepend_bos, fwd_hooks, saes, mode, use_error_term,
                        what):
        self._check_return_type(return_type)
        positions, drop = _positions(pos_slice)
        tokens, lengths = self._input(x, prepend_bos)
        with self._busy(what):
            self.handle  # noqa: B018
            pairs = self._sae_pairs(saes, mode, use_error_term)
            spliced = [(r.sae, r.mode) for r in self._saes] + pairs
            extra = _spliced_points(spliced)
            names = self._filter_names(names_filter, extra)
            cache = C.c_void_p()
            check(lib.hk_cache_new(self._h, C.byref(cache)))
            owner = _CacheOwner(cache)
            with self._scope(), self._spliced(pairs):
                self._add_hooks(fwd_hooks)
                if names:
                    arr = (C.c_char_p * len(names))(*[n.encode() for n in names])
                    check(lib.hk_cache_attach(cache, self._hooks, arr, len(names),
                                              positions.encode()))
                out = self._run(tokens, lengths, stop_at_layer, return_type is not None)
            dims = self._pos_axes() if drop else {}
            got = []
            for i in range(lib.hk_cache_count(cache)):
                name = lib.hk_cache_name_at(cache, i)
                t = lib.hk_cache_get(cache, name)
                if not t:
                    continue  # not delivered (past stop_at_layer, a detached SAE's point)
                name = name.decode()
                a = _arrays.tensor_array(t.contents, name, owner)
                if drop:
                    a = a[(slice(None),) * dims.get(name, 1) + (0,)]  # a view
                if remove_batch_dim:
                    a = a[0]
                got.append((name, a))
            rank = self._fire_rank(spliced) if spliced else {}
            got.sort(key=lambda item: rank.get(item[0], (len(rank), 0)))  # stable
        return out, ActivationCache(got)

    def _fire_rank(self, spliced):
        """name -> a key of the order the points fire in, the SAEs' points beside their
        hook's (the C cache lists them after the model's)."""
        order = {n: (i, 0) for i, n in enumerate(self._model_names())}
        for sae, m in spliced:
            for j, p in enumerate(_sae.POINTS):
                at = sae.hook_name
                if sae.transcoder and m != _lib.HK_SAE_OBSERVE and \
                        p in ("hook_sae_error", "hook_sae_output"):
                    at = sae.hook_name_out  # fired when the output hook is reached
                if at in order:
                    order[f"{sae.hook_name}.{p}"] = (order[at][0], j + 1)
        return order

    # ---- SAEs (include/hookformer_sae.h) ----
    def _sae_pairs(self, saes, mode, use_error_term=None):
        """[(SAE, hk_sae_mode)] of an SAE or a list of them: open SAEs, one per hook point
        (counting the ones added with add_sae)."""
        if isinstance(saes, _sae.SAE):
            saes = [saes]
        m = _sae.mode_value(mode, use_error_term)
        taken = {r.sae.hook_name: r.sae for r in self._saes}
        out = []
        for s in saes:
            if not isinstance(s, _sae.SAE):
                raise TypeError(f"saes: expected SAE objects (hookformer.load_sae), got "
                                f"{type(s).__name__}")
            s.handle  # noqa: B018 - raises when closed
            if s.hook_name in taken:
                raise ValueError(f"saes: {s.path} and {taken[s.hook_name].path} both read "
                                 f"{s.hook_name}: one SAE per hook point")
            taken[s.hook_name] = s
            out.append((s, m))
        return out

    def _attach(self, sae, mode):
        a = C.c_void_p()
        check(lib.hk_sae_attach(self._hooks, sae._fresh(), mode, C.byref(a)))
        return a

    def _attach_spliced(self, r):
        r.mark = lib.hk_hooks_scope_begin(self._hooks)
        r.att = self._attach(r.sae, r.mode)

    @contextlib.contextmanager
    def _spliced(self, pairs):
        """The SAEs attached on the model's hooks for one call, detached at its end (before
        the call's scope ends), whatever happens in between."""
        atts, held = [], []
        try:
            for s, m in pairs:
                held.append(s._owner)  # the C SAE lives through the call
                s._attached += 1
                atts.append(self._attach(s, m))
            yield
        finally:
            for a in reversed(atts):
                lib.hk_sae_detach(a)
            for s, _ in pairs[:len(held)]:
                s._attached -= 1

    def _detach_all(self):
        for r in reversed(self._saes):
            if r.att:
                lib.hk_sae_detach(r.att)
            r.sae._attached -= 1
        self._saes = []

    def run_with_saes(self, x, saes=(), mode="replace", use_error_term=None, fwd_hooks=(),
                      return_type="logits", prepend_bos=None, stop_at_layer=None):
        """The forward with `saes` spliced in at their hook points for this run
        (hk_sae_attach; SAELens's HookedSAETransformer.run_with_saes): mode "replace" (the
        activation becomes the SAE's output), "replace_error" (output + error term: the
        model's own logits until a hook edits a feature) or "observe"; use_error_term=True /
        False is "replace_error" / "replace". fwd_hooks are registered after the SAEs, so
        they may target the SAE's points ("<hook>.hook_sae_acts_post": edit features in
        place). The SAEs are detached at the end, also when a hook raises."""
        self._check_return_type(return_type)
        tokens, lengths = self._input(x, prepend_bos)
        with self._busy("run_with_saes"):
            self.handle  # noqa: B018
            pairs = self._sae_pairs(saes, mode, use_error_term)
            with self._scope(), self._spliced(pairs):
                self._add_hooks(fwd_hooks)
                return self._run(tokens, lengths, stop_at_layer, return_type is not None)

    def run_with_cache_with_saes(self, x, saes=(), mode="replace", use_error_term=None,
                                 names_filter=None, stop_at_layer=None, pos_slice=None,
                                 return_type="logits", remove_batch_dim=False,
                                 prepend_bos=None, fwd_hooks=()):
        """(logits, cache) with `saes` spliced in (as run_with_saes): the cache's candidates
        are the model's points and the SAEs' own (names_filter None: all of them, as
        HookedSAETransformer caches them), "<hook>.hook_sae_input", "hook_sae_acts_pre",
        "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error" (replace_error only),
        "hook_sae_output", each [batch, pos, width], placed beside their hook."""
        return self._run_with_cache(x, names_filter, stop_at_layer, pos_slice, return_type,
                                    remove_batch_dim, prepend_bos, fwd_hooks, saes, mode,
                                    use_error_term, "run_with_cache_with_saes")

    def add_sae(self, sae, mode="replace", use_error_term=None):
        """Splice `sae` in for every later run, run_with_cache, generate and experiment of
        this model (SAELens's add_sae), until reset_saes(); reset_hooks keeps it."""
        with self._busy("add_sae"):
            self.handle  # noqa: B018
            ((s, m),) = self._sae_pairs([sae], mode, use_error_term)
            r = _Spliced(s, m)
            self._attach_spliced(r)
            s._attached += 1
            self._saes.append(r)

    def reset_saes(self, act_names=None):
        """Detach the SAEs of add_sae: all of them, or those reading the hook name(s)
        act_names."""
        names = None if act_names is None else \
            {act_names} if isinstance(act_names, str) else set(act_names)
        self._remove_saes(lambda r: names is None or r.sae.hook_name in names)

    def _remove_saes(self, which):
        with self._busy("reset_saes"):
            keep = []
            for r in reversed(self._saes):
                if which(r):
                    if r.att:
                        lib.hk_sae_detach(r.att)
                    r.sae._attached -= 1
                else:
                    keep.append(r)
            self._saes = keep[::-1]

    @property
    def acts_to_saes(self):
        """hook name -> the SAE added there with add_sae (SAELens's attribute)."""
        return {r.sae.hook_name: r.sae for r in self._saes}

    @contextlib.contextmanager
    def saes(self, saes=(), mode="replace", use_error_term=None):
        """`with model.saes(saes=[sae]):` the SAEs are spliced in for every call inside
        (generate included), and detached at the end."""
        if isinstance(saes, _sae.SAE):
            saes = [saes]
        added = []
        try:
            for s in saes:
                self.add_sae(s, mode, use_error_term)
                added.append(s)
            yield self
        finally:
            if added:
                ids = {id(s) for s in added}
                self._remove_saes(lambda r: id(r.sae) in ids)

    def generate(self, input="", max_new_tokens=10, stop_at_eos=True, eos_token_id=None,
                 do_sample=True, top_k=None, top_p=None, temperature=1.0, freq_penalty=0.0,
                 prepend_bos=None, return_type="input", seed=0, chunk=0,
                 use_past_kv_cache=True, verbose=False):
        """Greedy (do_sample=False) or sampled continuation through the KV cache
        (hk_generate). input: a string or ids of one sequence. return_type "input" (the
        input's kind), "str" or "tokens" ([1, pos + new] int64); the prompt is included, as
        TransformerLens returns it. The model's add_hook hooks fire at every feed (the KV cache
        is always used; verbose is accepted for TransformerLens's signature and prints nothing)."""
        if not use_past_kv_cache:
            raise NotImplementedError("use_past_kv_cache=False: hk_generate always keeps one")
        if freq_penalty:
            raise NotImplementedError("freq_penalty: not in hk_generate")
        if return_type not in ("input", "str", "tokens"):
            raise ValueError(f"return_type={return_type!r}: expected 'input', 'str' or "
                             "'tokens'")
        tokens, lengths = self._input(input, prepend_bos)
        if tokens.shape[0] != 1:
            raise ValueError(f"generate: one sequence at a time (got {tokens.shape[0]})")
        prompt = _arrays.carray(tokens[0], np.int32, "input")
        o = lib.hk_sampler_default()
        if do_sample:
            o.temperature = float(temperature)
            o.top_k = int(top_k or 0)
            o.top_p = 1.0 if top_p is None else float(top_p)
        o.seed = int(seed)
        with self._busy("generate"):
            self.handle  # noqa: B018
            stops = []
            if stop_at_eos:
                if eos_token_id is None:
                    tok = lib.hk_model_tokenizer(self._h)
                    e = lib.hk_tokenizer_special_id(tok, _lib.HK_TOK_EOS) if tok else -1
                    stops = [e] if e >= 0 else []
                else:
                    stops = list(np.atleast_1d(eos_token_id))
            stop_arr = np.array(stops, np.int32)
            out = np.zeros(max(int(max_new_tokens), 1), np.int32)
            n_out = C.c_int64()
            hooks = self._hooks if lib.hk_hooks_count(self._hooks) else None
            st = lib.hk_generate(self._h, hooks, _lib.ptr(prompt, C.c_int32), len(prompt),
                                 int(max_new_tokens), int(chunk), C.byref(o),
                                 _lib.ptr(stop_arr, C.c_int32), len(stop_arr),
                                 _lib.ptr(out, C.c_int32), C.byref(n_out))
            self._dispatch.raise_pending()
            if st != _lib.HK_STOPPED:
                check(st)
        full = np.concatenate([prompt, out[:n_out.value]]).astype(np.int64)[None, :]
        as_str = return_type == "str" or (return_type == "input" and isinstance(input, str))
        return self.to_string(full[0]) if as_str else full

    def embed(self, x, pooling="model", normalize=None, prepend_bos=None):
        """Sentence embeddings [batch, d_model] (hk_model_embed: the final hidden states
        pooled over each sequence's tokens, L2-normalized if normalize, None: as the model
        folder's sentence-transformers config says). Not TransformerLens's `embed` module
        (the W_E lookup: weight("embed.W_E")[tokens])."""
        if pooling not in _POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(_POOLINGS)}")
        norm = {None: -1, True: 1, False: 0}[normalize]
        tokens, lengths = self._input(x, prepend_bos)
        B, S = tokens.shape
        with self._busy("embed"):
            self.handle  # noqa: B018
            out = np.empty((B, lib.hk_model_d_model(self._h)), np.float32)
            hooks = self._hooks if lib.hk_hooks_count(self._hooks) else None
            lens = None if lengths is None else _arrays.carray(lengths, np.int64, "lengths")
            st = lib.hk_model_embed(self._h, hooks, _lib.ptr(tokens, C.c_int32), None,
                                    _lib.ptr(lens, C.c_int64), B, S, _POOLINGS[pooling], norm,
                                    _lib.ptr(out, C.c_float))
            self._dispatch.raise_pending()
            check(st)
        return out



    # ---- SAE experiments: evaluation, top contexts, sparse feature files ----
    def _sequences(self, x, prepend_bos, what):
        """int32 id arrays, one per sequence, of a text, a list of texts, ids [pos] or
        [batch, pos] (every row whole), or a list of id sequences of any lengths."""
        if isinstance(x, str) or (isinstance(x, (list, tuple)) and x and
                                  all(isinstance(t, str) for t in x)):
            texts = [x] if isinstance(x, str) else list(x)
            seqs = [self._encode(t, prepend_bos) for t in texts]
        elif isinstance(x, np.ndarray) and x.ndim in (1, 2):
            seqs = [x] if x.ndim == 1 else list(x)
        elif isinstance(x, (list, tuple)) and x:
            if all(np.ndim(r) == 0 for r in x):
                seqs = [np.asarray(x)]
            else:
                seqs = [np.asarray(r) for r in x]
        else:
            raise TypeError(f"{what}: expected a text, a list of texts, ids [pos] / "
                            "[batch, pos] or a list of id sequences")
        out = []
        for i, q in enumerate(seqs):
            if q.ndim != 1 or not np.issubdtype(q.dtype, np.integer):
                raise TypeError(f"{what}: sequence {i} is not a 1-d array of integer ids "
                                f"(shape {q.shape}, dtype {q.dtype})")
            if len(q) == 0:
                raise ValueError(f"{what}: sequence {i} is empty")
            out.append(_arrays.carray(q, np.int32, what))
        return out

    @staticmethod
    def _padded(seqs):
        """[batch, seq] int32 right-padded with 0, and the lengths."""
        lens = np.array([len(q) for q in seqs], np.int64)
        toks = np.zeros((len(seqs), int(lens.max())), np.int32)
        for b, q in enumerate(seqs):
            toks[b, :len(q)] = q
        return toks, lens

    def sae_eval(self, sae, x, batch=8, prepend_bos=None):
        """The metrics `hookformer sae eval` prints, as SAELens's evals.py reports them
        (hk_sae_eval_*: three forwards per batch of `batch` sequences): tokens, mse,
        explained_variance, l0, l1, dead_features (of d_sae), ce_loss_without,
        ce_loss_with_sae, ce_loss_ablation, ce_loss_delta, ce_loss_score. x: texts or id
        sequences (see sae_top_contexts). Runs on its own hooks: add_hook hooks and add_sae
        SAEs take no part."""
        if not isinstance(sae, _sae.SAE):
            raise TypeError(f"sae: expected an SAE (hookformer.load_sae), got "
                            f"{type(sae).__name__}")
        batch = int(batch)
        if batch < 1:
            raise ValueError(f"batch={batch}: expected >= 1")
        seqs = self._sequences(x, prepend_bos, "sae_eval")
        mt = _lib.SaeMetrics()
        with self._busy("sae_eval"):
            h = self.handle
            held = sae._owner  # noqa: F841 - the C SAE lives through the call
            e = C.c_void_p()
            check(lib.hk_sae_eval_new(h, sae._fresh(), C.byref(e)))
            try:
                for i in range(0, len(seqs), batch):
                    toks, lens = self._padded(seqs[i:i + batch])
                    check(lib.hk_sae_eval_add(e, _lib.ptr(toks, C.c_int32),
                                              _lib.ptr(lens, C.c_int64), toks.shape[0],
                                              toks.shape[1]))
                check(lib.hk_sae_eval_metrics(e, C.byref(mt)))
            finally:
                lib.hk_sae_eval_free(e)
        return {"tokens": mt.tokens, "mse": mt.mse, "explained_variance": mt.explained_variance,
                "l0": mt.l0, "l1": mt.l1, "dead_features": mt.dead, "d_sae": mt.d_sae,
                "ce_loss_without": mt.ce_without, "ce_loss_with_sae": mt.ce_with,
                "ce_loss_ablation": mt.ce_ablation, "ce_loss_delta": mt.ce_delta,
                "ce_loss_score": mt.ce_score}

    def sae_top_contexts(self, sae, prompts, top=20, window=8, batch=8, prepend_bos=None):
        """Each feature's top-activating contexts over `prompts` (hk_sae_top_contexts, what
        `hookformer features` finds): a TopContexts of numpy arrays, with save(path) and
        html(path, features). prompts: a text, a list of texts, ids [pos] / [batch, pos]
        (every row whole), or a list of id sequences of any lengths; `batch` sequences per
        forward."""
        if not isinstance(sae, _sae.SAE):
            raise TypeError(f"sae: expected an SAE (hookformer.load_sae), got "
                            f"{type(sae).__name__}")
        seqs = self._sequences(prompts, prepend_bos, "sae_top_contexts")
        ptrs = (_lib.i32p * len(seqs))(*[_lib.ptr(q, C.c_int32) for q in seqs])
        lens = np.array([len(q) for q in seqs], np.int64)
        owner = _sae._TopOwner()
        with self._busy("sae_top_contexts"):
            h = self.handle
            held = sae._owner  # noqa: F841
            check(lib.hk_sae_top_contexts(h, sae._fresh(), ptrs, _lib.ptr(lens, C.c_int64),
                                          len(seqs), int(top), int(window), int(batch),
                                          C.byref(owner.top)))
            owner.filled = True
        return _sae.TopContexts(owner, self, sae)

    def cache_saes(self, path, saes, x, batch=8, force=False, prepend_bos=None):
        """`hookformer cache --sae`: every token's feature activations (hook_sae_acts_post) of
        each SAE (one per hook) stored sparsely in a new HDF5 file (hk_sae_store_*: CSR
        datasets indices, values, row_ptr per SAE, rows aligned with seq_id, position,
        token_id; docs/FORMAT.md). Written to PATH.tmp and renamed at the end (a failed run
        leaves no file); an existing file is an error unless force. The model's add_hook
        hooks run first, as --plugin's do. Returns the entries stored per SAE."""
        saes = [saes] if isinstance(saes, _sae.SAE) else list(saes)
        if not saes:
            raise ValueError("cache_saes: no SAE given")
        batch = int(batch)
        if batch < 1:
            raise ValueError(f"batch={batch}: expected >= 1")
        seqs = self._sequences(x, prepend_bos, "cache_saes")
        with self._busy("cache_saes"):
            h = self.handle
            self._sae_pairs(saes, "observe")  # SAE objects, open, one per hook point
            held = [s._owner for s in saes]  # noqa: F841
            arr = (C.c_void_p * len(saes))(*[s._fresh().value for s in saes])
            store = C.c_void_p()
            check(lib.hk_sae_store_create(str(path).encode(), bool(force), h, arr, len(saes),
                                          C.byref(store)))
            with self._scope():
                try:
                    check(lib.hk_sae_store_attach(store, self._hooks))
                    for i in range(0, len(seqs), batch):
                        toks, lens = self._padded(seqs[i:i + batch])
                        st = lib.hk_sae_store_run(store, h, self._hooks,
                                                  _lib.ptr(toks, C.c_int32),
                                                  _lib.ptr(lens, C.c_int64), toks.shape[0],
                                                  toks.shape[1])
                        self._dispatch.raise_pending()
                        check(st)
                    nnz = [lib.hk_sae_store_nnz(store, i) for i in range(len(saes))]
                except BaseException:
                    lib.hk_sae_store_discard(store)
                    raise
                check(lib.hk_sae_store_close(store))  # detaches the SAEs from the hooks
        return nnz
