"""examples/python_tour.py runs as written (the notebook-style example)."""
import subprocess
import sys

from conftest import EXAMPLES


def test_python_tour_runs():
    p = subprocess.run([sys.executable, str(EXAMPLES / "python_tour.py")], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert "gpt2: 2 layers, d_model 64, 52 hook points" in p.stdout
    assert "blocks.1.hook_resid_post" in p.stdout and "hook_resid_pre ('layer', 'pos')" in p.stdout
