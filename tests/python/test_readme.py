"""README.md's Python section runs as written: each ```python block, run from the repository
root, prints the ``` block that follows it."""
import re
import subprocess
import sys

from conftest import REPO


def test_readme_python_examples_print_what_the_readme_says():
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", section, re.S)
    assert len(pairs) == 2
    for code, want in pairs:
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout == want, code
