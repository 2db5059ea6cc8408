"""RecBole's SASRec as a reference point, on exactly the split and protocol recllm's SASRec is measured with.

The ML-100K leave-one-out split is exported as RecBole's pre-augmented benchmark files (train / valid / test;
histories taken from recllm's split, so both libraries order ties identically). ``benchmarks/recbole_sasrec.py`` trains RecBole 1.2.1's SASRec in ``.venv-recbole`` (its own
environment: ``make recbole-reference``) and writes its scores for recllm's test cases; recllm's harness ranks
them, so the two SASRecs are compared on the same users, candidates, masking and metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from recllm.models.base import Recommender

REPO = Path(__file__).resolve().parents[3]
VENV_PYTHON = REPO / ".venv-recbole" / "bin" / "python"
SCRIPT = REPO / "benchmarks" / "recbole_sasrec.py"


class FixedScores(Recommender):
    """Scores computed elsewhere, one row per evaluation case (in case order)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def fit(self, split: Any) -> "FixedScores":
        self.n_items_ = self.scores.shape[1]
        self._row = 0
        return self

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        out = self.scores[self._row:self._row + len(users)]
        self._row += len(users)
        return out


def export_split(split: Any, folder: Path, settings: dict[str, Any], name: str = "recllm-ml100k") -> None:
    """Write RecBole's pre-augmented benchmark files for ``split`` plus ``cases.json`` (test histories).

    RecBole's sequential benchmark format holds one row per target with its history (``item_id_list``, the last
    ``max_len`` items): every prefix of each training sequence (as RecBole's own augmentation makes), the
    validation item after the training sequence, the test item after training + validation. Histories come
    from recllm's ``split.sequences``, so both libraries see the same order, ties included.
    """
    from recllm.data.dataset import ITEM

    max_len = int(settings["max_len"])
    item_ids = split.dataset.items[ITEM].astype(str).tolist()
    user_ids = split.dataset.users["user_id"].astype(str).tolist()
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float"

    def row(u: int, hist: np.ndarray, target: int, t: int) -> str:
        return f"{user_ids[u]}\t{' '.join(item_ids[i] for i in hist[-max_len:])}\t{item_ids[target]}\t{t}"

    train = split.sequences("train")
    lines = {"train": [header], "valid": [header], "test": [header]}
    for u in sorted(train):
        seq = train[u]
        lines["train"] += [row(u, seq[:i], int(seq[i]), i) for i in range(1, len(seq))]
    for stage in ("valid", "test"):
        cases = split.eval_cases(stage)
        for u, hist, targets in zip(cases.users, cases.histories, cases.targets):
            lines[stage] += [row(int(u), hist, int(t), len(hist)) for t in targets]
    target = folder / name
    target.mkdir(parents=True, exist_ok=True)
    for stage, rows in lines.items():
        (target / f"{name}.{stage}.inter").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cases = split.eval_cases("test")
    json_cases = {"name": name, "settings": settings, "catalogue": item_ids,
                  "users": [int(u) for u in cases.users],
                  "histories": [[item_ids[i] for i in h] for h in cases.histories]}
    (folder / "cases.json").write_text(json.dumps(json_cases), encoding="utf-8")


def run_recbole_reference(ours: list[Any], settings: dict[str, Any], epochs: int = 30, seed: int = 0,
                          threads: int = 2, show_progress: bool = False) -> dict[str, Any]:
    """Train RecBole's SASRec on ML-100K leave-one-out and compare it with ``ours`` (recllm SASRec-CE runs)."""
    from recllm.data import load, make_split
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.eval.report import fmt_ci, format_table
    from recllm.eval.stats import bootstrap_ci, paired_bootstrap_diff

    if not VENV_PYTHON.is_file():
        return {"error": f"{VENV_PYTHON.relative_to(REPO)} is missing: build it with `make recbole-reference`"}
    split = make_split(load("ml-100k"), "loo", seed=seed)
    with tempfile.TemporaryDirectory(prefix="recbole-ref-") as tmp:
        folder = Path(tmp)
        export_split(split, folder, settings)
        env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
        start = time.perf_counter()
        proc = subprocess.run([str(VENV_PYTHON), str(SCRIPT), "--dir", str(folder), "--epochs", str(epochs),
                               "--seed", str(seed), "--threads", str(threads)],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"error": f"RecBole run failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}"}
        scores = np.load(folder / "scores.npy")
        info = json.loads((folder / "result.json").read_text())
    cases = split.eval_cases("test")
    theirs = evaluate_full_ranking(FixedScores(scores).fit(split), cases, ks=(10, 50, 200), show_progress=False)
    rows = []
    metrics = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")
    row = {"model": f"RecBole 1.2.1 SASRec (seed {seed})"}
    row.update({m: fmt_ci(*bootstrap_ci(theirs.per_user[m], seed=seed)) for m in metrics})
    row["s/epoch"] = f"{np.mean(info['epoch_seconds']):.1f}"
    row["epochs (best)"] = f"{info['epochs_run']} ({info['best_epoch']})"
    row["fit s"] = f"{info['fit_seconds']:.0f}"
    rows.append(row)
    for run in ours:
        r = {"model": f"recllm SASRec-CE (seed {run.seed})"}
        r.update({m: fmt_ci(*bootstrap_ci(run.per_user[m], seed=run.seed)) for m in metrics})
        r["s/epoch"] = f"{run.epoch_seconds:.1f}"
        r["epochs (best)"] = f"{run.epochs} ({run.best_epoch})"
        r["fit s"] = f"{run.fit_seconds:.0f}"
        rows.append(r)
    table = format_table(rows, ["model", *metrics, "s/epoch", "epochs (best)", "fit s"])
    diffs = []
    for run in ours:
        d = paired_bootstrap_diff(run.per_user["ndcg@10"], theirs.per_user["ndcg@10"], seed=run.seed)
        diffs.append(f"seed {run.seed}: {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    own = info["recbole_test"]
    text = (
        f"Settings shared by both: {json.dumps(settings)}; RecBole trains on every prefix of every training "
        f"sequence (its data augmentation, batch {info['train_batch_size']}), recllm on sliding windows with a loss "
        "at every position; both stop early on validation NDCG@10. RecBole's scores for the test users are "
        "ranked by recllm's harness (same users, candidates, masking). Intervals: bootstrap over test users.\n\n"
        + table + "\n\n"
        f"Paired NDCG@10 difference recllm - RecBole: {'; '.join(diffs)}.\n\n"
        f"RecBole's own evaluator on its test split: {json.dumps({k: round(v, 4) for k, v in own.items()})}. "
        f"RecBole ran with {info['threads']} torch threads; wall time {wall:.0f} s.\n")
    return {"text": text, "recbole": info, "per_user": {m: theirs.per_user[m].tolist() for m in metrics}}
