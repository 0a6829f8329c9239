#!/usr/bin/env python3
"""Compare two `hookformer cache` stores dataset by dataset (scripts/gpu_check.sh: a device
run against the CPU run of the same fixture). h5py + numpy only.

  compare_h5.py REF.h5 GOT.h5 [--atol A] [--rtol R] [--label NAME]

Every dataset of REF must be in GOT with the same shape. Integer datasets (seq_id, position,
token_id, ...) must be equal; float datasets pass when max |got - ref| <= atol + rtol * max
|ref| (over the dataset; equal infinities count as 0, a NaN in either fails). Prints one
markdown table row per fixture: the label, datasets compared, the worst dataset and its error,
and PASS or FAIL; with --verbose one line per dataset. Exit status 1 on any failure."""
import argparse
import sys

import h5py
import numpy as np


def datasets(f):
    out = {}
    f.visititems(lambda name, obj: out.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref")
    ap.add_argument("got")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--label", default="")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    problems, worst, n = [], ("-", 0.0, 0.0), 0
    with h5py.File(a.ref, "r") as fr, h5py.File(a.got, "r") as fg:
        ref, got = datasets(fr), datasets(fg)
        for name in sorted(ref):
            r = ref[name]
            if name not in got:
                problems.append(f"{name}: missing")
                continue
            g = got[name]
            if r.shape != g.shape:
                problems.append(f"{name}: shape {g.shape}, expected {r.shape}")
                continue
            n += 1
            rv, gv = r[()], g[()]
            if rv.dtype.kind in "iub":
                if not np.array_equal(rv, gv):
                    problems.append(f"{name}: integer values differ")
                continue
            rv, gv = rv.astype(np.float64), gv.astype(np.float64)
            if np.isnan(rv).any() or np.isnan(gv).any():
                problems.append(f"{name}: NaN")
                continue
            same_inf = np.isinf(rv) & (rv == gv)
            diff = np.where(same_inf, 0.0, np.abs(gv - rv))
            err = float(diff.max()) if diff.size else 0.0
            finite = rv[np.isfinite(rv)]
            scale = float(np.abs(finite).max()) if finite.size else 0.0
            bound = a.atol + a.rtol * scale
            if a.verbose:
                print(f"  {name}: max err {err:.3g} (bound {bound:.3g}, max |ref| {scale:.3g})")
            if err > worst[1]:
                worst = (name, err, bound)
            if not err <= bound:
                problems.append(f"{name}: max err {err:.3g} > {bound:.3g}")
    status = "FAIL" if problems else "PASS"
    detail = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    print(f"| {a.label} | {n} | {worst[0]} | {worst[1]:.3g} | {status} | {detail} |")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
