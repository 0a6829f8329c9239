"""Python callbacks on a model's hk_hooks: one ctypes trampoline per model dispatches every
fire to the Python function registered for it.

A callback gets `act`, a zero-copy writable numpy view of the activation (valid during the
call only), and `hook`, a HookPoint naming the point; it may edit `act` in place or return
an array of act's shape, which is written over the activation. An exception stops the
forward (HK_HOOK_ERROR) and is re-raised by the run as HookError naming the hook.
"""

import ctypes as C
import sys
import traceback

import numpy as np

from . import _arrays, _lib
from ._lib import HookformerError


class HookError(HookformerError):
    """A Python hook raised: `hook_name` is the point, __cause__ the original exception."""

    def __init__(self, message, hook_name):
        super().__init__(message, "HK_ERR_HOOK")
        self.hook_name = hook_name


class StopForward(Exception):
    """Raise from a hook to stop the forward there (the C library's HK_HOOK_STOP): the run
    returns None instead of its output."""


class HookPoint:
    """What a callback learns about the activation it is handed (hk_hook_ctx)."""

    __slots__ = ("name", "_layer", "batch_offset", "pos_offset", "key_offset", "run_batch",
                 "run_seq")

    def __init__(self, ctx):
        self.name = ctx.name.decode()
        self._layer = ctx.layer
        self.batch_offset = ctx.batch_offset
        self.pos_offset = ctx.pos_offset
        self.key_offset = ctx.key_offset
        self.run_batch = ctx.run_batch
        self.run_seq = ctx.run_seq

    def layer(self):
        """The block index (-1 outside the blocks); a method, as TransformerLens's."""
        return self._layer

    def __repr__(self):
        return f"HookPoint({self.name!r}, pos_offset={self.pos_offset})"


def _write_back(act, ret, name):
    if isinstance(ret, np.ndarray) and ret is act:
        return
    try:
        arr = np.asarray(ret)
    except Exception as e:  # noqa: BLE001 - any conversion failure is the hook's error
        raise TypeError(f"the hook returned {type(ret).__name__}, not an array: {e}") from None
    if arr.dtype == object:
        raise TypeError(f"the hook returned {type(ret).__name__}, not an array of numbers")
    if arr.shape != act.shape:
        raise ValueError(f"the hook returned an array of shape {arr.shape}; the activation "
                         f"is {act.shape} (return None, or an array of the same shape)")
    if (arr.dtype == act.dtype and arr.strides == act.strides and
            arr.__array_interface__["data"][0] == act.__array_interface__["data"][0]):
        return  # the activation itself, or an identical view of it
    act[...] = arr


class Dispatch:
    """The Python side of one model's hk_hooks: registered functions by index."""

    def __init__(self):
        self.fns = []        # index -> fn(act, hook)
        self.filters = []    # index -> names filter(name) -> bool (kept alive while registered)
        self.error = None    # (hook name, exception) of the fire that failed
        self.c_hook = _lib.HOOK_FN(self._fire)
        self.c_filter = _lib.FILTER_FN(self._filter)

    # ---- registration bookkeeping (scopes mirror hk_hooks_scope_begin/_end) ----
    def mark(self):
        return len(self.fns), len(self.filters)

    def truncate(self, mark):
        del self.fns[mark[0]:]
        del self.filters[mark[1]:]

    def add_fn(self, fn):
        if not callable(fn):
            raise TypeError(f"hook function {fn!r} is not callable")
        self.fns.append(fn)
        return len(self.fns)  # the user pointer: index + 1 (never NULL)

    def add_filter(self, flt):
        self.filters.append(flt)
        return len(self.filters)

    # ---- fires ----
    def _filter(self, name, user):
        try:
            return bool(self.filters[user - 1](name.decode()))
        except BaseException as e:  # noqa: BLE001 - reported after registration
            if self.error is None:
                self.error = (f"names filter on {name.decode()}", e)
            return False

    def _fire(self, t_ptr, ctx_ptr, user):
        ctx = ctx_ptr.contents
        hook = HookPoint(ctx)
        try:
            act = _arrays.tensor_array(t_ptr.contents, hook.name)
            mem = act.base
            refs = sys.getrefcount(mem)
            ret = self.fns[user - 1](act, hook)
            if ret is not None:
                _write_back(act, ret, hook.name)
            del ret, act
            if sys.getrefcount(mem) >= refs:
                raise RuntimeError(
                    "the hook kept a reference to its activation view, whose memory is only "
                    "valid during the call: keep a copy (act.copy()) instead")
        except StopForward:
            return _lib.HK_HOOK_STOP
        except BaseException as e:  # noqa: BLE001 - re-raised by the run
            traceback.clear_frames(e.__traceback__)  # the frames hold the view
            self.error = (hook.name, e)
            _lib.lib.hk_hook_error(b"%s", f"{type(e).__name__}: {e}".encode("utf-8", "replace"))
            return _lib.HK_HOOK_ERROR
        return _lib.HK_HOOK_CONTINUE

    def take_error(self):
        err, self.error = self.error, None
        return err

    def raise_pending(self):
        """Re-raise the exception of a failed fire (or filter) as HookError."""
        err = self.take_error()
        if err is None:
            return
        name, e = err
        if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit: as they are
            raise e
        raise HookError(f"{name}: {type(e).__name__}: {e}", name) from e


def register(h, dispatch, target, fn):
    """Register fn at `target` (a hook name or glob, or a names filter) on hk_hooks h."""
    handle = C.c_uint64()
    user = dispatch.add_fn(fn)
    if isinstance(target, str):
        st = _lib.lib.hk_hooks_add(h, target.encode(), dispatch.c_hook, user, C.byref(handle))
    elif callable(target):
        fu = dispatch.add_filter(target)
        st = _lib.lib.hk_hooks_add_filter(h, dispatch.c_filter, fu, dispatch.c_hook, user,
                                          C.byref(handle))
        dispatch.raise_pending()
    else:
        raise TypeError(f"a hook target is a name, a glob or a filter function, not "
                        f"{type(target).__name__}")
    _lib.check(st)
    return handle.value
