"""Marker for the distributed tests (Ray, torchrun): deselect them with ``-m "not distributed"``.

The worker scripts beside these tests (``*_worker.py``: run by torchrun and Ray, imported by the tests as modules)
are importable by name: this folder is put on ``sys.path`` once, here.
"""

import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: starts Ray workers or torchrun processes (slower)")
