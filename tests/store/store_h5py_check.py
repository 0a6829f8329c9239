#!/usr/bin/env python3
"""Read a hookformer store with plain h5py + numpy and compare it with the in-memory cache
that tests/store/test_store.c dumped beside it.

usage: store_h5py_check.py STORE.h5 REFDIR
REFDIR/manifest.txt: "dtype f32|f16|bf16", then one line per hook: "NAME ROWS ELEMS";
REFDIR/<NAME>.f32: the cache's values of the stored rows, float32 [ROWS, ELEMS];
REFDIR/index.i64: int64 [ROWS, 3] (sequence id, position, token id).
f32 must match exactly; f16/bf16 must equal numpy's round-to-nearest-even of the f32 values
(so within the format's precision). Exit 0 ok, 1 mismatch, 77 h5py/numpy missing."""
import os
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(1 if os.environ.get("HK_REQUIRE_H5PY") == "1" else 77)


def bf16_round(x):
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32)


def main():
    path, refdir = sys.argv[1], sys.argv[2]
    lines = open(os.path.join(refdir, "manifest.txt")).read().split("\n")
    dtype = lines[0].split()[1]
    failures = 0
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "hookformer.activations", f.attrs["format"]
        assert f.attrs["dtype"] == {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[dtype]
        idx = np.fromfile(os.path.join(refdir, "index.i64"), dtype=np.int64).reshape(-1, 3)
        n = len(f["seq_id"])
        assert n == len(idx), f"{n} rows in the file, {len(idx)} in the cache"
        assert np.array_equal(f["seq_id"][:], idx[:, 0]), "seq_id"
        assert np.array_equal(f["position"][:], idx[:, 1]), "position"
        assert np.array_equal(f["token_id"][:], idx[:, 2]), "token_id"
        for line in lines[1:]:
            if not line.strip():
                continue
            name, rows, elems = line.split()
            rows, elems = int(rows), int(elems)
            ref = np.fromfile(os.path.join(refdir, name + ".f32"), dtype=np.float32)
            ref = ref.reshape(rows, elems)
            d = f[name]
            assert d.attrs["hook_name"] == name and d.attrs["layout"] == "token_rows"
            assert d.shape[0] == rows, f"{name}: {d.shape[0]} rows, expected {rows}"
            got = d[:].reshape(rows, elems)
            if dtype == "f32":
                assert got.dtype == np.float32
                want, ok = ref, np.array_equal(got, ref)
                tol = 0.0
            elif dtype == "f16":
                assert got.dtype == np.float16, got.dtype  # h5py maps the type to float16
                want = ref.astype(np.float16)
                ok = np.array_equal(got, want)
                tol = 2.0**-11
            else:
                # h5py widens the custom bfloat16 type to float32 (HDF5 converts exactly);
                # docs/FORMAT.md's recipe reads the raw 16-bit words instead: check both
                want = bf16_round(ref)
                ok = np.array_equal(got.astype(np.float32), want)
                raw = np.empty(d.shape, dtype=np.uint16)
                d.id.read(h5py.h5s.ALL, h5py.h5s.ALL, raw, mtype=d.id.get_type())
                widened = (raw.astype(np.uint32) << 16).view(np.float32).reshape(rows, elems)
                ok = ok and np.array_equal(widened, want)
                tol = 2.0**-8
            floor = 2.0**-24 if dtype == "f16" else 1e-38  # f16 subnormals: absolute steps
            rel = np.abs(got.astype(np.float32) - ref) <= tol * np.abs(ref) + floor
            if not ok or not rel.all():
                err = np.abs(got.astype(np.float32) - want.astype(np.float32)).max()
                print(f"FAIL {name}: differs from the cache ({dtype}), max {err}")
                failures += 1
            else:
                print(f"ok {name}: {rows} x {elems} {dtype}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
