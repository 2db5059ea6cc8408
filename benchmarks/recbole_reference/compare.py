"""Our SASRec beside RecBole's on the identical split and protocol; writes docs/results/recbole_reference.md.

Needs a run folder where ``export_split`` and ``run_recbole.py`` have finished. It (1) checks RecBole's datasets
against a freshly made recllm split for every user (:mod:`verify`), (2) ranks RecBole's test scores with
recllm's harness (full catalogue, history items masked, pessimistic ties) so both implementations get their
figures and bootstrap CIs from the same numpy code, (3) cross-checks that harness against RecBole's own
evaluator (its protocol masks nothing for sequential models), (4) trains our SASRec from the registry with
RecBole's settings (and with its own defaults), timing epochs at the same thread count, and (5) writes the report.

Run: ``python -m benchmarks.recbole_reference.compare --dir runs/recbole_reference`` (or ``make recbole-reference``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.recbole_reference.export_split import DEFAULT_OUT, ReferenceSettings, portable_command
from benchmarks.recbole_reference.report import write_reference_report
from benchmarks.recbole_reference.verify import check_view, tie_counts
from recllm.data import EvalCases, Split
from recllm.eval import RankingResult, evaluate_full_ranking, paired_bootstrap_diff
from recllm.bench.learn.recbole_ref import DEFAULT_STORE, save_reference
from recllm.models import MODELS, PrecomputedScores

KS = (10, 50)
# Our SASRec: with RecBole's settings and RecBole's epoch cap; the same settings without the cap (our default
# max_epochs and patience), which isolates the cap; and our own defaults (which differ from that only in dropout).
VARIANTS = {
    "matched": "recllm SASRec (RecBole settings)",
    "matched_uncapped": "recllm SASRec (RecBole settings, no epoch cap)",
    "defaults": "recllm SASRec (its defaults, no epoch cap)",
}
REPORT = "docs/results/recbole_reference.md"


@dataclass
class Outcome:
    """One implementation's test figures and training record."""

    name: str
    result: RankingResult
    epochs_run: int
    best_epoch: int | None
    epoch_seconds: float
    valid_ndcg: list[float]
    params: dict[str, Any]
    n_parameters: int = 0
    patience: int = 0
    max_epochs: int = 0

    @property
    def stopped_by(self) -> str:
        """Why training ended: early stopping (``patience`` epochs without improvement) or the epoch cap."""
        if self.best_epoch is not None and self.epochs_run - self.best_epoch >= self.patience:
            return "early stopping" + (" (at the epoch cap)" if self.epochs_run >= self.max_epochs else "")
        return "epoch cap" if self.epochs_run >= self.max_epochs else "other (time budget)"


def our_params(variant: str, s: ReferenceSettings, show_progress: bool) -> dict[str, Any]:
    """Constructor arguments of our SASRec for one of :data:`VARIANTS`."""
    matched = {"dim": s.dim, "n_layers": s.n_layers, "n_heads": s.n_heads, "max_len": s.max_len,
               "dropout": s.dropout, "loss": "ce", "lr": s.lr, "weight_decay": 0.0, "batch_size": s.ours_batch_size,
               "seed": s.seed, "show_progress": show_progress}
    if variant == "matched":
        return {**matched, "max_epochs": s.epochs, "patience": s.patience}
    if variant == "matched_uncapped":
        return matched
    if variant == "defaults":
        return {"seed": s.seed, "show_progress": show_progress}
    raise ValueError(f"unknown variant {variant!r}; choose from {list(VARIANTS)}")


def run_ours(split: Split, variant: str, s: ReferenceSettings, show_progress: bool) -> Outcome:
    params = our_params(variant, s, show_progress)
    model = MODELS["sasrec"](**params).fit(split)
    result = evaluate_full_ranking(model, split.eval_cases("test"), ks=KS, show_progress=False)
    return Outcome(VARIANTS[variant], result,
                   len(model.history_), model.best_epoch_, model.epoch_seconds_,
                   [r["valid_ndcg@10"] for r in model.history_ if "valid_ndcg@10" in r], model.get_params(),
                   sum(p.numel() for p in model.net_.parameters()), model.config.patience, model.config.max_epochs)


def recbole_outcome(split: Split, run_dir: Path, record: dict[str, Any],
                    settings: ReferenceSettings) -> tuple[Outcome, RankingResult]:
    """RecBole's test scores ranked by recllm's harness: with history masking (our protocol) and without (its own)."""
    scores = np.load(run_dir / "recbole_test_scores.npy")
    users = split.dataset.user_index(record["test_users"])
    model = PrecomputedScores(scores, users).fit(split)
    cases = split.eval_cases("test")
    masked = evaluate_full_ranking(model, cases, ks=KS, show_progress=False)
    bare = EvalCases(cases.users, [np.empty(0, np.int64) for _ in cases.users], cases.targets)
    unmasked = evaluate_full_ranking(model, bare, ks=KS, show_progress=False)
    valid = [r["ndcg@10"] for r in record["valid_per_epoch"]]
    outcome = Outcome("RecBole 1.2.1 SASRec", masked, len(record["epoch_seconds"]), record["best_epoch"],
                      float(np.mean(record["epoch_seconds"])), valid, {}, record["n_parameters"],
                      settings.patience, settings.epochs)
    return outcome, unmasked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare recllm's SASRec with RecBole's on the same split.")
    parser.add_argument("--dir", default=DEFAULT_OUT, help=f"run folder (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (use the same as run_recbole.py)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS,
                        help="our SASRec with RecBole's settings (matched) and/or with its own defaults")
    parser.add_argument("--report", default=REPORT, help=f"markdown file to write (default {REPORT})")
    parser.add_argument("--command", default=None, help="command line recorded in the report header")
    parser.add_argument("--store", default=str(DEFAULT_STORE),
                        help=f"where RecBole's per-user figures are saved for recllm bench learn (default {DEFAULT_STORE})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    from recllm.data import leave_one_out, load
    from recllm.data.files import data_files
    from recllm.utils import set_threads

    set_threads(args.threads)
    run_dir = Path(args.dir)
    for needed in ("manifest.json", "recbole_view.npz", "recbole_result.json", "recbole_test_scores.npy"):
        if not (run_dir / needed).is_file():
            parser.error(f"{run_dir / needed} not found: run export_split and run_recbole.py (make recbole-reference)")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    record = json.loads((run_dir / "recbole_result.json").read_text())
    settings = ReferenceSettings(**manifest["settings"])
    split = leave_one_out(load(manifest["dataset"], show_progress=False))

    checks = check_view(split, dict(np.load(run_dir / "recbole_view.npz")), settings.max_len)
    bad = [c for c in checks if not c.ok]
    if bad:
        raise SystemExit("RecBole did not build recllm's split: " + "; ".join(
            f"{c.stage}: {len(c.mismatched_users)} users differ ({c.example}), rows {c.rows_recllm} vs "
            f"{c.rows_recbole}" for c in bad))

    recbole, unmasked = recbole_outcome(split, run_dir, record, settings)
    print(f"saved RecBole's per-user figures for recllm bench learn to {save_reference(run_dir, Path(args.store))}",
          flush=True)
    ours, load_avg = [], {"before": os.getloadavg()}
    started = time.perf_counter()
    for variant in args.variants:
        ours.append(run_ours(split, variant, settings, not args.no_progress))
        print(f"{ours[-1].name}: {ours[-1].epochs_run} epochs, {ours[-1].epoch_seconds:.2f} s/epoch, "
              f"test {ours[-1].result.mean()['ndcg@10']:.4f} NDCG@10", flush=True)
    load_avg["after"] = os.getloadavg()
    diffs = {o.name: {m: paired_bootstrap_diff(o.result.per_user[m], recbole.result.per_user[m], seed=settings.seed)
                      for m in ("hr@10", "ndcg@10", "hr@50", "ndcg@50")} for o in ours}
    compare_command = portable_command(["python -m benchmarks.recbole_reference.compare",
                                        *(sys.argv[1:] if argv is None else argv)])
    command = args.command or compare_command
    path = write_reference_report(
        args.report, command=command, data_paths=data_files([manifest["dataset"]]), manifest=manifest, record=record,
        settings=settings, recbole=recbole, recbole_unmasked=unmasked, ours=ours, diffs=diffs, checks=checks,
        ties=tie_counts(split, settings.max_len), threads=args.threads, load_avg=load_avg,
        ours_seconds=time.perf_counter() - started, compare_command=compare_command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
