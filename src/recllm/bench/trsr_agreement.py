"""How far a faster scoring precision moves the LLM-TRSR rankers' rankings -> docs/results/trsr-agreement.md.

trsr.md's headline tables are scored in the precision the rankers are trained and validated in (float32 where
the CPU has no native bfloat16). A campaign finished over sessions on CPUs with and without native bfloat16 pins
``--precision float32`` so its runs are the same runs on all of them, and then compares no faster precision. This
benchmark measures the comparison on the machine it runs on, for the campaign's seed-0 rankers (zero-shot,
hierarchical and no-summary): it reloads each fine-tuned ranker from its finished SFT folder in this machine's
cache, at the lr the campaign chose (read from the campaign's run store), and never trains -- a ranker the
campaign has not trained here yet is named and skipped. It scores the test rows in the training precision (the
campaign's cached scores where they exist, so the figures are trsr.md's seed-0 figures) and in the faster one,
and reports recall@k beside the mean per-user Spearman correlation and the share of users whose top candidate is
the same. Rows are stored per CPU model, so a later session on another CPU adds its own.

Usage: ``recllm bench trsr-agreement --precision float32 [--only DATASET] [--faster auto] [--trsr-runs PATH]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

NAME = "trsr-agreement"
# (ranker label as in trsr.md, summary mode, fine-tuned): the campaign's seed-0 rankers compared here
RANKERS: tuple[tuple[str, str, bool], ...] = (
    ("LLM zero-shot (hierarchical prompt)", "hierarchical", False),
    ("LLM-TRSR hierarchical", "hierarchical", True),
    ("LLM no summary (TALLRec-style)", "none", True),
)
COLUMNS = ["data set", "ranker", "lr", "test users", "recall@3", "recall@5", "recall@10", "faster precision",
           "Spearman", "same top-1", "CPU"]


class _NotStored(Exception):
    """A grid run the campaign has not stored yet."""


def finished_runs(fitter: Any, label: str, config: Any) -> list[Path]:
    """This machine's finished SFT folders that may hold the run ``label``/``config``: the folder the campaign's
    code at this commit names first, then any other finished ``<label>-*`` folder trained with the same SFT settings
    (lr, seed, schedule). The campaign's folder names hash the whole source of recllm.trsr and recllm.data, so a
    campaign running from an older commit whose estimator code is the same names its folders otherwise; whether a
    folder holds this very run (same base model, LoRA and SFT settings and training examples) is checked by
    ``sft_train`` when it is loaded (:func:`reload_ranker`)."""
    from dataclasses import asdict

    from recllm.bench.trsr.plan import _sft_progress
    from recllm.llm.checkpoints import RESUMABLE_FIELDS

    def settings(sft: dict) -> dict:
        return {k: v for k, v in sft.items() if k not in RESUMABLE_FIELDS}

    named = fitter.run_dir(label, config)
    wanted = settings(json.loads(json.dumps(asdict(config.sft))))
    others = []
    for folder in sorted(named.parent.glob(f"{label}-*")):
        if folder == named or not _sft_progress(folder)[0]:
            continue
        try:
            saved = json.loads((folder / "sft" / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if settings(saved.get("sft", {})) == wanted:
            others.append(folder)
    return ([named] if _sft_progress(named)[0] else []) + others


def reload_ranker(fitter: Any, label: str, config: Any) -> Any:
    """The campaign's fine-tuned ranker ``label``/``config`` loaded from the first of :func:`finished_runs` that
    holds it, or None when none does. Only finished folders are opened, so nothing is trained."""
    from recllm.bench.trsr.run import Fitter

    class InFolder(Fitter):
        def run_dir(self, label: str, config: Any) -> Path:
            return folder

    for folder in finished_runs(fitter, label, config):
        try:
            return InFolder(fitter.data, fitter.sizes, fitter.summarizer_lm, fitter.cache, fitter.lr,
                            fitter.show_progress).fit(label, config)
        except ValueError as exc:  # sft_train: the folder was written by a different run
            if "different run" not in str(exc):
                raise
    return None


def campaign_lr(store: Any, unit: str, fitter: Any, mode: str) -> float | None:
    """The lr the trsr campaign chose for the ``mode`` ranker: from its stored lr unit, else from its stored grid
    runs once that ranker's grid is complete (the same choice :func:`recllm.bench.trsr.run.choose_lr` makes);
    None while the choice is not made. Reads ``store`` only."""
    from recllm.bench.runs import run_key
    from recllm.bench.trsr.run import chosen_lr, choose_lr
    from recllm.bench.trsr.scale import lr_candidates, lr_for

    stored = store.get(unit)
    if stored is not None:
        return lr_for(chosen_lr(stored), mode)

    def read_only(name: str, compute: Any) -> dict:
        piece = store.get(run_key(unit=unit, piece=name))
        if piece is None:
            raise _NotStored(name)
        return piece

    try:
        return float(choose_lr(fitter, lr_candidates(), mode, log=lambda *a: None, piece=read_only)["lr"])
    except _NotStored:
        return None


def measure_dataset(spec: Any, summarizer: Any, cache: Any, campaign: Any, store: Any, faster: str,
                    show_progress: bool = False, log: Any = print, measure: bool = True) -> list[dict[str, Any]]:
    """Per ranker of :data:`RANKERS` on data set ``spec``: its seed-0 recall@k in the training precision and the
    ``faster`` precision's agreement with it on this CPU, or the reason it is not measured here (``"skipped"``),
    then the rows other CPUs stored for the same ranker and settings. Rows are stored in ``store`` per CPU model;
    ``campaign`` is the trsr benchmark's run store (read only). ``measure=False``: nothing is computed (a machine
    with no faster precision), only stored rows are read."""
    from recllm.bench.runs import run_key
    from recllm.bench.trsr.run import (FULL, KS, Fitter, _shape, _unit_key, faster_agreement, inputs_identity,
                                       prepare)
    from recllm.eval import evaluate_sampled
    from recllm.hardware import cpu_model
    from recllm.llm import resolve_dtype
    from recllm.trsr.pipeline import precomputed_score_fn

    data = prepare(spec, FULL, show_progress)
    inputs = inputs_identity(spec, data)
    fitter = Fitter(data, FULL, summarizer, cache, None, show_progress)
    unit = _unit_key("bench-trsr-lr", spec, FULL, inputs, summarizer.fingerprint)
    faster_dtype = resolve_dtype(faster, summarizer.device)
    rows = []
    for label, mode, fine_tune in RANKERS:
        row: dict[str, Any] = {"data set": spec.name, "ranker": label, "lr": None, "test users": len(data.test)}
        if fine_tune:
            lr = campaign_lr(campaign, unit, fitter, mode)
            if lr is None:
                rows.append({**row, "skipped": f"the campaign has not chosen its lr yet (no complete lr grid for "
                             f"this ranker at {summarizer.fingerprint} in {campaign.path.name}; run `recllm bench "
                             "trsr` with the same --precision)"})
                log(f"[{NAME}] {spec.name} {label}: {rows[-1]['skipped']}")
                continue
            run_label, config = f"{mode}-seed0", fitter.config(mode, 0, lr=lr)
            row["lr"] = lr
        else:
            run_label, config = "zero-shot", fitter.config(mode, 0, fine_tune=False)
        settings = dict(task="bench-trsr-agreement", **inputs, dataset=dataclasses.asdict(spec), shape=_shape(FULL),
                        model=summarizer.fingerprint, ranker=label, lr=row["lr"], faster=faster_dtype)
        identity, key = run_key(**settings), run_key(**settings, cpu=cpu_model())  # the same row on any CPU; here
        elsewhere = [other for k in store.keys() if k != key
                     for other in [store.get(k)] if other is not None and other.get("identity") == identity]
        stored = store.get(key)
        if stored is None and not measure:
            rows.append({**row, "skipped": f"not measured on this CPU ({cpu_model()}: no scoring precision faster "
                         f"than the headline's; --faster names one to measure anyway)"})
            rows += [{**row, **other} for other in elsewhere]
            continue
        if stored is None:
            t0 = time.perf_counter()
            model = reload_ranker(fitter, run_label, config) if fine_tune else fitter.fit(run_label, config)
            if model is None:
                reason = ("not trained on this machine yet (no finished seed-0 SFT run of it in this machine's "
                          "cache; this benchmark never trains)")
                rows += [{**row, "skipped": reason}] + [{**row, **other} for other in elsewhere]
                log(f"[{NAME}] {spec.name} {label}: {reason}")
                continue
            scores = model.rank(data.test.histories, list(data.test.candidates))
            result = evaluate_sampled(precomputed_score_fn(data.test, scores), data.test, ks=KS, show_progress=False)
            agreement = faster_agreement(model, data.test, scores, faster)
            stored = {**{f"recall@{k}": float(result.per_user[f"recall@{k}"].mean()) for k in KS},
                      "faster precision": agreement["dtype"] if agreement else None,
                      "Spearman": agreement["spearman"] if agreement else None,
                      "same top-1": agreement["same_top1"] if agreement else None,
                      "CPU": cpu_model(), "seconds": time.perf_counter() - t0, "identity": identity}
            store.put(key, stored)
        rows += [{**row, **stored}] + [{**row, **other} for other in elsewhere]
        log(f"[{NAME}] {spec.name} {label}: Spearman {stored['Spearman']}, same top-1 {stored['same top-1']}")
    return rows


def report_body(rows: list[dict[str, Any]], precision: str, faster: str) -> str:
    """The report: the measured rows' table, then each skipped ranker with its reason."""
    from recllm.eval.report import format_table
    from recllm.llm.precision import TRAINING_DTYPE

    measured = [r for r in rows if "skipped" not in r]
    skipped = [r for r in rows if "skipped" in r]
    lines = [
        "Seed-0 rankers of the trsr campaign (`recllm bench trsr`), reloaded from their finished SFT runs on the "
        "machine of each row's CPU, at the lr the campaign chose; nothing is trained here (a row per CPU that "
        "measured it: rows of other CPUs are kept). *recall@k*: on the campaign's test rows "
        "(the next item among 20 fixed random negatives), scored in the precision the rankers were trained and "
        f"validated in ({TRAINING_DTYPE}), as in trsr.md's headline tables. The summaries are generated in {precision}, as "
        f"the campaign's. *Faster precision* ({faster} asked): the precision the same adapter is scored in to save "
        "time; *Spearman*: the mean over test users of the Spearman correlation between the two precisions' scores "
        "of the user's 21 candidates; *same top-1*: the share of users whose top candidate is the same in both. "
        "1.000 / 1.000 would mean the faster precision ranks exactly as the headline.",
        "",
    ]
    lines.append(format_table(measured, COLUMNS, digits=3) if measured else "No ranker could be measured yet.")
    if skipped:
        lines += ["", "Not measured:", ""]
        lines += [f"- {r['data set']}, {r['ranker']}: {r['skipped']}." for r in skipped]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from recllm.bench.carried import CarriedCache
    from recllm.bench.runs import RunStore
    from recllm.bench.trsr.run import benchmark_specs
    from recllm.data import data_files
    from recllm.errors import UserInputError
    from recllm.eval.report import write_report
    from recllm.llm import describe_precision, load_causal_lm, resolve_dtype
    from recllm.llm.precision import TRAINING_DTYPE, check_dtype
    from recllm.utils import set_threads

    check_dtype(args.precision, "--precision")
    check_dtype(args.faster, "--faster")
    datasets = args.only or args.datasets
    specs = benchmark_specs(datasets)
    target = args.report
    runs = Path(args.trsr_runs) if args.trsr_runs else target.path.with_name("trsr.runs.jsonl")
    if not runs.is_file():
        raise UserInputError(f"no trsr run store at {runs}", "--trsr-runs",
                             "give the trsr campaign's trsr.runs.jsonl (its lr choices are read from it)")
    measure = resolve_dtype(args.faster) != resolve_dtype(TRAINING_DTYPE)
    if not measure:
        print(f"[{NAME}] this machine offers no scoring precision faster than {TRAINING_DTYPE} (--faster "
              f"{args.faster} resolves to it here): the report shows the rows other CPUs stored, and --faster "
              "bfloat16 measures the emulated one (slow)", flush=True)
    campaign = RunStore(runs)  # the stores are read (or refused) before the model loads
    # summaries generated here are carried beside the campaign's store, as the campaign's own are
    cache = CarriedCache(runs.with_name(runs.name.replace(".runs.jsonl", ".texts.jsonl")))
    store = RunStore(target.path.with_suffix(".runs.jsonl"))
    set_threads(args.threads)
    summarizer = load_causal_lm(None, dtype=args.precision)
    rows = []
    for spec in specs:
        rows += measure_dataset(spec, summarizer, cache, campaign, store, args.faster, show_progress=not args.quiet,
                                measure=measure)
    write_report(target.path, "LLM-TRSR: a faster scoring precision's rank agreement with the headline scores",
                 args.command, data_files([s.name for s in specs]), report_body(rows, args.precision, args.faster),
                 seeds=[0], commit=target.commit, precision=describe_precision(args.precision, summarizer.device),
                 overwrite=target.overwrite)
    print(f"[{NAME}] wrote {target.path}", flush=True)
    return 0


def register_cli(bench: argparse._SubParsersAction) -> None:
    """Add ``recllm bench trsr-agreement``."""
    from recllm.bench.reporting import add_report_args
    from recllm.cli_args import thread_count

    b = bench.add_parser(NAME, help="a faster scoring precision's rank agreement with trsr.md's headline scores, on "
                         "the campaign's seed-0 rankers -> docs/results/trsr-agreement.md")
    b.add_argument("--datasets", nargs="+", default=None, help="subset of the trsr benchmark's data sets")
    b.add_argument("--only", nargs=1, default=None, metavar="DATASET", help="one data set")
    b.add_argument("--precision", default="auto",
                   help="the summarizer's precision: the campaign's (its --precision; float32 for a campaign spread "
                   "over CPUs), else its lr choices and SFT runs are not found")
    b.add_argument("--faster", default="auto",
                   help="the faster scoring precision compared: auto (the machine's, as `recllm llm check` prints) "
                   "or a named one")
    b.add_argument("--trsr-runs", default=None, metavar="PATH",
                   help="the trsr campaign's run store (default: trsr.runs.jsonl beside the report)")
    b.add_argument("--threads", type=thread_count, default=0, help="torch / BLAS threads (0: library default)")
    b.add_argument("--quiet", action="store_true")
    add_report_args(b, "trsr-agreement.md", _run, stores=(".runs.jsonl",))
