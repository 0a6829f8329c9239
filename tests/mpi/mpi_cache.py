#!/usr/bin/env python3
"""`mpirun -n 3 hookformer cache` against the single-process run, read with plain h5py:

1. the root file equals the single-process file row for row and bit for bit (same hooks,
   dtype, positions, index), for f32 / all positions with an attention pattern, and f16 /
   last position; every shard opens alone and the shards together hold each corpus sequence
   once;
2. an uneven corpus: fewer sequences than ranks;
3. one rank SIGKILLed mid-run: every shard left opens with h5py, and the same command with
   --resume runs only the missing sequences and writes the root, equal to the single run;
4. a rank that fails at start (a bad model path on rank 0 only, then on rank 2 only) fails the
   whole job with that rank's message, within seconds, leaving no root file; so does a
   launched run whose MPI module (HK_MPI_MODULE) is missing or not hookformer's;
5. `cache --sae` under mpirun is refused on every rank, writing nothing (its CSR file is not
   sharded);
6. placement (one process per device): with HK_TEST_DEVICES=2 `--device test` puts the ranks
   on test:0, test:1, test:0 by local rank (the shards' `device` attributes, the root's
   `shard_devices`, each rank's log line), the root equal to the single-process file; an
   explicit `--device test:1` puts every rank on it; an index past one rank's devices fails
   the whole job with that rank's message.

usage: mpi_cache.py HOOKFORMER MPIRUN  (env: HK_FIXTURES, TMPDIR)
Exit 77 (meson's skip) when h5py or numpy is missing, unless HK_REQUIRE_H5PY=1."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"skip: {e}")
    sys.exit(1 if os.environ.get("HK_REQUIRE_H5PY") == "1" else 77)

EXE, MPIRUN = sys.argv[1], sys.argv[2]
MODEL = os.path.join(os.environ.get("HK_FIXTURES", "tests/fixtures"), "llama")
MPI = [MPIRUN, "--oversubscribe", "--allow-run-as-root", "-n", "3"]
HOOKS = "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern,blocks.1.mlp.hook_post"


def run(cmd, timeout=120):
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode() + p.stderr.decode(), time.time() - t0


def cache_args(ids, out, extra):
    return [EXE, "cache", "--model", MODEL, "--tokens-file", ids, "--out", out] + extra


def corpus(path, n, rng, max_len=12):
    with open(path, "w") as fh:
        for _ in range(n):
            fh.write(",".join(str(rng.randrange(300)) for _ in range(rng.randrange(1, max_len)))
                     + "\n")


def same_store(root, single, where):
    """Every dataset of the single-process file, and its root attributes, in the root."""
    with h5py.File(root, "r") as a, h5py.File(single, "r") as b:
        assert set(a.keys()) == set(b.keys()), f"{where}: datasets {sorted(a)} vs {sorted(b)}"
        for k in b:
            x, y = a[k][:], b[k][:]
            assert x.dtype == y.dtype and x.shape == y.shape, \
                f"{where}: {k} {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
            assert x.tobytes() == y.tobytes(), f"{where}: {k} differs"
            for name, v in b[k].attrs.items():
                assert np.array_equal(a[k].attrs[name], v), f"{where}: {k}.attrs[{name}]"
        for name, v in b.attrs.items():
            if name == "device":  # each shard's own; the root lists them (shard_devices)
                continue
            assert np.array_equal(a.attrs[name], v), f"{where}: attrs[{name}] differs"
        assert list(a.attrs["shards"]) == [f"{os.path.basename(root)}.rank{r:04d}"
                                           for r in range(3)], f"{where}: shards attribute"
        assert "device" not in a.attrs, f"{where}: the root has a device attribute"
        assert list(a.attrs["shard_devices"]) == shard_devices(root), \
            f"{where}: shard_devices {list(a.attrs['shard_devices'])}"
        return len(b["seq_length"])


def shard_devices(root):
    """The `device` attribute of each shard, in rank order."""
    out = []
    for r in range(3):
        with h5py.File(f"{root}.rank{r:04d}", "r") as f:
            out.append(f.attrs["device"])
    return out


def check_shards(root, n_seq, where, chunks=True):
    """Each shard opens alone; together they hold every corpus sequence exactly once. A small
    run's shard has chunks for its share of the rows (a third), not for all of them."""
    ids, counts = [], []
    with h5py.File(root, "r") as f:
        share = -(-len(f["seq_id"]) // 3)
    want_chunk = max(16, 1 << (share - 1).bit_length())
    for r in range(3):
        with h5py.File(f"{root}.rank{r:04d}", "r") as f:
            c = f["seq_corpus_id"][:]
            assert len(c) == len(f["seq_length"]), f"{where}: shard {r} seq_corpus_id"
            ids += list(c)
            counts.append(len(c))
            chunk = f["blocks.0.hook_resid_post"].chunks[0]
            assert not chunks or chunk == want_chunk, f"{where}: shard {r} has chunks of {chunk} rows, " \
                                        f"expected {want_chunk} (a third of the rows)"
    assert sorted(ids) == list(range(n_seq)), f"{where}: shards hold {sorted(ids)}"
    print(f"{where}: sequences per shard {counts}")


def test_equal(tmp, rng):
    ids = os.path.join(tmp, "ids.txt")
    corpus(ids, 40, rng)
    for k, extra in enumerate([["--hooks", HOOKS, "--ctx", "12", "--batch", "2"],
                               ["--hooks", "blocks.*.hook_resid_post", "--dtype", "f16",
                                "--positions", "last", "--batch", "3"]]):
        single, root = os.path.join(tmp, f"single{k}.h5"), os.path.join(tmp, f"root{k}.h5")
        rc, out, _ = run(cache_args(ids, single, extra))
        assert rc == 0, out
        rc, out, _ = run(MPI + cache_args(ids, root, extra))
        assert rc == 0, out
        n = same_store(root, single, f"equal {k}")
        check_shards(root, n, f"equal {k}")
        # opened from another folder: the shards are named relative to the root's
        here = os.getcwd()
        os.chdir("/")
        with h5py.File(root, "r") as f:
            assert f["blocks.0.hook_resid_post"].shape[0] == len(f["seq_id"])
        os.chdir(here)
        print(f"equal {k}: root == single ({n} sequences)")
    # a second run over an existing root and shards is refused; --force replaces them
    rc, out, _ = run(MPI + cache_args(ids, root, ["--hooks", "blocks.0.hook_resid_post"]))
    assert rc != 0 and "exists" in out, out
    rc, out, _ = run(MPI + cache_args(ids, root, ["--hooks", "blocks.0.hook_resid_post",
                                                  "--force"]))
    assert rc == 0, out
    with h5py.File(root, "r") as f:
        assert list(f.attrs["hooks"]) == ["blocks.0.hook_resid_post"]


def test_uneven(tmp, rng):
    ids = os.path.join(tmp, "two.txt")
    corpus(ids, 2, rng)
    single, root = os.path.join(tmp, "single_two.h5"), os.path.join(tmp, "root_two.h5")
    extra = ["--hooks", HOOKS, "--ctx", "12", "--batch", "1"]
    rc, out, _ = run(cache_args(ids, single, extra))
    assert rc == 0, out
    rc, out, _ = run(MPI + cache_args(ids, root, extra))
    assert rc == 0, out
    same_store(root, single, "uneven")
    check_shards(root, 2, "uneven")
    print("uneven: 2 sequences over 3 ranks, root == single")


# enough sequences that the kill, 50 ms after rank 1 publishes its shard, lands mid-run even on
# an idle machine (400 were all stored within 200 ms on one)
N_LONG = 1500


def test_kill_resume(tmp, rng):
    ids = os.path.join(tmp, "long.txt")
    corpus(ids, N_LONG, rng, max_len=24)
    extra = ["--hooks", HOOKS, "--ctx", "24", "--batch", "1", "--commit-secs", "0"]
    single, root = os.path.join(tmp, "single_long.h5"), os.path.join(tmp, "root_long.h5")
    rc, out, _ = run(cache_args(ids, single, extra))
    assert rc == 0, out
    piddir = os.path.join(tmp, "pids")
    os.makedirs(piddir)
    wrap = ["sh", "-c", f'echo $$ > {piddir}/$OMPI_COMM_WORLD_RANK; exec "$@"', "sh"]
    p = subprocess.Popen(MPI + wrap + cache_args(ids, root, extra), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    victim = f"{root}.rank0001"
    end = time.time() + 60
    while not os.path.exists(victim) and time.time() < end and p.poll() is None:
        time.sleep(0.01)
    assert os.path.exists(victim), "rank 1 never published its shard"
    time.sleep(0.05)
    with open(os.path.join(piddir, "1")) as fh:
        os.kill(int(fh.read()), signal.SIGKILL)
    out = p.communicate(timeout=60)[0].decode()
    assert p.returncode != 0, f"the job did not fail when rank 1 was killed:\n{out}"
    assert not os.path.exists(root), "a root file after a killed run"
    held = 0
    for r in range(3):
        path = f"{root}.rank{r:04d}"
        if os.path.exists(path):
            with h5py.File(path, "r") as f:  # opens without h5clear
                held += len(f["seq_length"])
                assert len(f["seq_corpus_id"]) == len(f["seq_length"])
    assert 0 < held < N_LONG, f"the kill did not land mid-run ({held} sequences stored)"
    # --resume restates only the model, the corpus and the file
    rc, out, _ = run(MPI + cache_args(ids, root, ["--resume", "--batch", "1"]))
    assert rc == 0, out
    same_store(root, single, "kill + resume")
    check_shards(root, N_LONG, "kill + resume", chunks=False)  # made by two runs
    print(f"kill: {held} of {N_LONG} sequences in the shards after SIGKILL of rank 1; "
          f"--resume completed them, root == single")
    rc, out, _ = run(MPI + cache_args(ids, root, ["--resume", "--batch", "1"]))
    assert rc == 0 and "nothing to do" in out, out
    same_store(root, single, "second resume")


def test_start_failure(tmp, rng):
    ids = os.path.join(tmp, "fail.txt")
    corpus(ids, 20, rng)
    for bad in (0, 2):
        root = os.path.join(tmp, f"fail{bad}.h5")
        script = (f'M={MODEL}; [ "$OMPI_COMM_WORLD_RANK" = {bad} ] && M={tmp}/no-such-model; '
                  f'exec {EXE} cache --model "$M" --tokens-file {ids} --hooks '
                  f'blocks.0.hook_resid_post --out {root}')
        rc, out, secs = run(MPI + ["sh", "-c", script], timeout=60)
        assert rc != 0, f"rank {bad} failed, the job did not:\n{out}"
        assert f"cannot load model '{tmp}/no-such-model'" in out, out
        assert f"rank {bad} of 3 failed" in out, out
        assert not os.path.exists(root), "a root file after a failed start"
        print(f"start failure on rank {bad}: the job failed in {secs:.1f} s with its message")
    # launched, but no usable MPI module: fail with the reason, never run the job 3 times over
    # (a library that is not hookformer's: libm, which every process has)
    for module, want in ((f"{tmp}/no-such-module.so", "cannot load the MPI module"),
                         ("libm.so.6", "not hookformer's MPI module")):
        root = os.path.join(tmp, "nomodule.h5")
        env = dict(os.environ, HK_MPI_MODULE=module)
        p = subprocess.run(MPI + ["-x", "HK_MPI_MODULE"] + cache_args(ids, root, [
            "--hooks", "blocks.0.hook_resid_post"]), capture_output=True, text=True, env=env,
            timeout=60)
        assert p.returncode != 0 and want in p.stderr, p.stderr
        assert not os.path.exists(root) and not os.path.exists(root + ".rank0000")
    print("a launched run without a usable MPI module fails with the reason")


def test_placement(tmp, rng):
    """One process per device: with HK_TEST_DEVICES=2 simulated devices, `--device test`
    (no index) puts the 3 ranks on test:0, test:1, test:0 by local rank, as the shards'
    `device` attributes and each rank's log line say, and the root still equals the
    single-process file; an explicit index puts every rank there; an index past the devices
    of one rank fails the whole job with that rank's message, within seconds, leaving no root."""
    ids = os.path.join(tmp, "place.txt")
    corpus(ids, 12, rng)
    extra = ["--hooks", "blocks.*.hook_resid_post", "--batch", "2"]
    single = os.path.join(tmp, "single_place.h5")
    rc, out, _ = run(cache_args(ids, single, extra))
    assert rc == 0, out
    env = dict(os.environ, HK_TEST_DEVICES="2")
    mpi = MPI + ["-x", "HK_TEST_DEVICES"]
    for device, want in (("test", ["test:0", "test:1", "test:0"]),
                         ("test:1", ["test:1", "test:1", "test:1"])):
        root = os.path.join(tmp, f"place_{device.replace(':', '')}.h5")
        p = subprocess.run(mpi + cache_args(ids, root, extra + ["--device", device]),
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert shard_devices(root) == want, f"--device {device}: {shard_devices(root)}"
        for r in range(3):
            line = f"cache: rank {r} of 3 (local rank {r}) runs on {want[r]}"
            assert line in p.stderr, f"--device {device}: no '{line}' in\n{p.stderr}"
        same_store(root, single, f"placement --device {device}")
        print(f"placement: --device {device} put the ranks on {want}; root == single")
    # rank 2 sees one device only (its own HK_TEST_DEVICES): test:1 is past it there
    root = os.path.join(tmp, "place_bad.h5")
    script = (f'D=2; [ "$OMPI_COMM_WORLD_RANK" = 2 ] && D=1; HK_TEST_DEVICES=$D exec {EXE} '
              f'cache --model {MODEL} --tokens-file {ids} --hooks blocks.0.hook_resid_post '
              f'--out {root} --device test:1')
    rc, out, secs = run(MPI + ["sh", "-c", script], timeout=60)
    assert rc != 0, f"rank 2's device index was past its devices, the job did not fail:\n{out}"
    assert ("device test:1: index 1 is past the last test device: HK_TEST_DEVICES=1 makes 1 "
            "(test:0)") in out, out
    assert "rank 2 of 3 failed" in out, out
    assert not os.path.exists(root), "a root file after a failed start"
    # every rank past the devices
    root = os.path.join(tmp, "place_bad_all.h5")
    p = subprocess.run(mpi + cache_args(ids, root, ["--hooks", "blocks.0.hook_resid_post",
                                                    "--device", "test:5"]),
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode != 0 and "device test:5: index 5 is past the last test device: " \
        "HK_TEST_DEVICES=2 makes 2 (test:0 to test:1)" in p.stderr, p.stderr
    assert not os.path.exists(root)
    print(f"placement: an index past one rank's devices failed the job in {secs:.1f} s with "
          f"its message")


def test_sae_refused(tmp, rng):
    ids = os.path.join(tmp, "sae.txt")
    corpus(ids, 6, rng)
    root = os.path.join(tmp, "sae.h5")
    sae = os.path.join(os.path.dirname(MODEL), "sae", "llama_standard")
    rc, out, _ = run(MPI + cache_args(ids, root, ["--sae", sae]), timeout=60)
    assert rc != 0 and "--sae runs in one process" in out, out
    left = [f for f in os.listdir(tmp) if f.startswith("sae.h5")]
    assert not left, f"a refused --sae run left {left}"
    print("cache --sae under mpirun: refused, nothing written")


def main():
    tmp = tempfile.mkdtemp(prefix="hk_mpi_")
    rng = random.Random(18)
    test_equal(tmp, rng)
    test_uneven(tmp, rng)
    test_kill_resume(tmp, rng)
    test_start_failure(tmp, rng)
    test_placement(tmp, rng)
    test_sae_refused(tmp, rng)
    print("ok")


if __name__ == "__main__":
    main()
