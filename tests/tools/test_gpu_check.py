#!/usr/bin/env python3
"""scripts/gpu_check.sh --dry-run: the GPU check's pipeline on the CPU at tiny shapes.

1. The dry run passes, writes the report it names on its last line, with every part's row
   (memcheck skipped: no GPU), one comparison row per fixture, the long-context rows and
   the speed table; the transformers rows are skipped and the report says so (--no-peers,
   as in CI without torch).
2. A part that fails makes the script exit 1 and still write the report with the FAIL row
   (a fixture folder whose config.json is broken).
3. The comparer fails on two stores that differ, naming the dataset.
4. A bad --device is a usage error (exit 2).

usage: test_gpu_check.py REPO_ROOT BUILD_DIR
Exits 77 (skip) without h5py/numpy, unless HK_REQUIRE_H5PY=1 (CI)."""
import os
import subprocess
import sys
import tempfile


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def check(cond, what, out=""):
    if not cond:
        print(f"FAIL: {what}\n{out}")
        sys.exit(1)


def main():
    root, build = sys.argv[1], sys.argv[2]
    try:
        import h5py, numpy  # noqa: F401
    except ImportError:
        if os.environ.get("HK_REQUIRE_H5PY") == "1":
            print("h5py/numpy missing and HK_REQUIRE_H5PY=1")
            return 1
        print("skip: h5py/numpy missing")
        return 77
    script = os.path.join(root, "scripts", "gpu_check.sh")
    fixtures = sorted(d for d in os.listdir(os.path.join(root, "tests", "fixtures"))
                      if os.path.isfile(os.path.join(root, "tests", "fixtures", d, "config.json")))
    with tempfile.TemporaryDirectory() as tmp:
        # 1. the whole dry run
        report = os.path.join(tmp, "report.md")
        r = run([script, "--dry-run", "--no-peers", "--build", build, "--report", report])
        out = r.stdout + r.stderr
        check(r.returncode == 0, f"dry run exit {r.returncode}", out)
        check(r.stdout.strip().splitlines()[-1] == report, "last line is the report path", out)
        text = open(report).read()
        for part, st in [("setup", "PASS"), ("build", "PASS"), ("kernels", "PASS"),
                         ("memcheck", "SKIP"), ("fixtures", "PASS"), ("longctx", "PASS"),
                         ("speed", "PASS")]:
            check(f"| {part} | {st} |" in text, f"summary row {part} {st}", text)
        for f in fixtures:
            check(f"| {f} f32 |" in text and f"| {f} f32 | " in text, f"fixture row {f}", text)
        check(text.count(" PASS |  |") >= len(fixtures), "every fixture row passes", text)
        check("hookformer cache --chunk 128" in text, "long-context row", text)
        check("| estimate within 10% of the peak" in text, "estimate row", text)
        check("transformers sdpa / eager | | | | SKIP" in text, "transformers long-context skip", text)
        check("transformers: skipped" in text, "transformers speed skip", text)
        check("| gpt2 (2 layers) |" in text and "| llama (2 layers) |" in text, "speed rows", text)
        check("no CUDA device" in text or "built without CUDA" in text,
              "attention bench ran and found no device (or no module)", text)
        check("result: PASS" in text, "header result", text)

        # 2. a failing part: exit 1, the report still written
        bad = os.path.join(tmp, "fixtures", "broken")
        os.makedirs(bad)
        with open(os.path.join(bad, "config.json"), "w") as f:
            f.write("{\"model_type\": \"gpt2\", \"n_embd\": ")
        report2 = os.path.join(tmp, "report2.md")
        r = run([script, "--dry-run", "--no-peers", "--build", build, "--report", report2,
                 "--only", "fixtures", "--fixtures", os.path.join(tmp, "fixtures")])
        out = r.stdout + r.stderr
        check(r.returncode == 1, f"failing part exit {r.returncode}", out)
        text = open(report2).read()
        check("| fixtures | FAIL |" in text, "FAIL row", text)
        check("| broken | | | | FAIL | no hook list |" in text, "the fixture's row", text)
        check("result: FAIL" in text, "header result FAIL", text)

        # 3. the comparer on two different stores
        hk = os.path.join(build, "tools", "hookformer")
        model = os.path.join(root, "tests", "fixtures", "gpt2")
        for name, toks in [("a", "1,2,3"), ("b", "1,2,4")]:
            r = run([hk, "cache", "--model", model, "--tokens", toks, "--hooks",
                     "blocks.*.hook_resid_post", "--out", os.path.join(tmp, name + ".h5")])
            check(r.returncode == 0, "cache for the comparer", r.stderr)
        cmp = os.path.join(root, "scripts", "gpu_check", "compare_h5.py")
        r = run([sys.executable, cmp, os.path.join(tmp, "a.h5"), os.path.join(tmp, "b.h5"),
                 "--label", "x"])
        check(r.returncode == 1 and "| x | 9 | blocks.1.hook_resid_post |" in r.stdout
              and "FAIL" in r.stdout and "token_id: integer values differ" in r.stdout,
              "comparer fails on different stores", r.stdout + r.stderr)
        r = run([sys.executable, cmp, os.path.join(tmp, "a.h5"), os.path.join(tmp, "a.h5")])
        check(r.returncode == 0 and "PASS" in r.stdout, "comparer passes a store against itself",
              r.stdout + r.stderr)

        # 4. usage
        r = run([script, "--device", "gpu"])
        check(r.returncode == 2 and "is not one of cuda, cpu, test" in r.stderr, "bad --device",
              r.stdout + r.stderr)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
