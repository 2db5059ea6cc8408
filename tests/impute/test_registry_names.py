"""The command line's imputer names match the registry, and building the parser loads neither torch nor sklearn."""

import subprocess
import sys

from recllm.impute.names import IMPUTER_NAMES
from recllm.impute.registry import IMPUTERS


def test_names_match_registry() -> None:
    assert tuple(IMPUTERS) == IMPUTER_NAMES


def test_parser_imports_no_torch() -> None:
    code = ("import sys, recllm.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
