"""Row <-> text serialisation used by the LLM imputer."""

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from recllm.impute.serialize import cell_answer, cell_prompt, format_value, parse_number, row_text, text_to_row


def test_format_value():
    assert format_value(34.0) == "34"
    assert format_value(np.int64(7)) == "7"
    assert format_value(61833.9) == "61833.9"
    assert format_value(0.1 + 0.2) == "0.30000000000000004"  # exact, so a parsed answer can reproduce it
    assert format_value("  two\nlines ") == "two lines"
    assert format_value(True) == "True"


def test_row_text_skips_missing_and_keeps_order():
    row = {"age": 34.0, "gender": None, "occupation": "engineer", "zip": float("nan")}
    assert row_text(row, ["occupation", "age", "gender", "zip"]) == "occupation is engineer, age is 34"


def test_cell_prompt_and_answer():
    row = {"age": 34.0, "gender": "M", "occupation": None}
    assert cell_prompt(row, "occupation", ["age", "gender", "occupation"]) == "age is 34, gender is M, occupation is"
    assert cell_prompt(row, "age", ["age", "occupation"]) == "age is"
    expected = "Users of a film site.\ngender is M, age is"
    assert cell_prompt(row, "age", ["age", "gender"], context="Users of a film site.") == expected
    assert cell_answer(34.0) == " 34"


def test_text_to_row_handles_commas_in_values():
    text = "title is Godfather, The (1972), year is 1972, genres is Crime|Drama"
    assert text_to_row(text, ["title", "year", "genres"]) == {
        "title": "Godfather, The (1972)", "year": "1972", "genres": "Crime|Drama"}


@given(st.dictionaries(st.sampled_from(["age", "city", "note"]),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1,
                               max_size=12), min_size=1))
def test_round_trip(row):
    columns = ["age", "city", "note"]
    full = {c: row.get(c) for c in columns}
    assert text_to_row(row_text(full, columns), columns) == {c: format_value(v) for c, v in full.items() if v is not None}


def test_parse_number():
    assert parse_number(" 34") == 34.0
    assert parse_number("-1.5x") == -1.5
    assert parse_number("abc") is None
    assert parse_number(" .5") == 0.5
    assert parse_number("") is None
    assert not math.isnan(parse_number("12.") or 0)


def test_the_fit_code_hash_leaves_out_the_command_line_tables():
    """Fixing impute's table reader or command line discards no cached adapter, answer or GReaT fine-tune (the
    exclusion itself is tested with package_source_sha256 in tests/test_utils.py)."""
    from pathlib import Path

    import recllm.impute
    from recllm.impute.base import NOT_FIT_CODE, fit_code_version
    from recllm.utils import package_source_sha256

    assert set(NOT_FIT_CODE) <= {p.name for p in Path(recllm.impute.__file__).parent.iterdir()}
    assert fit_code_version() == package_source_sha256("recllm.impute", exclude=NOT_FIT_CODE)
    assert fit_code_version() != package_source_sha256("recllm.impute")
