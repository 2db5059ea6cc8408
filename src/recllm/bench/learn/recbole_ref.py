"""RecBole's SASRec beside ours inside ``recllm bench learn``, read from a finished reference run.

``make recbole-reference`` builds RecBole 1.2.1 in its own environment (``.venv-recbole``), exports recllm's
ML-100K leave-one-out split as RecBole's benchmark files, trains RecBole's SASRec there and saves its scores for
every test user (``benchmarks/recbole_reference``; it also verifies, user by user, that RecBole built exactly our
split, and writes docs/results/recbole_reference.md). This module ranks those saved scores with recllm's harness,
on the benchmark's own split, and sets them beside the benchmark's SASRec-CE runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

DEFAULT_RUN = Path("runs/recbole_reference")
# RecBole's per-user test figures, saved beside the LEARN report the first time they are computed from a run
# folder, so the 2-hour reference survives a machine without the run folder (it is committed with the report)
DEFAULT_STORE = Path("docs/results/learn.recbole.json")
NEEDED = ("manifest.json", "recbole_result.json", "recbole_test_scores.npy")
METRICS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")


def cases_fingerprint(cases: Any) -> str:
    """sha256 of a split's test cases (users, histories, targets): equal only for the identical split."""
    import hashlib

    digest = hashlib.sha256(np.asarray(cases.users, dtype=np.int64).tobytes())
    for history, targets in zip(cases.histories, cases.targets):
        digest.update(np.asarray(history, dtype=np.int64).tobytes() + b"|")
        digest.update(np.asarray(targets, dtype=np.int64).tobytes() + b"#")
    return digest.hexdigest()


def _from_run_dir(split: Any, run_dir: Path, store: Path | None, overwrite: bool = False) -> dict[str, Any]:
    """Rank the run folder's saved scores with recllm's harness; save the per-user figures to ``store`` (checked
    again first: a file recllm did not save there is replaced only with ``overwrite``)."""
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.models import PrecomputedScores
    from recllm.utils import write_json_atomic

    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = json.loads((run_dir / "recbole_result.json").read_text())
    if manifest.get("dataset") != "ml-100k":
        return {"error": f"{run_dir} holds a {manifest.get('dataset')} run; the reference is ML-100K"}
    cases = split.eval_cases("test")
    if manifest.get("test_cases") != cases_fingerprint(cases):  # its scores belong to the split it was exported from
        return {"error": f"{run_dir} was exported from another split than this benchmark's ML-100K leave-one-out "
                         "split (or by a recllm that did not record it): rerun `make recbole-reference`"}
    scores = np.load(run_dir / "recbole_test_scores.npy")
    users = split.dataset.user_index(record["test_users"])
    theirs = evaluate_full_ranking(PrecomputedScores(scores, users).fit(split), cases, ks=(10, 50, 200),
                                   show_progress=False)
    saved = {"manifest": manifest, "record": {k: v for k, v in record.items() if k != "test_users"},
             "split": cases_fingerprint(cases), "per_user": {m: theirs.per_user[m].tolist() for m in METRICS}}
    if store is not None:
        check_reference_store(store, overwrite)
        write_json_atomic(store, saved)
    return saved


def save_reference(run_dir: Path = DEFAULT_RUN, store: Path = DEFAULT_STORE) -> Path:
    """Rank a finished reference run on ``recllm bench learn``'s own ML-100K split and save it to ``store``.

    Called by ``make recbole-reference`` as soon as RecBole has finished, so its hour or more of CPU is committed with the
    LEARN report even when the benchmark itself runs in a later sitting or on another machine.
    """
    from recllm.data import make_split
    from recllm.bench.learn.run import load_dataset

    missing = [name for name in NEEDED if not (run_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{run_dir / missing[0]} not found: run `make recbole-reference` first")
    check_reference_store(store)
    saved = _from_run_dir(make_split(load_dataset("ml-100k"), "loo", seed=0), run_dir, store)
    if "error" in saved:
        raise ValueError(saved["error"])
    return store


STORE_KEYS = frozenset({"manifest", "record", "split", "per_user"})  # what _from_run_dir saves


def _read_store(store: Path) -> dict[str, Any] | None:
    """The saved reference in ``store``, or None when the file is not one (damaged, or not recllm's)."""
    try:
        saved = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return saved if isinstance(saved, dict) and STORE_KEYS <= set(saved) else None


def check_reference_store(store: Path, overwrite: bool = False) -> None:
    """``store`` (the RecBole reference beside a learn report) is absent, a saved reference (rerunning updates it),
    or ``overwrite``; else a one-line :class:`~recllm.errors.UserInputError` naming it. Reads nothing else."""
    from recllm.errors import UserInputError

    if store.is_dir() or (store.exists() and not overwrite and _read_store(store) is None):
        raise UserInputError("a file or folder that is not a RecBole reference recllm saved has the name of the one "
                             "the learn report keeps beside it", str(store),
                             "move it away, choose another --out, or pass --overwrite to replace it")


def _from_store(split: Any, store: Path) -> dict[str, Any]:
    saved = _read_store(store)
    if saved is None:
        return {"error": f"{store} is not a RecBole reference recllm saved (damaged, or another file): move it away "
                         "and rerun `make recbole-reference`"}
    if saved.get("split") != cases_fingerprint(split.eval_cases("test")):
        return {"error": f"{store} was computed on another split than this benchmark's ML-100K leave-one-out "
                         "split: rerun `make recbole-reference` (about 2 h on 2 CPU cores)"}
    return saved


def recbole_reference(ours: list[Any], split: Any, run_dir: Path = DEFAULT_RUN,
                      store: Path | None = None, overwrite: bool = False) -> dict[str, Any]:
    """RecBole's test figures on ``split`` (ML-100K leave-one-out) beside ``ours`` (recllm SASRec-CE runs).

    Reads the run folder of ``make recbole-reference`` when present (and saves RecBole's per-user figures to
    ``store``), else ``store`` when it was computed on the identical split.
    Returns ``{"text": markdown}`` or ``{"error": what is missing and the command that makes it}``.
    """
    from recllm.eval.report import fmt_ci, format_table
    from recllm.eval.stats import bootstrap_ci, paired_bootstrap_diff

    missing = [name for name in NEEDED if not (run_dir / name).is_file()]
    if not missing:
        saved = _from_run_dir(split, run_dir, store, overwrite)
    elif store is not None and store.is_file():
        saved = _from_store(split, store)
    else:
        return {"error": f"{run_dir / missing[0]} not found: run `make recbole-reference` first (about 2 h on "
                         "2 CPU cores: RecBole's SASRec trains at minutes per epoch here)"}
    if "error" in saved:
        return saved
    manifest, record = saved["manifest"], saved["record"]
    theirs = SimpleNamespace(per_user={m: np.asarray(v) for m, v in saved["per_user"].items()})
    seed = int(manifest["settings"].get("seed", 0))
    epochs = record["epoch_seconds"]
    recbole = f"RecBole {record.get('versions', {}).get('recbole', '(version not recorded)')}"
    rows = [{"model": f"{recbole} SASRec (seed {seed})",
             **{m: fmt_ci(*bootstrap_ci(theirs.per_user[m], seed=seed)) for m in METRICS},
             "s/epoch": f"{np.mean(epochs):.1f}", "epochs (best)": f"{len(epochs)} ({record['best_epoch']})",
             "threads": record.get("threads", "")}]
    diffs = []
    for run in ours:
        rows.append({"model": f"recllm SASRec-CE (seed {run.seed})",
                     **{m: fmt_ci(*bootstrap_ci(np.asarray(run.per_user[m]), seed=run.seed)) for m in METRICS},
                     "s/epoch": f"{run.epoch_seconds:.1f}", "epochs (best)": f"{run.epochs} ({run.best_epoch})",
                     "threads": "bench"})
        d = paired_bootstrap_diff(np.asarray(run.per_user["ndcg@10"]), theirs.per_user["ndcg@10"], seed=run.seed)
        diffs.append(f"seed {run.seed}: {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}], p = {d.p_value:.3f}")
    table = format_table(rows, ["model", *METRICS, "s/epoch", "epochs (best)", "threads"])
    settings = {k: v for k, v in manifest["settings"].items() if not k.endswith("batch_size")}
    text = (
        f"RecBole's run (`{record.get('command', 'make recbole-reference')}`, settings {json.dumps(settings, sort_keys=True)}, "
        f"RecBole's defaults) saved its scores for the {len(theirs.per_user['ndcg@10'])} test users; they are ranked "
        "here by recllm's harness on "
        "this benchmark's split (same users, candidates, history masking, ties). Our SASRec-CE rows are this "
        "benchmark's runs with recllm's defaults (dropout 0.2 where RecBole's default is 0.5). The matched-settings "
        "comparison, the per-user check that RecBole built the identical split, and the cross-check against "
        "RecBole's own evaluator are in [recbole_reference.md](recbole_reference.md). RecBole's time per epoch was "
        "measured with the thread count shown, on a loaded machine; intervals: bootstrap over test users.\n\n"
        + table + "\n\n"
        f"Paired NDCG@10 difference recllm - RecBole (bootstrap over users, 95%): {'; '.join(diffs)}.\n")
    return {"text": text}
