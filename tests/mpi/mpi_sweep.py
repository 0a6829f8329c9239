#!/usr/bin/env python3
"""`mpirun -n 3 hookformer patch|ablate` against the single-process run: the results file
holds the same datasets and attributes, bit for bit (values, change, normalized, forwards,
baselines), and stdout is the same but for the file name it wrote; with HK_TEST_DEVICES=2 and
`--device test` the ranks run on test:0, test:1, test:0 (their log lines), results unchanged.

usage: mpi_sweep.py HOOKFORMER MPIRUN  (env: HK_FIXTURES, TMPDIR)
Exit 77 (meson's skip) when h5py or numpy is missing, unless HK_REQUIRE_H5PY=1."""
import os
import subprocess
import sys
import tempfile

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(1 if os.environ.get("HK_REQUIRE_H5PY") == "1" else 77)

EXE, MPIRUN = sys.argv[1], sys.argv[2]
FIX = os.environ.get("HK_FIXTURES", "tests/fixtures")
MPI = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-n", "3"]

CASES = {
    "patch": ["patch", "--model", f"{FIX}/gpt2", "--clean", "227,187,164,39,12",
              "--corrupted", "227,12,164,39,12", "--clean", "5,6,7,8,9", "--corrupted",
              "5,6,70,8,9", "--answer", "68", "--wrong", "100", "--sweep",
              "resid_pre,head_out,head_out_by_pos", "--batch", "3"],
    "ablate": ["ablate", "--model", f"{FIX}/llama", "--tokens", "2,189,262,96",
               "--tokens", "2,18,26,9", "--answer", "20", "--wrong", "36", "--mode", "mean",
               "--ref", "2,5,6,7", "--ref", "2,9,9,9", "--sweep", "head_out,mlp_out",
               "--batch", "2"],
}


def same(a, b, where):
    assert set(a.keys()) == set(b.keys()), f"{where}: members {sorted(a)} vs {sorted(b)}"
    assert set(a.attrs) == set(b.attrs), f"{where}: attributes differ"
    for k, v in b.attrs.items():
        x = np.asarray(a.attrs[k])
        v = np.asarray(v)
        assert x.dtype == v.dtype and x.tobytes() == v.tobytes() if x.dtype.kind in "fiu" \
            else np.array_equal(x, v), f"{where}: attrs[{k}] {x} vs {v}"
    for k in b:
        if isinstance(b[k], h5py.Group):
            same(a[k], b[k], f"{where}/{k}")
            continue
        x, y = a[k][:], b[k][:]
        assert x.dtype == y.dtype and x.shape == y.shape, f"{where}/{k}: type or shape"
        if y.dtype.kind == "O":
            assert list(x) == list(y), f"{where}/{k} differs"
        else:
            assert x.tobytes() == y.tobytes(), f"{where}/{k} differs"
        same_attrs = set(a[k].attrs) == set(b[k].attrs)
        assert same_attrs, f"{where}/{k}: attributes"


def main():
    tmp = tempfile.mkdtemp(prefix="hk_mpi_sweep_")
    for name, args in CASES.items():
        one, three = os.path.join(tmp, f"{name}1.h5"), os.path.join(tmp, f"{name}3.h5")
        p1 = subprocess.run([EXE] + args + ["--out", one], capture_output=True, text=True)
        assert p1.returncode == 0, p1.stderr
        p3 = subprocess.run(MPI + [EXE] + args + ["--out", three], capture_output=True,
                            text=True, timeout=120)
        assert p3.returncode == 0, p3.stderr
        assert p3.stdout.replace(three, one) == p1.stdout, \
            f"{name}: stdout differs\n{p1.stdout}\n---\n{p3.stdout}"
        with h5py.File(one, "r") as a, h5py.File(three, "r") as b:
            same(b, a, name)
            fw = [a[g].attrs["forwards"] for g in a if isinstance(a[g], h5py.Group)]
        print(f"{name}: 3 ranks == 1 process, bit for bit ({fw} forwards per sweep)")
        # placement: with 2 simulated devices, --device test puts the ranks on test:0, test:1,
        # test:0 by local rank (each rank's log line), and the results stay bit for bit
        placed = os.path.join(tmp, f"{name}3_placed.h5")
        env = dict(os.environ, HK_TEST_DEVICES="2")
        p = subprocess.run(MPI + ["-x", "HK_TEST_DEVICES", EXE] + args +
                           ["--out", placed, "--device", "test"], capture_output=True,
                           text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr
        for r, dev in enumerate(["test:0", "test:1", "test:0"]):
            line = f"{name}: rank {r} of 3 (local rank {r}) runs on {dev}"
            assert line in p.stderr, f"{name}: no '{line}' in\n{p.stderr}"
        with h5py.File(one, "r") as a, h5py.File(placed, "r") as b:
            same(b, a, f"{name} --device test")
        print(f"{name}: --device test over 2 test devices: ranks on test:0, test:1, test:0")
    print("ok")


if __name__ == "__main__":
    main()
