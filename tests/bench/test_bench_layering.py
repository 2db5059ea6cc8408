"""Import rules: the estimators import nothing from the benchmark layer, and recllm.eval nothing from recllm.llm."""

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "recllm"
ESTIMATOR_PACKAGES = ("impute", "learn", "trsr")
# The demos show the benchmarks' own settings on real data (``recllm demo``): they are entry points like the CLI,
# not part of an estimator, and may read a benchmark's configuration.
ENTRY_POINTS = ("demo.py",)


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` in ``path`` names (relative imports resolved)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def offending(files: list[Path], forbidden: str) -> dict[str, list[str]]:
    found = {}
    for path in files:
        bad = sorted(n for n in imported_modules(path) if n == forbidden or n.startswith(forbidden + "."))
        if bad:
            found[str(path.relative_to(SRC))] = bad
    return found


def test_estimator_packages_import_nothing_from_the_benchmark_layer():
    files = [p for pkg in ESTIMATOR_PACKAGES for p in (SRC / pkg).rglob("*.py") if p.name not in ENTRY_POINTS]
    assert len(files) > 20
    assert offending(files, "recllm.bench") == {}


def test_the_benchmark_layer_imports_no_script():
    """Every benchmark is a module of recllm.bench (``recllm bench <name>``): none imports a loose script module
    (the old ``benchmarks/foundation_*.py`` style, found through ``sys.path``)."""
    files = list((SRC / "bench").rglob("*.py"))
    assert SRC / "bench" / "foundation" / "llm.py" in files
    loose = {str(path.relative_to(SRC)): sorted(n for n in imported_modules(path) if n.startswith(("foundation",
                                                                                                  "benchmarks")))
             for path in files}
    assert {k: v for k, v in loose.items() if v} == {}
    assert not list((SRC.parents[1] / "benchmarks").glob("foundation*.py"))


def test_eval_imports_nothing_from_llm():
    files = list((SRC / "eval").rglob("*.py"))
    assert offending(files, "recllm.llm") == {}


def test_the_checker_finds_imports_where_they_are():
    """The checks above can fail: the same checker finds the benchmark layer's own imports of the two packages."""
    assert offending([SRC / "bench" / "learn" / "run.py"], "recllm.bench") != {}
    assert offending([SRC / "bench" / "trsr" / "run.py"], "recllm.llm") != {}
    assert "recllm.hardware.cpu_model" in imported_modules(SRC / "eval" / "report.py")


def test_importing_the_estimators_and_eval_loads_neither_bench_nor_llm():
    code = ("import sys\n"
            "import recllm.eval, recllm.eval.report, recllm.eval.stats, recllm.eval.ranking\n"
            "assert not [m for m in sys.modules if m.startswith('recllm.llm')], 'eval loaded recllm.llm'\n"
            "from recllm.impute import LLMImputer\nfrom recllm.learn import LEARN\nfrom recllm.trsr import TRSR\n"
            "import recllm.impute.cli, recllm.learn.cli, recllm.trsr.cli\n"
            "print(sorted(m for m in sys.modules if m.startswith('recllm.bench')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
