"""hookformer.Store: read an HDF5 activation store (hookformer cache, hk_store_create)."""

import ctypes as C

import numpy as np

from . import _lib
from ._lib import check, lib


class Store:
    """A store opened read-only (hk_store_open). info: the file's attributes; hooks: name ->
    dict(shape, dims, per_sequence); read(name, seq, pos) rows as float32."""

    def __init__(self, path):
        self.path = str(path)
        self._h = None
        h = C.c_void_p()
        check(lib.hk_store_open(self.path.encode(), C.byref(h)))
        self._h = h
        info = _lib.StoreInfo()
        check(lib.hk_store_get_info(h, C.byref(info)))
        s = lambda b: (b or b"").decode()  # noqa: E731
        self.info = {"path": s(info.path), "model_id": s(info.model_id),
                     "family": s(info.family), "dtype": s(info.dtype),
                     "positions": s(info.positions), "compression": s(info.compression),
                     "version": s(info.version), "model_path": s(info.model_path),
                     "n_rows": info.n_rows, "n_sequences": info.n_sequences, "ctx": info.ctx,
                     "file_bytes": info.file_bytes}
        self.hooks = {}
        for i in range(info.n_hooks):
            hi = _lib.StoreHookInfo()
            check(lib.hk_store_hook_at(h, i, C.byref(hi)))
            self.hooks[s(hi.name)] = {"shape": tuple(hi.shape[:hi.ndim]), "dims": s(hi.dims),
                                      "per_sequence": bool(hi.per_sequence)}

    @property
    def handle(self):
        if not self._h:
            raise ValueError(f"hookformer store {self.path!r} is closed")
        return self._h

    def close(self):
        if self._h:
            h, self._h = self._h, None
            check(lib.hk_store_close(h))

    def __del__(self):
        if getattr(self, "_h", None) and lib is not None:
            lib.hk_store_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def n_sequences(self):
        return self.info["n_sequences"]

    def sequence(self, q):
        """Sequence q's length (valid tokens), first row, first stored position, rows."""
        vals = [C.c_int64() for _ in range(4)]
        check(lib.hk_store_sequence(self.handle, int(q), *[C.byref(v) for v in vals]))
        return dict(zip(("length", "first_row", "first_pos", "n_rows"), (v.value for v in vals)))

    def positions(self, q):
        """The absolute positions stored for sequence q."""
        sq = self.sequence(q)
        return np.arange(sq["first_pos"], sq["first_pos"] + sq["n_rows"], dtype=np.int64)

    def token_ids(self, q):
        """The token ids of sequence q's stored rows."""
        sq = self.sequence(q)
        out = np.empty(sq["n_rows"], np.int32)
        check(lib.hk_store_read_token_ids(self.handle, sq["first_row"], sq["n_rows"],
                                          _lib.ptr(out, C.c_int32)))
        return out

    def read(self, name, seq, pos=None):
        """Rows of hook `name` as float32 [n, ...]. seq: a sequence id or an array of them;
        pos: positions (same length, or broadcast; -1 is the last stored row), or None for
        every stored row of one sequence. Pattern hooks (stored per sequence) take no pos and
        give [n, head, query, key]."""
        if name not in self.hooks:
            raise KeyError(f"{self.path}: no hook {name!r} stored (it has "
                           f"{', '.join(self.hooks) or 'none'})")
        per_seq = self.hooks[name]["per_sequence"]
        seqs = np.atleast_1d(np.asarray(seq, np.int64))
        if per_seq:
            if pos is not None:
                raise ValueError(f"{name}: stored per sequence; read it without pos")
            positions = None
        else:
            if pos is None:
                if seqs.size != 1:
                    raise ValueError("pos=None reads every row of ONE sequence")
                positions = self.positions(int(seqs[0]))
            else:
                positions = np.atleast_1d(np.asarray(pos, np.int64))
            seqs, positions = np.broadcast_arrays(seqs, positions)
            seqs = np.ascontiguousarray(seqs)
            positions = np.ascontiguousarray(positions)
        row = lib.hk_store_row_elems(self.handle, name.encode())
        inner = self.hooks[name]["shape"][1:]
        out = np.empty((len(seqs),) + inner, np.float32)
        if int(np.prod(inner)) != row:
            raise _lib.HookformerError(f"{self.path}: {name}: rows of {row} values, dataset "
                                       f"shape {self.hooks[name]['shape']}", "HK_ERR_FORMAT")
        check(lib.hk_store_read(self.handle, name.encode(), _lib.ptr(seqs, C.c_int64),
                                _lib.ptr(positions, C.c_int64), len(seqs),
                                _lib.ptr(out, C.c_float)))
        return out

    def __repr__(self):
        return (f"Store({self.path!r}: {self.info['n_sequences']} sequences, "
                f"{self.info['n_rows']} rows, hooks {list(self.hooks)})")
