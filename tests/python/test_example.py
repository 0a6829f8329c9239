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
    # the SAE cell: spliced in, its points listed, features ranked, evaluated
    assert "SAE at blocks.0.hook_resid_post: d_in 64, d_sae 96" in p.stdout
    assert "'blocks.0.hook_resid_post.hook_sae_acts_post'" in p.stdout
    assert "top features: " in p.stdout and "sae_eval over 14 tokens" in p.stdout
