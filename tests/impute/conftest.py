"""Shared tiny tables for the imputer tests."""

import os

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _blas_threads():
    """BLAS threads as deliberate as torch's: on a busy 2-core machine a spinning pool triples MICE's time."""
    with threadpool_limits(int(os.environ.get("RECLLM_TEST_THREADS", "2"))):
        yield


def make_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A small mixed table with learnable structure: occupation follows age, income follows occupation."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, n).astype(float)
    occupation = np.where(age < 30, "student", np.where(age < 55, "engineer", "retired"))
    income = np.select([occupation == "student", occupation == "engineer"], [10.0, 80.0], 30.0) + rng.normal(0, 2, n)
    return pd.DataFrame({
        "age": age,
        "gender": rng.choice(["M", "F"], n),
        "occupation": occupation,
        "income": income.round(1),
        "note": [f"note {i}" for i in range(n)],
    })


def mask_cells(frame: pd.DataFrame, columns: list[str], rate: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for col in columns:
        mask[col] = rng.random(len(frame)) < rate
    return frame.mask(mask), mask


@pytest.fixture
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="session")
def tiny():
    """The 2-layer test llama with the real SmolLM2 tokenizer, built once per session."""
    from recllm.llm import tiny_causal_lm

    return tiny_causal_lm(seed=0)
