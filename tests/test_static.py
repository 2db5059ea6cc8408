"""Mistakes a static check finds before any test reaches the line: an undefined name (``bench trsr --plan`` raised
NameError on ``chosen_lr``, a name its function never imported, whenever an lr was stored), a name ``__all__``
exports but the module lacks, a local read before it is set, ``is`` against a literal, ``== None``."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES = "F821,F822,F823,F632,F701,F702,F704,F706,F707,E711,E712"


def test_no_undefined_names_or_literal_identity_checks():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the dev extra: pip install -e '.[dev]')")
    done = subprocess.run([ruff, "check", "--no-cache", "--isolated", "--select", RULES, "--output-format", "concise",
                           "src", "tests"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
