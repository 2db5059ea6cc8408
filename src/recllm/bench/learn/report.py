"""Tables, plots and text of docs/results/learn.md from the runs of :mod:`recllm.bench.learn.run`."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.reporting import RUN_STORE_CHANGE
from recllm.learn.defaults import SEQ_SETTINGS
from recllm.eval.report import fmt_ci, fmt_of_peak, format_table, save_plot, write_report
from recllm.eval.stats import paired_bootstrap_diff

METRIC_COLUMNS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")
MAIN_LEARN = "LEARN (shared tower)"
MAIN_SASREC = "SASRec-CE"
SPLIT_ORDER = ("loo", "temporal", "cold_start")

# (commit, what changed in the benchmark's method): the report lists those its previous version did not have.
METHOD_CHANGES: tuple[tuple[str, str], ...] = (
    ("27660ac", "the cold-start split is in time: an item is new when its first interaction falls after a cut, each "
                "test case is one user's first interaction with a new item after the cut, with that user's history "
                "strictly before it (the random-item split gave each user ~11 targets and a history holding later "
                "interactions; it is kept as random_item_cold_start_split and no longer reported); a split with "
                "fewer than 200 test users is marked not informative"),
    RUN_STORE_CHANGE,
    ("4ab96ba", "LEARN's shared tower also over all-MiniLM-L6-v2 item embeddings, with each catalogue's embedding "
                "time on the machine that ran it"),
    ("ac15dd3", "content-kNN baseline row; cold-start splits also ranked among the test period's new items, with a "
                "random row"),
    ("453bb72", "on a cold-start split the sequence models' early stopping ranks validation among that period's new "
                "items (it ranked the whole catalogue, where LEARN's validation NDCG@10 was 0 at every epoch and the "
                "first epoch was kept)"),
    ("2eec310", "full ranking masks every history item, a target the user had already consumed too (it was the one "
                "history item left rankable, which pointed at it; Amazon has re-consumed targets, MovieLens none)"),
    ("2f17161", "simultaneous interactions are ordered by a fixed hash of (user, item), not by file position "
                "(ML-latest and Amazon list their rows by item, so the 'next item' leaned to newer ids); "
                "ML-latest-small's item text no longer holds its tags (most were written after the held-out "
                "interactions)"),
    ("ae0a0d9", "the item vectors are whitened with the statistics of the items the split lets a model know (a "
                "cold-start split's new items took part before)"),
    ("e27abaf", "every model's ± is a bootstrap over the test users; LEARN against SASRec is compared by the "
                "bootstrap over users of seed-averaged figures and the t-interval across seeds, better or worse "
                "only when both agree"),
    ("a49995c", "SASRec, HSTU and LEARN never train against a cold-start split's new items: negatives come from "
                "the items the split lets a model know and a new item is no softmax class (full-softmax CE had "
                "pushed them below random order before they existed)"),
    ("35e38f6", "a split marked not informative keeps its figures but gets no better/worse verdict"),
    ("58657a5", "every sequence model trains to at most 200 epochs with early-stopping patience 50 (were 50 and 10), "
                "both chosen on ML-100K validation curves only in learn-patience.md: at 50 / 10 SASRec-CE and LEARN "
                "stopped before their best validation epoch (they kept 93.8% and 88.8% of it); this is why most "
                "trained rows moved and why fits take several times longer"),
    ("8fde357", "SASRec-CE and HSTU train on a blocked full-softmax cross-entropy, and LEARN on a blocked in-batch "
                "InfoNCE (307b3e0): the same loss without the (positions x catalogue) logits in memory; its sums run "
                "in another order, so float rounding differs, not the method"),
    ("852e47a", "a fit cut off (e.g. by the end of a session) resumes from its last epoch checkpoint and ends where "
                "a fit in one go ends; `*` marks rows with such runs, whose times count only the epochs after the "
                "resume (f50b8a2), and each run records its machine and the share of its threads' cores it had "
                "(a8fb79d)"),
    ("478fd91", "the catalogue-embedding table gives each embedding's GFLOP/s and its fraction of the matmul peak "
                "measured in the same run"),
    ("6f2dcba", "the split table says how many test targets are already in their user's history (masked, a miss "
                "for every model): Amazon's leave-one-out 16 of 348"),
)


def _cold_start_share() -> str:
    import inspect

    from recllm.data.split import cold_start_split

    return f"{inspect.signature(cold_start_split).parameters['test_fraction'].default:.0%}"


COLD_START_TEXT = (
    "cold_start is a split in time (`recllm.data.cold_start_split`): items first seen in the last {share} of the "
    "interactions are new; each test user's one target is their first interaction with a new item, with only what "
    "they did before it as history (validation the same before an earlier cut; training is everything before that "
    "cut). No interaction with a new item is in training and their text takes no part in the whitening of item "
    "vectors, so an ID-only model has no trained vector for them and LEARN scores them from their text alone (their "
    "ids can still be drawn as uniform negatives by SASRec-BCE and LEARN with catalogue negatives, which can only "
    "push them down). (Reports before this one held random items out and gave each user their whole history, "
    "later interactions included: that split leaked the future and is not used.)")


def interval(runs: list[Any], metric: str) -> tuple[float, float, float]:
    """Mean and 95% percentile bootstrap interval over the test users of each user's figure averaged over the seeds
    (:func:`recllm.bench.reporting.users_interval`): the same kind of interval for a seeded model and one without
    randomness, so the ± of one table compare. The seeds' spread (training noise) is in the paired differences."""
    from recllm.bench.reporting import users_interval

    return users_interval({r.seed: r.per_user[metric] for r in runs}, seed=min(r.seed for r in runs))


def times_text(results: list[Any]) -> str:
    """Where the report's times were measured: one machine named, or where each row's are (runs of one report may
    be fitted in several sessions, on different CPUs)."""
    from recllm.bench.reporting import machine_text

    machines = run_machines(results)
    if not machines:
        return ""
    if machines == [machine_text(None)]:
        return "The machine the times were measured on was not recorded (runs stored before it was)."
    if len(machines) == 1:
        return f"Times were measured on {machines[0]}."
    return ("The runs were fitted on several machines, whose speeds differ: `measured on` names the CPU and torch "
            "threads of each row's runs.")


def _group(results: list[Any]) -> dict[tuple[str, str], dict[str, list[Any]]]:
    groups: dict[tuple[str, str], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        groups[(r.dataset, r.split)][r.model].append(r)
    return groups


def run_machines(runs: list[Any]) -> list[str]:
    """The machines (CPU model, threads) the ``runs``' times were measured on, in order of first appearance."""
    from recllm.bench.reporting import machine_text

    return list(dict.fromkeys(machine_text(getattr(r, "machine", None)) for r in runs))


def _table(by_model: dict[str, list[Any]], order: list[str], machine_column: bool = False) -> str:
    """One split's table; ``machine_column``: a "measured on" column (the report's runs span several machines)."""
    rows = []
    for name in order:
        runs = by_model.get(name)
        if not runs:
            continue
        row: dict[str, Any] = {"model": name, "seeds": len(runs)}
        for metric in METRIC_COLUMNS:
            row[metric] = fmt_ci(*interval(runs, metric))
        row["s/epoch"] = _fmt(np.mean([r.epoch_seconds for r in runs]), 2)
        row["fit s"] = _fmt(np.mean([r.fit_seconds for r in runs]), 1) + (
            " *" if any(getattr(r, "resumed_after", 0) for r in runs) else "")
        row["epochs (best)"] = f"{np.mean([r.epochs for r in runs]):.0f} ({np.mean([r.best_epoch for r in runs]):.0f})"
        row["peak MB"] = _fmt(np.mean([r.peak_mb for r in runs]), 0)
        row["core share"] = _fmt(np.mean([getattr(r, "core_share", math.nan) for r in runs]), 2)
        row["measured on"] = "; ".join(run_machines(runs))
        rows.append(row)
    return format_table(rows, ["model", "seeds", *METRIC_COLUMNS, "s/epoch", "fit s", "epochs (best)", "peak MB",
                               "core share", *(["measured on"] if machine_column else [])])


def new_items_table(by_model: dict[str, list[Any]], order: list[str], info: dict[str, Any] | None = None) -> str:
    """A cold-start split ranked among its new items only (metrics ``new:*`` of
    :func:`recllm.bench.learn.run.run_one`), with a random ranking's expected figures when the count is known."""
    from recllm.bench.learn.run import NEW_ITEM_KS, NEW_ITEM_PREFIX

    columns = [f"{m}@{k}" for k in NEW_ITEM_KS for m in ("hr", "ndcg")]
    rows = []
    for name in order:
        runs = [r for r in by_model.get(name, []) if all(NEW_ITEM_PREFIX + c in r.metrics for c in columns)]
        if runs:
            rows.append({"model": name, "seeds": len(runs),
                         **{c: fmt_ci(*interval(runs, NEW_ITEM_PREFIX + c)) for c in columns}})
    if not rows:
        return ""
    n_new = int((info or {}).get("test_items", 0))
    if n_new:  # one target among n_new candidates, each rank equally likely
        expected = {f"hr@{k}": min(k, n_new) / n_new for k in NEW_ITEM_KS}
        expected.update({f"ndcg@{k}": float(np.sum(1 / np.log2(np.arange(2, min(k, n_new) + 2)))) / n_new
                         for k in NEW_ITEM_KS})
        rows.append({"model": "random ranking (expected)", "seeds": "-", **{c: f"{expected[c]:.4f}" for c in columns}})
    return format_table(rows, ["model", "seeds", *columns])


def _fmt(value: float, digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _paired(by_model: dict[str, list[Any]], a: str, b: str, metric: str = "ndcg@10") -> str:
    """Paired bootstrap of ``a - b`` over the same test users, per seed (splits are seeded identically)."""
    parts = []
    for ra in by_model.get(a, []):
        rb = next((r for r in by_model.get(b, []) if r.seed == ra.seed), None)
        if rb is None or len(ra.per_user[metric]) != len(rb.per_user[metric]):
            continue
        d = paired_bootstrap_diff(ra.per_user[metric], rb.per_user[metric], seed=ra.seed)
        parts.append(f"seed {ra.seed}: {d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]")
    return "; ".join(parts) or "n/a"


def _difference(by_model: dict[str, list[Any]], a: str, b: str, metric: str) -> tuple[list[tuple[Any, Any]], str]:
    """The seed pairs of ``a`` and ``b`` and their difference ``a - b`` (:func:`recllm.bench.reporting.compare_seeded`):
    the paired bootstrap over users of each user's seed-averaged difference, and with two or more common seeds the
    t-interval across seeds; the verdict needs both to exclude 0."""
    from recllm.bench.reporting import compare_seeded

    pairs = [(x, y) for x in by_model.get(a, []) for y in by_model.get(b, []) if x.seed == y.seed]
    if not pairs:
        return pairs, "n/a"
    c = compare_seeded({x.seed: x.per_user[metric] for x, _ in pairs}, {y.seed: y.per_user[metric] for _, y in pairs},
                       seed=pairs[0][0].seed)
    text = f"{c.mean:+.4f} [users {c.users.low:+.4f}, {c.users.high:+.4f}]"
    if c.seeds is not None:
        text += f" [seeds {c.seeds.low:+.4f}, {c.seeds.high:+.4f}]"
    return pairs, f"{text} {c.verdict}"


def split_label(info: dict[str, Any] | None) -> str:
    """``"230 test users"``, ``"27 test users, not informative"``: a split's size as the tables show it."""
    if not info:
        return "n/a"
    return f"{info['test_users']} test users" + ("" if info.get("informative", True) else ", not informative")


def summary_table(groups: dict[tuple[str, str], dict[str, list[Any]]], order: list[str], datasets: list[str],
                  metric: str = "ndcg@10", learn: str = MAIN_LEARN,
                  split_info: dict[tuple[str, str], dict[str, Any]] | None = None) -> str:
    """One row per (data set, split): its size, ``learn`` (a LEARN variant), SASRec, their difference (see
    :func:`_difference`) and the best model."""
    rows = []
    label = "LEARN" if learn == MAIN_LEARN else learn
    for dataset in datasets:
        for split in SPLIT_ORDER:
            by_model = groups.get((dataset, split))
            if not by_model or learn not in by_model or MAIN_SASREC not in by_model:
                continue
            pairs, diff = _difference(by_model, learn, MAIN_SASREC, metric)
            means = {m: float(np.mean([r.metrics[metric] for r in by_model[m]])) for m in order if by_model.get(m)}
            best = max(means, key=means.get)
            n_best = len(by_model[best])
            best_seeds = f", {n_best} seed{'s' if n_best > 1 else ''}" if n_best < len(pairs) else ""
            if not (split_info or {}).get((dataset, split), {}).get("informative", True):  # figures, no verdict
                for verdict in ("better", "worse", "not distinguishable"):
                    if diff.endswith(" " + verdict):
                        diff = diff[: -len(verdict)] + "no verdict (too few test users)"
                best_seeds += "; not informative"
            rows.append({"data set": dataset, "split": split,
                         "test users": split_label((split_info or {}).get((dataset, split))), "seeds": len(pairs),
                         f"{label} {metric}": f"{means[learn]:.4f}", f"SASRec {metric}": f"{means[MAIN_SASREC]:.4f}",
                         f"{label} - SASRec (95% CI)": diff, "best model": f"{best} ({means[best]:.4f}{best_seeds})"})
    if not rows:
        return ""
    return format_table(rows, ["data set", "split", "test users", "seeds", f"{label} {metric}", f"SASRec {metric}",
                               f"{label} - SASRec (95% CI)", "best model"]) + "\n"


def _plot(groups: dict[tuple[str, str], dict[str, list[Any]]], dataset: str, order: list[str], path: Path,
          overwrite: bool = False) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    splits = [s for (d, s) in groups if d == dataset]
    if not splits:
        return None
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        by_model = groups[(dataset, split)]
        names = [m for m in order if m in by_model]
        stats = [interval(by_model[m], "ndcg@10") for m in names]
        means = [s[0] for s in stats]
        errs = [max(s[0] - s[1], s[2] - s[0], 0) if not math.isnan(s[1]) else 0 for s in stats]
        colors = ["tab:green" if m.startswith("LEARN") else "tab:blue" for m in names]
        ax.barh(range(len(names)), means, xerr=errs, color=colors)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{dataset} / {split}", fontsize=9)
        ax.set_xlabel("NDCG@10 (95% CI)", fontsize=8)
    fig.tight_layout()
    return save_plot(fig, path, overwrite=overwrite)


def encoder_section(groups: dict[tuple[str, str], dict[str, list[Any]]], specs: list[Any], datasets: list[str],
                    timings: list[Any], split_info: dict[tuple[str, str], dict[str, Any]] | None = None) -> str:
    """The content encoder as a benchmark dimension: the same LEARN model over each encoder's item embeddings
    (quality), then what embedding each catalogue cost (time), so a user can weigh one against the other."""
    from recllm.bench.learn.content import COMPUTE_SAMPLE, ENCODERS

    by_name = {s.name: s for s in specs}
    # model pairs that differ only in their encoder: the SmolLM2 model and its MiniLM twin
    twins = [(a, b) for a in by_name.values() for b in by_name.values()
             if a.encoder and b.encoder and a.encoder != b.encoder and a.encoder == list(ENCODERS)[0]
             and {k: v for k, v in a.settings.items() if k != "content"}
             == {k: v for k, v in b.settings.items() if k != "content"}]
    lines: list[str] = []
    rows = []
    for a, b in twins:
        for dataset in datasets:
            for split in SPLIT_ORDER:
                by_model = groups.get((dataset, split), {})
                if not by_model.get(a.name) or not by_model.get(b.name):
                    continue
                pairs, diff = _difference(by_model, b.name, a.name, "ndcg@10")
                row = {"model": a.name, "data set": dataset, "split": split,
                       "test users": split_label((split_info or {}).get((dataset, split))), "seeds": len(pairs)}
                for spec in (a, b):
                    for metric in ("ndcg@10", "hr@10"):
                        row[f"{ENCODERS[spec.encoder]} {metric}"] = fmt_ci(*interval(by_model[spec.name], metric))
                row["MiniLM - SmolLM2 ndcg@10 (95% CI)"] = diff
                rows.append(row)
    if not rows and not timings:
        return ""
    lines.append("## Content encoder: SmolLM2-135M against all-MiniLM-L6-v2\n")
    names = list(ENCODERS.values())
    if rows:
        lines.append("The same model over each encoder's item-text embeddings (raw vectors whitened the same way); "
                     "the difference as in the summary (bootstrap over users and t-interval across seeds).\n")
        lines.append(format_table(rows, ["model", "data set", "split", "test users", "seeds",
                                         *(f"{n} {m}" for n in names for m in ("ndcg@10", "hr@10")),
                                         "MiniLM - SmolLM2 ndcg@10 (95% CI)"]) + "\n")
    if timings:
        lines.append("### What embedding a catalogue costs\n")
        lines.append("Each catalogue's item texts embedded once by each encoder, fresh (no cache), in the precision "
                     "shown, on the CPU shown; loading the encoder is timed apart. A sampled row embedded that many "
                     "texts and scales the time to the catalogue. Other jobs may have shared the CPU: 'load avg' "
                     "is the 1-minute load average before / after the embedding (up to about the machine's core count "
                     "means the encoder had its threads' cores; more means others slowed it down). 'of peak' is the "
                     "embedding's FLOP/s (matrix products and attention counted by torch's FlopCounterMode on "
                     f"{COMPUTE_SAMPLE} of the texts in a pass of their own, scaled to the catalogue by padded tokens) "
                     "over the matmul peak of its precision at its threads, measured in the same run on the same "
                     "CPU; empty for a row measured before it was.\n")
        trows = [{"data set": t.dataset, "encoder": ENCODERS.get(t.encoder, t.encoder), "items": t.items,
                  "dim": t.dim, "embedding s": f"{t.encode_seconds:.1f}", "items/s": f"{t.items_per_second:.1f}",
                  "GFLOP/s": "" if np.isnan(t.gflops) else f"{t.gflops:.1f}",
                  "of peak": fmt_of_peak(1.0, t.gflops, t.peak_gflops),
                  "load s": f"{t.load_seconds:.1f}",
                  "timed": "whole catalogue" if not t.sample else f"{t.sample} texts, scaled",
                  "precision": t.precision, "threads": t.threads, "CPU": t.cpu, "load avg": t.load_average,
                  "measured": t.measured}
                 for t in sorted(timings, key=lambda t: (datasets.index(t.dataset) if t.dataset in datasets else 99,
                                                         list(ENCODERS).index(t.encoder) if t.encoder in ENCODERS
                                                         else 99))]
        lines.append(format_table(trows, list(trows[0])) + "\n")
    return "\n".join(lines)


def stopping_text(patience: int, epochs: int | None, quick: bool) -> str:
    """Where the report's early-stopping patience and epoch cap come from."""
    from recllm.bench.learn.stopping import DEFAULT_PATIENCE, FULL_EPOCHS, QUICK_EPOCHS

    cap = epochs or (QUICK_EPOCHS if quick else FULL_EPOCHS)
    if (patience, cap) == (DEFAULT_PATIENCE, FULL_EPOCHS):
        return (f"patience {patience}, at most {cap} epochs, both chosen on ML-100K validation curves only in "
                "learn-patience.md")
    return f"patience {patience}, at most {cap} epochs" + (", a quick run's cap" if quick and cap == QUICK_EPOCHS
                                                           else ", as given on the command line")


def write_learn_report(target: Any, results: list[Any], specs: list[Any], datasets: list[str], seeds: list[int],
                       notes: list[str], total_seconds: float, quick: bool, reference: dict[str, Any] | None,
                       runs_path: Path, command: str | None = None, patience: int = 10,
                       split_info: dict[tuple[str, str], dict[str, Any]] | None = None,
                       timings: list[Any] | None = None, epochs: int | None = None) -> Path:
    """Assemble the markdown body and write it at ``target`` (a :class:`recllm.bench.reporting.ReportTarget`) with
    the shared report header. ``split_info``: (data set, split) -> its sizes, whether it is informative and its note
    (:func:`recllm.bench.learn.run.describe_split`); ``timings``: the content encoders' embedding times
    (:class:`recllm.bench.learn.content.ContentTiming`)."""
    from recllm.data.folder import source_files

    path = target.path
    order = [s.name for s in specs]
    groups = _group(results)
    split_info = split_info or {}
    command = command or ("recllm bench learn --quick" if quick else "recllm bench learn")
    body: list[str] = []
    body.append(
        "LEARN (arXiv 2405.03988) on public data: a frozen language model encodes each item's text (SmolLM2-135M, "
        "mean-pooled last hidden states; all-MiniLM-L6-v2 sentence embeddings for the MiniLM row), the vectors are "
        f"PCA-whitened, a causal-transformer user tower ({SEQ_SETTINGS['n_layers']} layers x "
        f"{SEQ_SETTINGS['dim']}) is trained with in-batch "
        "InfoNCE plus the dense all-action loss, and items are retrieved by cosine similarity. Baselines: "
        "popularity, content-kNN (no training: cosine between an item's whitened SmolLM2 vector and the mean of the "
        "history's), SASRec (full-softmax CE; BCE with one negative as in the original paper) and HSTU (pointwise "
        "SiLU attention, full-softmax CE). Full-catalogue ranking, the user's history masked; ranks are "
        "pessimistic: a target tied with other items ranks below them all (so popularity, which scores every item "
        "new in the test period 0, ranks a new target last on the cold-start split; the cold-start tables' random "
        "ranking row is what breaking such ties at random gives); "
        f"early stopping on validation NDCG@10 only ({stopping_text(patience, epochs, quick)}, the same for every "
        "sequence model). Leave-one-out trains on every other interaction, other users' later ones "
        "included, as the usual protocol does; the temporal and cold-start splits train on the past only. "
        "Figures: mean over the seeds with a 95% percentile bootstrap interval over the test users of each user's "
        "figure averaged over the seeds (the same kind of interval for every model; the seeds share one split, so "
        "they differ only in training randomness, whose spread the paired differences show). `s/epoch` is "
        "training time per epoch "
        "(validation excluded), `fit s` the whole fit including validation, `peak MB` the resident memory added "
        "during the fit, `core share` the share of its torch threads' cores the fit had (CPU time over wall time x "
        "threads, n/a where not recorded): below 1 it shared them with other work, and its times are about "
        "1/share those of an idle machine; a fit cut off (e.g. by the end of a session) resumes from its last epoch checkpoint and ends "
        "where a fit in one go ends, and `*` marks a row with such a run, whose `s/epoch`, `fit s` and `peak MB` "
        "count only the epochs after the resume. " + times_text(results) + "\n")
    from recllm.data.split import MIN_TEST_USERS

    body.append(f"{COLD_START_TEXT.format(share=_cold_start_share())} A split with fewer than {MIN_TEST_USERS} test "
                "users is marked not informative.\n")
    body.append("Departures from the paper (and why):\n\n" + "\n".join(f"- {d}" for d in departures()) + "\n")
    if quick:
        from recllm.bench.learn.run import QUICK_EPOCHS

        body.append(f"**Quick mode**: one data set, one seed, at most {QUICK_EPOCHS} epochs, the headline models only; "
                    "encoder times from a sample of texts: a smoke run, not the reported figures. The full run is "
                    "`recllm bench learn` (`--plan` lists its runs and their estimated time).\n")
    fitting = sum(r.fit_seconds for r in results)
    body.append(f"Total benchmark time: {total_seconds / 60:.1f} min (this invocation); fitting the {len(results)} "
                f"runs in this report took {fitting / 3600:.1f} h in all, whenever they were fitted.\n")
    if split_info:
        body.append("## Splits\n")
        rows = [{"data set": d, "split": sp, "test users": i["test_users"], "test cases": i["test_cases"],
                 "validation cases": i["valid_cases"],
                 "informative": "yes" if i["informative"] else "**no**",
                 "note": "; ".join(n for n in (i.get("note"), "no validation case: no early stopping, every model "
                                               "trains to its epoch cap" if not i["valid_cases"] else "") if n)}
                for (d, sp), i in split_info.items()]
        body.append(format_table(rows, list(rows[0])) + "\n")
    summary = summary_table(groups, order, datasets, split_info=split_info)
    if summary:
        body.append(f"## Summary: {MAIN_LEARN} against {MAIN_SASREC} (NDCG@10)\n")
        body.append("Difference: the mean over users of each user's seed-averaged difference, with its 95% paired "
                    "bootstrap interval over users (test-user sampling) and its t-interval across the seeds "
                    "(training randomness); \"better\"/\"worse\" only when both exclude 0 on one side. The best "
                    "model is the highest mean among all models run on that split (an ablation run "
                    "on fewer seeds says so). A split marked not informative has too few test users to compare "
                    "models on.\n")
        body.append(summary)
    for spec in specs:  # a variant made for some data sets: its own summary there
        variant = (summary_table(groups, order, list(spec.datasets), learn=spec.name, split_info=split_info)
                   if spec.datasets else "")
        if variant:
            body.append(f"### {spec.name} against {MAIN_SASREC} (NDCG@10), on {', '.join(spec.datasets)}\n")
            body.append(f"{spec.note[:1].upper()}{spec.note[1:]}.\n" if spec.note else "")
            body.append(variant)
    encoders = encoder_section(groups, specs, datasets, timings or [], split_info)
    if encoders:
        body.append(encoders)
    for dataset in datasets:
        body.append(f"## {dataset}\n")
        for split in SPLIT_ORDER:
            by_model = groups.get((dataset, split))
            if not by_model:
                continue
            info = split_info.get((dataset, split))
            size = split_label(info) if info else (
                f"{by_model[order[0]][0].n_users} test users" if by_model.get(order[0]) else "")
            body.append(f"### {split} ({size})\n")
            if info and not info["informative"]:
                body.append(f"**Not informative**: {info['note']}\n")
            among_new = new_items_table(by_model, order, info) if split == "cold_start" else ""
            if among_new:
                body.append("Full catalogue (every item a candidate, the history masked):\n")
            body.append(_table(by_model, order, machine_column=len(run_machines(results)) > 1) + "\n")
            flat = {m: [r.seed for r in by_model.get(m, []) if getattr(r, "flat_validation", False)] for m in order}
            flat = {m: seeds for m, seeds in flat.items() if seeds}
            if flat:
                which = "; ".join(f"{m} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})"
                                  for m, s in flat.items())
                body.append(f"**No validation signal**: {which}: validation NDCG@10 was 0 at every epoch, so early "
                            "stopping kept the first epoch's weights: those runs are models trained for one epoch.\n")
            if among_new:
                count = f"{info['test_items']} " if info and info.get("test_items") else ""
                body.append(f"Among the {count}items new in the test period only (the usual cold-start protocol: "
                            "the candidates are the items first seen at or after the test cut, so a model is not "
                            "judged on how it ranks old items against new ones):\n")
                body.append(among_new + "\n")
            for learn in [MAIN_LEARN, *(s.name for s in specs if s.datasets and dataset in s.datasets)]:
                body.append(f"Paired NDCG@10 difference {learn} - {MAIN_SASREC} (bootstrap over users, 95%): "
                            f"{_paired(by_model, learn, MAIN_SASREC)}\n")
        plot = _plot(groups, dataset, order, plot_path(path, dataset), target.overwrite)
        if plot is not None:
            body.append(f"![NDCG@10 on {dataset}]({plot.name})\n")
    if reference is not None:
        body.append(reference_section(reference))
    body.append("## Notes\n")
    body += [f"- {n}" for n in notes]
    body += [f"- {d} {sp}: not informative: {i['note']}" for (d, sp), i in split_info.items() if not i["informative"]]
    body += [f"- {s.name}: {s.note}" for s in specs if s.note]
    body.append(f"- per-run figures (timing, memory, epochs): `{runs_path.name}`; per-user metrics: "
                f"`{runs_path.with_suffix('.npz').name}` (a rerun reuses every run whose code, data and settings "
                "match); encoder times: "
                f"`{runs_path.name.replace('.runs.jsonl', '.content.jsonl')}`")
    precision = None
    if any(s.uses_content for s in specs):
        from recllm.llm.precision import describe_precision

        precision = describe_precision()
    return write_report(path, "LEARN vs SASRec, HSTU and popularity (full-catalogue ranking)", command,
                        source_files(datasets), "\n".join(body), seeds=seeds, commit=target.commit,
                        precision=precision, method_changes=METHOD_CHANGES, overwrite=target.overwrite)


def departures() -> list[str]:
    """Where this benchmark's LEARN differs from the paper's (arXiv 2405.03988, PAPERS.md), each with its reason."""
    from recllm.bench.learn.content import DEFAULT_ENCODER, ENCODERS

    layers, dim = SEQ_SETTINGS["n_layers"], SEQ_SETTINGS["dim"]
    others = [name for key, name in ENCODERS.items() if key != DEFAULT_ENCODER]
    return [f"item text encoder {ENCODERS[DEFAULT_ENCODER]} (and {', '.join(others)} beside it) instead of "
            "Baichuan2-7B: the encoders the package bundles, run on a CPU",
            f"a {layers}-layer causal transformer of width {dim} instead of a 12-layer BERT-base-sized one: public "
            "data sets of thousands of users and items, and CPU time",
            "public data (MovieLens, Amazon magazines) with leave-one-out, temporal and time-based cold-start splits "
            "and full-catalogue ranking, instead of the paper's industrial logs and RecFormer's Amazon categories",
            "its losses (in-batch InfoNCE plus the dense all-action loss with the paper's recency weights) kept; "
            "the epochs chosen by early stopping on validation NDCG@10, which the paper does not state"]


def plot_path(path: Path, dataset: str) -> Path:
    """The NDCG@10 plot of ``dataset`` that the report at ``path`` links, written beside it."""
    return path.with_name(f"{path.stem}-{_file_part(dataset)}.png")


def _file_part(dataset: str) -> str:
    """A data set's name as part of a file name: a data folder's path (``./shop``, ``~/data/shop``) by its last
    folder's name."""
    return Path(dataset.rstrip("/\\")).name if "/" in dataset or "\\" in dataset else dataset


def reference_section(ref: dict[str, Any]) -> str:
    """The side-by-side of our SASRec and RecBole's SASRec on the identical ML-100K split."""
    lines = ["## Reference: RecBole 1.2.1 SASRec on the identical ML-100K leave-one-out split\n"]
    if ref.get("error"):
        lines.append(f"Not run: {ref['error']}\n")
        return "\n".join(lines)
    lines.append(ref.get("text", ""))
    return "\n".join(lines) + "\n"

