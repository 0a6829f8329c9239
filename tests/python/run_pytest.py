#!/usr/bin/env python3
"""Run the Python package's pytest suite (tests/python) for `meson test python`.

Exit 77 (meson's skip) when numpy, pytest or h5py are missing, unless HK_REQUIRE_PYTEST=1;
pytest's own "no tests ran" (5) is a failure."""
import os
import sys

try:
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import pytest
except ImportError as e:
    if os.environ.get("HK_REQUIRE_PYTEST") == "1":
        print(f"run_pytest.py: {e} (HK_REQUIRE_PYTEST=1)", file=sys.stderr)
        sys.exit(1)
    print(f"run_pytest.py: skipping: {e}")
    sys.exit(77)

args = [sys.argv[1], "-q", "-p", "no:cacheprovider", *sys.argv[2:]]
rc = pytest.main(args)
sys.exit(1 if rc == 5 else int(rc))
