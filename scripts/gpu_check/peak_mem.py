#!/usr/bin/env python3
"""Run a command and print its peak memory: device memory on a GPU, else resident memory.

  peak_mem.py [--gpu] [--log FILE] -- CMD [ARG...]

--gpu: `nvidia-smi --query-gpu=memory.used -lms 50` samples GPU 0 while the command runs;
the peak is the highest sample minus the one before the command started (so it holds the
command's CUDA context, as `hookformer estimate --device cuda` counts it). Without --gpu: the
child's peak resident set size (getrusage ru_maxrss). Prints one line
  peak_mib=P wall_s=T rc=R mode=gpu|rss
and exits with the command's status. stdout and stderr of the command go to --log (default:
this process's). Standard library only."""
import argparse
import resource
import subprocess
import sys
import threading
import time


def smi_sampler():
    cmd = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
    base = int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[0])
    p = subprocess.Popen(cmd + ["-lms", "50"], stdout=subprocess.PIPE, text=True)
    peak = [base]

    def read():
        for line in p.stdout:
            try:
                peak[0] = max(peak[0], int(line.split()[0]))
            except (ValueError, IndexError):
                pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return base, peak, p, t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--log")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    out = open(a.log, "ab") if a.log else None
    sampler = smi_sampler() if a.gpu else None
    t0 = time.monotonic()
    rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT if out else None).returncode
    wall = time.monotonic() - t0
    if sampler:
        base, peak, p, t = sampler
        time.sleep(0.2)
        p.terminate()
        p.wait()
        t.join(1)
        mib = peak[0] - base
    else:
        mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    print(f"peak_mib={mib:.1f} wall_s={wall:.2f} rc={rc} mode={'gpu' if a.gpu else 'rss'}")
    sys.stdout.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
