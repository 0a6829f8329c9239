"""Shared helpers of the Python package's tests.

The tests import `hookformer` from wherever Python finds it: `meson test python` puts
python/ on PYTHONPATH and points HOOKFORMER_LIBRARY at the build's libhookformer.so;
scripts/setup.sh test runs them again on the pip-installed package. HK_CLI (the hookformer
executable), HK_FIXTURES and HK_ABI_LAYOUT default to the repository's build/ paths."""

import json
import os
import struct
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import hookformer as hf

REPO = Path(__file__).resolve().parents[2]
FIX = Path(os.environ.get("HK_FIXTURES", REPO / "tests" / "fixtures"))
CLI = Path(os.environ.get("HK_CLI", REPO / "build" / "tools" / "hookformer"))
ABI_LAYOUT = Path(os.environ.get("HK_ABI_LAYOUT", REPO / "build" / "tests" / "python" / "abi_layout"))
EXAMPLES = Path(os.environ.get("HK_EXAMPLES", REPO / "examples"))
SMOLLM2 = Path.home() / ".cache" / "hookformer" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "F64": np.float64}


def read_safetensors(path):
    """name -> numpy array of a .safetensors file (the format: u64 header length, JSON, data)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b],
                                  _ST_DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def cli(*args, check=True):
    """Run the hookformer CLI; its stdout (CompletedProcess when check is False)."""
    if not CLI.is_file():
        pytest.fail(f"{CLI}: no hookformer executable (build it, or set HK_CLI)")
    p = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True)
    if not check:
        return p
    assert p.returncode == 0, f"hookformer {' '.join(map(str, args))}: {p.stderr}"
    return p.stdout


def in_threads(work, n):
    """Run work() in n threads at once; the exceptions any of them raised, [] when none."""
    errors = []

    def guarded():
        try:
            work()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=guarded) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


@pytest.fixture(scope="session")
def gpt2():
    return hf.load(FIX / "gpt2")


@pytest.fixture(scope="session")
def llama():
    return hf.load(FIX / "llama")


@pytest.fixture(scope="session")
def bert_body():
    return hf.load(FIX / "bert_body")


@pytest.fixture(scope="session")
def smollm2():
    if not SMOLLM2.is_file():
        pytest.skip(f"{SMOLLM2} not fetched (scripts/fetch_models.sh smollm2)")
    return hf.load(SMOLLM2)


PROMPT = np.array([[227, 187, 164, 39, 225, 23]], np.int64)  # the README's generate prompt
