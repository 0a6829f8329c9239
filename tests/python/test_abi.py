"""The ctypes declarations match include/hookformer.h: every struct's size and every field's
offset as the C compiler lays them out (abi_layout.c)."""
import ctypes as C
import subprocess

from conftest import ABI_LAYOUT

from hookformer import _lib


def test_struct_layouts_match_the_header():
    out = subprocess.run([str(ABI_LAYOUT)], capture_output=True, text=True, check=True).stdout
    want = dict(line.split() for line in out.splitlines())
    seen = 0
    for cname, cls in _lib.STRUCTS.items():
        assert int(want[cname]) == C.sizeof(cls), f"sizeof({cname})"
        for f in cls._fields_:
            assert int(want[f"{cname}.{f[0]}"]) == getattr(cls, f[0]).offset, f"{cname}.{f[0]}"
            seen += 1
    assert seen == len(want) - len(_lib.STRUCTS)


def test_every_declared_function_exists():
    for name in _lib._SIGNATURES:
        assert getattr(_lib.lib, name) is not None
