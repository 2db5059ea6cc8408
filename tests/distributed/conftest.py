"""Marker for the distributed tests (Ray, torchrun): deselect them with ``-m "not distributed"``."""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "distributed: starts Ray workers or torchrun processes (slower)")
