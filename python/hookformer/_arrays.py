"""numpy arrays over memory the C library owns, without copies.

An array made here has as its base a small object that exposes the memory through numpy's
__array_interface__ and holds a reference to whatever keeps the memory alive (`owner`); every
view numpy derives from the array (slices, reshapes, torch.from_numpy) keeps that base, and so
the owner, alive.
"""

import ctypes as C

import numpy as np

from . import _lib

_TYPESTR = {_lib.HK_DTYPE_F32: "<f4", _lib.HK_DTYPE_F16: "<f2", _lib.HK_DTYPE_I32: "<i4",
            _lib.HK_DTYPE_I64: "<i8", _lib.HK_DTYPE_U8: "|u1"}
_ITEMSIZE = {"<f4": 4, "<f2": 2, "<i4": 4, "<i8": 8, "|u1": 1}


class _Memory:
    """What an array's .base is: the memory's address and layout, and its owner."""

    __slots__ = ("__array_interface__", "owner", "__weakref__")


def array_at(address, shape, strides_elems, typestr, owner=None, readonly=False):
    """A numpy array over `address` (strides counted in elements, as hk_tensor counts them)."""
    item = _ITEMSIZE[typestr]
    mem = _Memory()
    mem.__array_interface__ = {
        "data": (address, readonly), "shape": tuple(int(s) for s in shape),
        "strides": tuple(int(s) * item for s in strides_elems), "typestr": typestr,
        "version": 3}
    mem.owner = owner
    return np.asarray(mem)


def tensor_array(t, what, owner=None, readonly=False):
    """The numpy view of an hk_tensor (host memory only)."""
    if t.device != _lib.HK_DEVICE_CPU:
        raise _lib.HookformerError(f"{what}: the activation is on device {t.device}, not the "
                                   "host; numpy cannot view it", "HK_ERR_UNSUPPORTED")
    typestr = _TYPESTR.get(t.dtype)
    if typestr is None:
        name = _lib.lib.hk_dtype_name(t.dtype).decode()
        raise _lib.HookformerError(f"{what}: dtype {name} has no numpy type",
                                   "HK_ERR_UNSUPPORTED")
    n = t.ndim
    return array_at(t.data, t.shape[:n], t.stride[:n], typestr, owner, readonly)


def carray(a, dtype, what, ndim=None):
    """`a` as a C-contiguous numpy array of dtype (copied only when it is not one already)."""
    try:
        arr = np.ascontiguousarray(a, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what}: expected an array of {np.dtype(dtype).name}: {e}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dims, got shape {arr.shape}")
    return arr


def owned_f32(pointer, shape, owner):
    """A read-write float32 array over C memory of `shape` (contiguous) that `owner` frees."""
    if not pointer:
        return None
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= int(s)
    addr = C.cast(pointer, C.c_void_p).value
    return array_at(addr, shape, list(reversed(strides)), "<f4", owner)
