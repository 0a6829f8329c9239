"""README.md's Python section runs as written: each ```python block, run from the repository
root, prints the ``` block that follows it; so do docs/PYTHON.md's SAE examples."""
import re
import subprocess
import sys

from conftest import REPO


def test_readme_python_examples_print_what_the_readme_says():
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    pairs = re.findall(r"```python\n(.*?)```\n\n```\n(.*?)```", section, re.S)
    assert len(pairs) == 3
    for code, want in pairs:
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout == want, code


def test_python_md_sae_examples_print_what_they_say():
    """docs/PYTHON.md's SAE section: its ```python blocks run in order, in one process, and
    print the ``` block that follows the last one."""
    text = (REPO / "docs" / "PYTHON.md").read_text()
    section = text.split("**SAEs**", 1)[1].split("**torch.**", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    want = re.findall(r"```python\n.*?```\n```\n(.*?)```", section, re.S)
    assert len(blocks) == 2 and len(want) == 1
    code = "import hookformer\n" + "".join(blocks)
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout == want[0]
