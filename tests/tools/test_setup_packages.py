#!/usr/bin/env python3
"""scripts/setup.sh installs chromium, clang and Open MPI (test-only packages) for `test` alone.

Runs the script with fake dpkg-query (nothing installed), apt-get (records the install list,
then fails so the script stops before it builds anything) and sudo on PATH, and reads what
`run` and `test` asked apt-get to install.

usage: test_setup_packages.py REPO_ROOT
"""
import os
import subprocess
import sys
import tempfile

FAKES = {
    "dpkg-query": "#!/bin/sh\nexit 1\n",
    "apt-get": '#!/bin/sh\n[ "$1" = update ] && exit 0\n'
               'shift\necho "$@" >> "$HK_FAKE_APT_LOG"\nexit 3\n',
    "sudo": '#!/bin/sh\nexec "$@"\n',
}


def installed_by(root: str, command: str, tmp: str) -> list:
    bin_dir = os.path.join(tmp, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for name, text in FAKES.items():
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    log = os.path.join(tmp, command + ".log")
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
               HK_FAKE_APT_LOG=log)
    r = subprocess.run(["bash", os.path.join(root, "scripts", "setup.sh"), command], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if r.returncode == 0 or not os.path.exists(log):
        sys.exit(f"setup.sh {command}: expected it to stop at the fake apt-get install "
                 f"(status {r.returncode})\n{r.stdout}{r.stderr}")
    with open(log) as f:
        words = f.read().split()
    return [w for w in words if not w.startswith("-")]


def main() -> None:
    root = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        run = installed_by(root, "run", tmp)
        test = installed_by(root, "test", tmp)
    failures = []
    for p in ("libhdf5-dev", "libopenblas-dev", "meson", "gcc", "python3-pip"):
        if p not in run:
            failures.append(f"`setup.sh run` does not install {p} (it installs {run})")
    for p in ("chromium", "clang", "openmpi-bin", "libopenmpi-dev"):
        if p in run:
            failures.append(f"`setup.sh run` installs the test-only package {p}")
        if p not in test:
            failures.append(f"`setup.sh test` does not install {p} (it installs {test})")
    for p in run:
        if p not in test:
            failures.append(f"`setup.sh test` lacks {p}, which `run` installs")
    if failures:
        sys.exit("\n".join(failures))
    print(f"run installs {len(run)} packages, test {len(test)}: "
          f"test-only {sorted(set(test) - set(run))}")


if __name__ == "__main__":
    main()
