#!/usr/bin/env python3
"""Kill `hookformer cache` with SIGKILL at random moments and check every time that the file
opens with plain h5py (no h5clear) and that its committed rows are exactly those of a
complete run; every few kills, finish the run with --append and compare the whole file.
Then SIGINT: exit status 130, and `--resume` completes the file to an uninterrupted run's rows.

Commits happen after every batch (--commit-secs 0) so that many kills land during commits.
usage: store_kill.py HOOKFORMER  (env: HK_FIXTURES, HK_KILL_ROUNDS (default 24), TMPDIR)
Exit 77 (meson's skip) when h5py or numpy is missing."""
import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

try:
    import h5py
    import numpy as np
except ImportError as e:  # CI installs them (scripts/setup.sh test); locally we may skip
    print(f"skip: {e}")
    sys.exit(1 if os.environ.get("HK_REQUIRE_H5PY") == "1" else 77)

EXE = sys.argv[1]
MODEL = os.path.join(os.environ.get("HK_FIXTURES", "tests/fixtures"), "gpt2")
ROUNDS = int(os.environ.get("HK_KILL_ROUNDS", "24"))
HOOKS = "blocks.*.hook_resid_post,blocks.0.attn.hook_pattern,blocks.1.mlp.hook_post"
INDEX = ["seq_id", "position", "token_id"]
SEQ_TABLES = ["seq_length", "seq_first_row", "seq_first_pos", "seq_n_rows"]


def cache(out, ids, extra, ctx=True, **kw):
    cmd = [EXE, "cache", "--model", MODEL, "--tokens-file", ids, "--hooks", HOOKS, "--out", out,
           "--batch", "3", "--commit-secs", "0"] + (["--ctx", "12"] if ctx else []) + extra
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def resume(out, ids):
    """`cache --resume` restating nothing but the model, the corpus and the file."""
    cmd = [EXE, "cache", "--model", MODEL, "--tokens-file", ids, "--out", out, "--resume",
           "--batch", "3", "--commit-secs", "0"]
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return p.returncode, p.stderr.decode()


def snapshot(path):
    with open(path, "rb") as fh:
        return fh.read(), os.stat(path).st_mtime_ns


def wait_unlocked(path, timeout=10.0):
    """A commit child of the killed writer may still hold the file's lock: wait for it."""
    end = time.time() + timeout
    while time.time() < end:
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(0.01)
        finally:
            os.close(fd)
    raise SystemExit(f"FAIL: {path} stayed locked {timeout} s after the kill")


def check_prefix(path, ref, where, atol=0.0):
    """The file opens; its committed rows equal the reference's first rows (values within
    atol: rows computed in other batches differ by GEMM rounding)."""
    with h5py.File(path, "r") as f:
        n = len(f["seq_id"])
        q = len(f["seq_length"])
        for name in INDEX:
            assert len(f[name]) == n, f"{where}: {name} has {len(f[name])} rows, seq_id {n}"
            assert np.array_equal(f[name][:], ref[name][:n]), f"{where}: {name} differs"
        for name in SEQ_TABLES:
            assert len(f[name]) == q, f"{where}: {name} has {len(f[name])}, expected {q}"
            assert np.array_equal(f[name][:], ref[name][:q]), f"{where}: {name} differs"
        if q:
            last = f["seq_first_row"][q - 1] + f["seq_n_rows"][q - 1]
            assert last <= n, f"{where}: sequence table points past the rows"
        for h in f.attrs["hooks"]:
            d = f[h]
            rows = q if d.attrs["layout"] == "sequence" else n
            assert d.shape[0] >= rows, f"{where}: {h} has {d.shape[0]} rows, committed {rows}"
            a, b = d[:rows].astype(np.float32), ref[h][:rows].astype(np.float32)
            ok = np.array_equal(a, b) if atol == 0 else np.allclose(a, b, rtol=0, atol=atol)
            assert ok, f"{where}: {h} rows differ (max {np.abs(a - b).max() if rows else 0})"
        return n, q


def main():
    tmp = tempfile.mkdtemp(prefix="hk_kill_")
    rng = random.Random(1234)
    ids = os.path.join(tmp, "ids.txt")
    with open(ids, "w") as fh:
        for _ in range(300):
            fh.write(",".join(str(rng.randrange(300)) for _ in range(rng.randrange(1, 13))) + "\n")
    kinds = [["--dtype", "f32"], ["--dtype", "f16"], ["--compress", "deflate:1"]]
    refs = []
    durations = []
    for k, extra in enumerate(kinds):
        out = os.path.join(tmp, f"ref{k}.h5")
        t0 = time.time()
        p = cache(out, ids, extra)
        _, err = p.communicate()
        assert p.returncode == 0, f"reference run failed: {err.decode()}"
        durations.append(time.time() - t0)
        refs.append(h5py.File(out, "r"))
    print(f"complete runs: {', '.join(f'{d:.2f} s' for d in durations)}")

    opened = 0
    for r in range(ROUNDS):
        k = r % len(kinds)
        out = os.path.join(tmp, f"kill{r}.h5")
        p = cache(out, ids, kinds[k])
        delay = rng.uniform(0.0, durations[k] * 1.1)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not os.path.exists(out):
            print(f"round {r}: killed after {delay:.3f} s, before the file was published")
            continue
        wait_unlocked(out)
        n, q = check_prefix(out, refs[k], f"round {r} ({' '.join(kinds[k])}, {delay:.3f} s)")
        opened += 1
        status = "finished" if p.returncode == 0 else "killed"
        print(f"round {r}: {status} after {delay:.3f} s; {q} sequences, {n} rows committed")
        with open(ids) as fh:
            lines = [ln for ln in fh if ln.strip()]
        # A kill can land after the last commit: then there is nothing left to append.
        if r % 5 == 4 and p.returncode != 0 and q < len(lines):
            # finish with --append over the sequences not committed
            rest = os.path.join(tmp, f"rest{r}.txt")
            with open(rest, "w") as fh:
                fh.writelines(lines[q:])
            p2 = cache(out, rest, kinds[k] + ["--append"])
            _, err = p2.communicate()
            assert p2.returncode == 0, f"round {r}: --append failed: {err.decode()}"
            n2, q2 = check_prefix(out, refs[k], f"round {r} after --append", 1e-4)
            assert q2 == len(refs[k]["seq_length"]) and n2 == len(refs[k]["seq_id"]), \
                f"round {r}: --append left {q2} sequences, {n2} rows"
            print(f"round {r}: --append completed the file ({q2} sequences)")
        os.unlink(out)
    assert opened >= ROUNDS // 2, f"only {opened} of {ROUNDS} kills left a file to check"

    # Ctrl-C: exit status 130 after a clean commit; --resume (no --ctx, --hooks or --dtype:
    # the file's, and the pattern's ctx is the corpus's longest line, not the run's) skips
    # the stored sequences and ends with exactly the rows of an uninterrupted run.
    interrupted = 0
    for r in range(6):
        k = r % len(kinds)
        out = os.path.join(tmp, f"int{r}.h5")
        p = cache(out, ids, kinds[k], ctx=False)
        delay = durations[k] * (0.25 + 0.1 * r)
        time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate()
        # finished first: exit 0, or the signal came as the process was exiting after its
        # last message (the handler is gone by then; the file is complete and closed)
        if p.returncode == 0 or (p.returncode == -signal.SIGINT and b"cache: wrote" in err):
            print(f"sigint {r}: finished before the signal ({delay:.2f} s)")
            os.unlink(out)
            continue
        assert p.returncode == 130, f"sigint {r}: exit status {p.returncode}, expected 130: {err.decode()}"
        assert b"--resume" in err, f"sigint {r}: the message does not say how to go on: {err.decode()}"
        interrupted += 1
        n, q = check_prefix(out, refs[k], f"sigint {r} ({' '.join(kinds[k])})")
        rc, err = resume(out, ids)
        assert rc == 0, f"sigint {r}: --resume failed: {err}"
        # rows of the same batches are bit-equal; a compressed run commits whole chunks, so
        # its resumed batches may be cut elsewhere (GEMM rounding)
        atol = 1e-4 if "--compress" in kinds[k] else 0.0
        n2, q2 = check_prefix(out, refs[k], f"sigint {r} after --resume", atol)
        assert q2 == len(refs[k]["seq_length"]) and n2 == len(refs[k]["seq_id"]), \
            f"sigint {r}: --resume left {q2} sequences, {n2} rows"
        print(f"sigint {r}: exit 130 after {delay:.2f} s with {q} sequences; --resume completed it")
        # a complete file: --resume has nothing to do and leaves it byte-identical; another
        # corpus is refused, the file unchanged
        before = snapshot(out)
        rc, err = resume(out, ids)
        assert rc == 0 and "nothing to do" in err, f"sigint {r}: second --resume: {rc} {err}"
        other = os.path.join(tmp, "other.txt")
        with open(other, "w") as fh:
            fh.write("5,6,7\n" * 400)
        rc, err = resume(out, other)
        assert rc == 1 and "not the same corpus" in err, f"sigint {r}: other corpus: {rc} {err}"
        assert snapshot(out) == before, f"sigint {r}: a --resume that did nothing changed the file"
        os.unlink(out)
    assert interrupted >= 3, f"only {interrupted} of 6 SIGINTs landed during the run"
    for ref in refs:
        ref.close()
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a check failed
    print(f"ok: {opened} killed files opened with h5py and held exactly their committed rows")


if __name__ == "__main__":
    main()
