"""The imputation benchmark's report: tables (mean ± 95% CI over seeds), LLM-vs-classic verdicts, costs, plots."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.reporting import RUN_STORE_CHANGE
from recllm.eval.report import fmt_ci, fmt_over_runs, format_table, save_plot, write_report
from recllm.eval.stats import interval_over_runs, paired_difference
from recllm.bench.impute.run import FINE_TUNED, REFERENCE_LABELS, SHARED_REFERENCES
from recllm.bench.impute.tasks import TABLES, TASKS

LOWER_IS_BETTER = ("rmse", "nrmse", "mae", "mse")

# (commit, what changed in the benchmark's method): the report lists those its previous version did not have.
METHOD_CHANGES: tuple[tuple[str, str], ...] = (
    ("61ea82b", "every imputer writes only the missing cells into a copy of the table (observed cells as given)"),
    RUN_STORE_CHANGE,
    ("00d4ea3", "the LLM imputer trains whole-row on every observed cell (it was a 256-cell sample), epochs (up to 3) "
                "chosen on held-out observed cells; numeric columns of at most 20 whole-number codes are filled with "
                "an observed code by every imputer"),
    ("d4473c3", "peers side by side: miceforest (LightGBM MICE) and GReaT (be-great on the SmolLM2 folder)"),
    ("6b20c9e", "the LLM imputer and GReaT fine-tune once per table and seed on the cells observed in every "
                "missingness setting; GReaT at MCAR 20% only, under the LLM imputer's step budget"),
    ("261e00e", "miceforest fills with its forest's prediction (a point fill, like the other imputers) instead of one "
                "draw among the 5 nearest observed values"),
    ("af9a1ee", "the LLM imputer and GReaT fine-tune per masked table, on every observed cell of it (the shared fit "
                "trained on the ~40% of cells no setting masks, with high values under-represented by the MNAR mask), "
                "at MCAR 20% only, as GReaT (6ba3058; --llm-all-settings for every setting)"),
)


def _label(setting: list[Any] | tuple[Any, ...]) -> str:
    if setting[0] == "complete":
        return "complete"
    return f"{str(setting[0]).upper()} {int(round(float(setting[1]) * 100))}%"


def _name(imputer: str) -> str:
    """An imputer as the report names it (a shared-fit reference by its label)."""
    return REFERENCE_LABELS.get(imputer, imputer)


def _ci(by_seed: dict[int, float] | list[float], digits: int = 4) -> str:
    return fmt_over_runs(list(by_seed.values()) if isinstance(by_seed, dict) else by_seed, digits)


def _lower_better(metric: str) -> bool:
    return metric.split(":")[-1] in LOWER_IS_BETTER


Values = dict[tuple[str, str, str, str], dict[int, float]]


def _downstream(rows: list[dict[str, Any]]) -> Values:
    """(task, metric, setting label, imputer) -> {seed: value}."""
    out: Values = defaultdict(dict)
    for row in rows:
        for task, values in row["tasks"].items():
            for metric, value in values.items():
                out[(task, metric, _label(row["setting"]), row["imputer"])][int(row["seed"])] = float(value)
    return out


def _imputation(rows: list[dict[str, Any]]) -> Values:
    """(table, column:metric, setting label, imputer) -> {seed: value}."""
    out: Values = defaultdict(dict)
    for row in rows:
        for table, scores in row["scores"].items():
            for metric, value in scores.items():
                out[(table, metric, _label(row["setting"]), row["imputer"])][int(row["seed"])] = float(value)
    return out


def _paired(values: Values, key_a: tuple, key_b: tuple, lower_better: bool) -> tuple[str, str]:
    """Mean difference a - b over the seeds both have (paired by seed) with its CI, and a verdict for a (wins /
    loses / tie; ahead / behind with one seed)."""
    a, b = values.get(key_a, {}), values.get(key_b, {})
    seeds = sorted(set(a) & set(b))
    n = len(seeds)
    if n == 0:
        return "", ""
    ci = paired_difference([a[s] for s in seeds], [b[s] for s in seeds])
    text = fmt_ci(ci.mean, ci.low, ci.high, 4) if n > 1 else f"{ci.mean:+.4f} (1 seed)"
    good = -1 if lower_better else 1
    if n > 1 and not (math.isnan(ci.low) or ci.low <= 0 <= ci.high):
        verdict = "wins" if ci.mean * good > 0 else "loses"
    elif n == 1:
        verdict = ("ahead" if ci.mean * good > 0 else "behind" if ci.mean * good < 0 else "tie") + " (no CI)"
    else:
        verdict = "tie"
    return text, verdict


# what the LLM imputer is compared with, when they ran; a shared-fit reference (the same cells as the LLM's shared
# fit) before the same imputer on each setting's own masked table
OTHERS = ("mice-shared", "mice", "miceforest-shared", "miceforest", "knn", "great")
PRIMARY_ORDER = ("jaccard", "accuracy", "nrmse")  # a masked column's headline metric: the first it has


def _others(rows: list[dict[str, Any]]) -> list[str]:
    ran = {row["imputer"] for row in rows}
    return [o for o in OTHERS if o in ran]


def _headlines(imp: Values) -> set[tuple[str, str]]:
    """(table or task, metric) of the one headline metric per masked column (:func:`_primary_metrics`) and per
    downstream task (its ``primary``)."""
    out = {(table, metric) for (table, _), metric in _primary_metrics(imp).items()}
    return out | {(task.name, task.primary) for tasks in TASKS.values() for task in tasks}


def _verdicts(rows: list[dict[str, Any]], settings: list[str]) -> str:
    down, imp = _downstream(rows), _imputation(rows)
    others = _others(rows)
    headlines = _headlines(imp)
    lines = []
    wanted = [(f"{task.name} {metric}", down, task.name, metric) for tasks in TASKS.values() for task in tasks
              for metric in task.metrics]
    wanted += [(f"{table} {metric}", imp, table, metric) for table, metric in sorted({(t, m) for (t, m, _, _) in imp})]
    for what, values, name, metric in wanted:
        for setting in settings:
            row = {"what": what, "setting": setting, "headline": "yes" if (name, metric) in headlines else ""}
            for other in others:
                row[f"llm - {_name(other)}"], row[f"vs {_name(other)}"] = _paired(
                    values, (name, metric, setting, "llm"), (name, metric, setting, other), _lower_better(metric))
            if any(row[f"llm - {_name(o)}"] for o in others):
                lines.append(row)
    if not lines:
        return "_(the LLM imputer was not part of this run)_\n"
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in lines:
        for other in others if row["headline"] else ():
            counts[(other, row[f"vs {_name(other)}"].split(" ")[0])] += 1
    summary = ", ".join(f"vs {_name(o)}: {counts[(o, 'wins')] + counts[(o, 'ahead')]} ahead/wins, "
                        f"{counts[(o, 'loses')] + counts[(o, 'behind')]} behind/loses, {counts[(o, 'tie')]} ties"
                        for o in others)
    text = (f"Differences are LLM minus the other imputer, paired by seed (mean ± 95% t-interval over the seeds both "
            f"ran); a verdict needs the interval to exclude 0. Count, over the headline rows only (one metric per "
            f"masked column -- jaccard, else accuracy, else nRMSE -- and each task's primary metric, per setting; "
            f"the other metrics are shown, not counted): {summary}. The shared-fit references (MICE / miceforest "
            f"fitted on the cells the LLM imputer's shared fit trained on) score masked cells only, no DLRM.\n\n")
    cols = ["what", "setting", "headline", *[c for o in others for c in (f"llm - {_name(o)}", f"vs {_name(o)}")]]
    return text + format_table(lines, cols) + "\n"


def _primary_metrics(imp: Values) -> dict[tuple[str, str], str]:
    """(table, column) -> its headline metric key (``column:metric``), the first of :data:`PRIMARY_ORDER` scored."""
    have = {(t, m) for (t, m, _, _) in imp}
    out: dict[tuple[str, str], str] = {}
    for table, metric in sorted(have):
        column = metric.split(":")[0]
        for kind in PRIMARY_ORDER:
            if (table, f"{column}:{kind}") in have:
                out[(table, column)] = f"{column}:{kind}"
                break
    return out


def _compare(values: Values, items: list[tuple[str, str, str]], a: str, b: str) -> dict[str, list[Any]]:
    """Paired verdicts of ``a`` against ``b`` over ``items`` ((name, metric, setting)): labels by outcome, and the
    number of seeds each comparison paired (``"seeds"``)."""
    out: dict[str, list[Any]] = {"a": [], "b": [], "tie": [], "one_seed": [], "seeds": []}
    for name, metric, setting in items:
        _, verdict = _paired(values, (name, metric, setting, a), (name, metric, setting, b), _lower_better(metric))
        if not verdict:
            continue
        label = f"{name} {metric} ({setting})"
        kind = verdict.split(" ")[0]
        out["a" if kind in ("wins", "ahead") else "b" if kind in ("loses", "behind") else "tie"].append(label)
        out["seeds"].append(len(set(values[(name, metric, setting, a)]) & set(values[(name, metric, setting, b)])))
        if "no CI" in verdict:
            out["one_seed"].append(label)
    return out


def _goal(b: str, found: dict[str, list[Any]]) -> str:
    """The goal line 'the LLM imputer at least as good as b', saying exactly what 'met' means here."""
    met = "met" if not found["b"] else "not met"
    low, high = min(found["seeds"]), max(found["seeds"])
    if high < 2:
        meaning = (f"the LLM imputer is not behind {b} in any comparison by the means of one seed (no interval, so "
                   "not a test)")
    else:
        seeds = f"{low}" if low == high else f"{low}-{high}"
        meaning = (f"no significant loss over {seeds} seeds: no comparison whose 95% t-interval over the seeds of the "
                   f"paired difference excludes 0 in {b}'s favour (a tie counts as no loss, not as a win)")
    return f" Goal 'the LLM imputer at least as good as {b}' here: {met}, where met means {meaning}."


def _sentence(title: str, a: str, b: str, found: dict[str, list[Any]], unit: str, goal: bool = True) -> str:
    n = len(found["a"]) + len(found["b"]) + len(found["tie"])
    a_name, b = ("LLM" if a == "llm" else _name(a)), _name(b)
    if n == 0:
        return f"- **{title}**: not measured ({b} or {'the LLM imputer' if a == 'llm' else a_name} did not run on " \
               "these columns)."
    how = ("one seed: by the means, without an interval" if found["one_seed"] else
           "paired by seed; a win needs the 95% interval to exclude 0")
    text = (f"- **{title}**: {n} comparisons ({unit}; {how}): {a_name} ahead in {len(found['a'])}, {b} ahead in "
            f"{len(found['b'])}, {len(found['tie'])} ties.")
    if found["a"]:
        text += f" {a_name} wins on: {'; '.join(found['a'])}."
    if found["b"]:
        text += f" {b} wins on: {'; '.join(found['b'])}."
    return text + (_goal(b, found) if goal else "")


def verdict_paragraph(rows: list[dict[str, Any]], settings: list[str]) -> str:
    """Where each imputer wins, computed from the stored numbers: the LLM imputer against MICE and miceforest on
    the columns whose value the row's text carries (:attr:`TableSpec.text_carried`), and against GReaT overall
    (every masked column's headline metric and every task's primary metric, in every setting); each peer
    (miceforest, GReaT) against MICE overall. With the shared fit
    the MICE / miceforest goal lines compare on equal data (their shared-fit references, fitted on the cells the LLM
    imputer's shared fit trained on); the same imputers on each setting's own masked table are shown beside them."""
    down, imp = _downstream(rows), _imputation(rows)
    primary = _primary_metrics(imp)
    carried = [(spec.name, col) for specs in TABLES.values() for spec in specs for col in spec.text_carried]
    carried_items = [(t, primary[(t, c)], s) for t, c in carried if (t, c) in primary for s in settings]
    names = ", ".join(f"{t}: {c}" for t, c in carried if (t, c) in primary) or "none scored"
    overall = [(t, m, s) for (t, _), m in sorted(primary.items()) for s in settings]
    overall += [(task.name, task.primary, s) for tasks in TASKS.values() for task in tasks for s in settings
                if any(k[0] == task.name for k in down)]
    both = {**imp, **down}
    ran = {row["imputer"] for row in rows}
    lines = []
    for other, label in (("mice", "MICE"), ("miceforest", "miceforest")):
        reference = next((r for r, base in SHARED_REFERENCES.items() if base == other and r in ran), None)
        if reference is None:
            lines.append(_sentence(f"LLM vs {label} on the text-carried columns ({names})", "llm", other,
                                   _compare(imp, carried_items, "llm", other), "column x setting",
                                   goal=other == "mice"))  # the goal names MICE; miceforest is shown
            continue
        lines.append(_sentence(
            f"LLM vs {label} on equal data -- {label} fitted on the same union-masked table the LLM imputer's shared "
            f"fit trained on, filling each setting as it does -- on the text-carried columns ({names})", "llm",
            reference, _compare(imp, carried_items, "llm", reference), "column x setting"))
        lines.append(_sentence(
            f"LLM vs {label} fitted on each setting's own masked table (more observed cells than the LLM imputer's "
            "shared fit trained on; shown, not the goal)", "llm", other, _compare(imp, carried_items, "llm", other),
            "column x setting", goal=False))
    blind = _blind_text_carried([(t, c) for t, c in carried if (t, c) in primary])
    if blind:
        lines.append(f"- On {blind}, MICE, KNN and miceforest fill the column's mean or most frequent value: they "
                     "read no text (the title that carries a film's year) and the table holds no other number or "
                     "category to condition on, so the lines above compare the LLM imputer with that column "
                     "statistic there, not with a fitted model.")
    unit = "masked column x setting and downstream task x setting, headline metrics"
    lines.append(_sentence("LLM vs GReaT overall", "llm", "great", _compare(both, overall, "llm", "great"), unit))
    for peer, label in (("miceforest", "miceforest"), ("great", "GReaT")):  # where each peer wins, not only vs LLM
        if peer in ran and "mice" in ran:
            lines.append(_sentence(f"{label} vs MICE overall (shown, no goal)", peer, "mice",
                                   _compare(both, overall, peer, "mice"), unit, goal=False))
    return "\n".join(lines) + "\n"


def _blind_text_carried(carried: list[tuple[str, str]]) -> str:
    """The text-carried columns (``table: column``) the classic imputers cannot model: a text column (they model
    numbers and categories only), or one whose table offers no other number or category to condition on."""
    specs = {spec.name: spec for specs in TABLES.values() for spec in specs}
    blind = [f"{t}: {c}" for t, c in carried if t in specs and (
        c in specs[t].text or not [x for x in (*specs[t].numeric, *specs[t].categorical) if x != c])]
    return ", ".join(blind)


def _downstream_tables(rows: list[dict[str, Any]], imputers: list[str], settings: list[str]) -> str:
    down = _downstream(rows)
    parts = []
    for dataset, tasks in TASKS.items():
        for task in tasks:
            if not any(k[0] == task.name for k in down):
                continue
            for metric in task.metrics:
                table = []
                for setting in settings:
                    row = {"setting": setting, "complete data": _ci(down.get((task.name, metric, "complete", "none"), []))}
                    row.update({imp: _ci(down.get((task.name, metric, setting, imp), [])) for imp in imputers})
                    table.append(row)
                arrow = "lower is better" if _lower_better(metric) else "higher is better"
                parts.append(f"**{dataset} / {task.name} / {metric}** ({arrow})\n\n"
                             + format_table(table, ["setting", "complete data", *imputers]))
            rows_line = _training_rows_line(down, task.name, settings)
            if rows_line:
                parts.append(rows_line)
    return "\n\n".join(parts) + "\n"


def _training_rows_line(down: Values, task: str, settings: list[str]) -> str:
    """How many training rows deletion's DLRM kept per setting, against the complete data's (every other imputer
    trains on all of them): deletion is tested on the same rows as the others but trained on fewer."""
    def mean_rows(setting: str, imputer: str) -> float | None:
        seeds = down.get((task, "train_rows", setting, imputer))
        return float(np.mean(list(seeds.values()))) if seeds else None

    full = mean_rows("complete", "none")
    kept = {s: mean_rows(s, "deletion") for s in settings}
    if full is None or not any(v is not None for v in kept.values()):
        return ""
    said = ", ".join(f"{s} {v:,.0f}" for s, v in kept.items() if v is not None)
    return (f"_{task}: deletion trains its DLRM on the rows with no masked cell ({said}, mean over seeds) of "
            f"{full:,.0f} training rows; every other column trains on all {full:,.0f}; all are tested on the same "
            "rows._")


def _imputation_tables(rows: list[dict[str, Any]], imputers: list[str], settings: list[str]) -> str:
    imp = _imputation(rows)
    fillers = [i for i in imputers if i != "deletion"]
    parts = []
    for table_name in sorted({k[0] for k in imp}):
        table = []
        for metric in sorted({k[1] for k in imp if k[0] == table_name}):
            for setting in settings:
                row = {"cells": metric, "setting": setting}
                row.update({_name(i): _ci(imp.get((table_name, metric, setting, i), [])) for i in fillers})
                table.append(row)
        parts.append(f"**{table_name}** (accuracy -- also of code columns -- / jaccard: higher is better; rmse / nrmse: "
                     "lower is better)\n\n"
                     + format_table(table, ["cells", "setting", *map(_name, fillers)]))
    return "\n\n".join(parts) + "\n"


def _fallbacks(rows: list[dict[str, Any]], imputer: str) -> dict[str, int]:
    """Cells ``imputer`` filled, and those it left to the column statistic (``"fallbacks"``: unusable answers, and
    the mean / mode fills of columns it cannot model) over ``rows``; GReaT's sampled rows, samples, rows given up."""
    out: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get("imputer") != imputer:
            continue
        for info in row["info"].values():
            how = info.get("how", {})
            out["fallbacks"] += int(info.get("fallbacks", 0)) + int(how.get("mean", 0)) + int(how.get("mode", 0))
            for key in ("cells", "sampled_rows", "samples", "rows_given_up"):
                out[key] += int(info.get(key, 0))
    return dict(out)


def peer_setup_lines(config: Any, rows: list[dict[str, Any]], imputers: list[str]) -> list[str]:
    """The set-up lines of GReaT and miceforest: GReaT's budget rule and settings (and why), and the cells each
    peer left to the column statistic."""
    lines = []
    if "great" in imputers:
        budget = config.great_budget()
        counts = _fallbacks(rows, "great")
        where = ", ".join(_label(s) for s in budget.settings) or "no setting of this run"
        others = [_label(s) for s in config.settings if s not in budget.settings]
        fit = ("one fine-tune per (table, seed) on the same union-masked table as the LLM imputer's, reused at each "
               "of its settings" if config.shares_fit("great") else "one fine-tune per masked table")
        lines.append(
            f"- GReaT (be-great's own `impute`, the same SmolLM2 as backbone): budget rule "
            f"(`recllm.bench.impute.budget`): {budget.describe()}; {fit}. GReaT runs at {where} only"
            + (f" (not at {', '.join(others)}): be-great samples one row at a time, so every setting would take "
               "several times the LLM imputer's whole time budget" if others else "")
            + f". It left {counts.get('fallbacks', 0)} of {counts.get('cells', 0)} cells to the column statistic "
            f"({counts.get('rows_given_up', 0)} of {counts.get('sampled_rows', 0)} incomplete rows given up after "
            f"{budget.max_retries} samples; {counts.get('samples', 0)} samples in all); its fine-tune time is in "
            "the cost table beside the LLM imputer's. Its fills are one sampled draw per row at be-great's default "
            "temperature 0.7, as its own `impute` makes them: a random fill, scored against the other imputers' "
            "point fills (the most likely category, a predicted number), which favours them on nRMSE and "
            "accuracy; the comparison is GReaT as published, not the best decoding of its model.")
    else:
        lines.append("- GReaT: not run.")
    if "miceforest" in imputers:
        counts = _fallbacks(rows, "miceforest")
        lines.append(f"- miceforest: its defaults (5 iterations, LightGBM random forests), seeded, except that it "
                     "fills with the forest's prediction (the most likely category) instead of drawing among the 5 "
                     "nearest observed values (`mean_match_candidates=0`): a point fill, as every other imputer here "
                     f"gives but GReaT (one random draw scored worse than the column mean); it left "
                     f"{counts.get('fallbacks', 0)} of {counts.get('cells', 0)} cells to the column statistic "
                     "(columns it cannot model).")
    else:
        lines.append("- miceforest: not run.")
    return lines




def _machine(info: dict[str, Any]) -> str:
    """The machine a fine-tune ran on, from its stored fit record: CPU model and torch threads."""
    if not info.get("fit_cpu"):
        return "not recorded"
    return f"{info['fit_cpu']}, {info.get('fit_threads')} thread(s)"


def _cost_table(rows: list[dict[str, Any]]) -> str:
    """Per table and imputer: runs, cells, seconds; for the fine-tuned imputers the fine-tunes (one per fit, counted
    where it was fitted), each one's original seconds from its fit record (a reused adapter's load time never
    counts), the machines that ran them, and the share of fills answered from the LLM imputer's answer cache."""
    per: dict[tuple[str, str], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for table, info in row["info"].items():
            entry = per[(table, row["imputer"])]
            entry["seconds"].append(info["seconds"])
            entry["cells"].append(info["cells"])
            entry["fallbacks"].append(info.get("fallbacks", 0))
            entry["cached"].append(info.get("how", {}).get("cache_hits", 0))
            if row["imputer"] in FINE_TUNED:
                if info.get("fitted_here", True):
                    entry["fit"].append(info.get("fit_seconds"))
                    entry["machine"].append(_machine(info))
                entry["transform"].append(info["transform_seconds"])
            if row["imputer"] == "llm":
                entry["reused"].append(float(info["adapter_reused"]))
    table = []
    for (name, imputer), entry in sorted(per.items()):
        cells, seconds = sum(entry["cells"]), sum(entry["seconds"])
        row = {"table": name, "imputer": _name(imputer), "runs": len(entry["seconds"]), "cells filled": int(cells),
               "seconds / run": f"{np.mean(entry['seconds']):.2f}", "fallbacks": int(sum(entry["fallbacks"])),
               "fine-tunes": "", "fine-tune s each": "", "fitted on": "",
               "cells/s (fill)": f"{cells / seconds:.0f}" if seconds else "", "adapters reused": ""}
        if imputer in FINE_TUNED:
            transform = sum(entry["transform"])
            fits = [f for f in entry["fit"] if f is not None]
            missing = len(entry["fit"]) - len(fits)
            row.update({"fine-tunes": len(entry["fit"]),
                        "fine-tune s each": (f"{np.mean(fits):.1f}" if fits else "")
                        + (f" ({missing} not recorded)" if missing else ""),
                        "fitted on": "; ".join(f"{m} x{n}" for m, n in sorted(_counts(entry["machine"]).items())),
                        "cells/s (fill)": (f"{cells / transform:.1f}" if transform else "")
                        + _cached_share(sum(entry["cached"]), cells)})
        if imputer == "llm":
            row["adapters reused"] = int(sum(entry["reused"]))
        table.append(row)
    return ("Fine-tune seconds are each fine-tune's own, from its fit record (an adapter reused from the cache reports "
            "the seconds of the fine-tune that made it, not its load time), with the CPU and torch threads that ran "
            "it. A fill's cells/s is marked when some of its answers came from the LLM imputer's answer cache (then "
            "it times lookups, not arithmetic; the next table times a sample computed afresh). The rates of the "
            "imputers that fine-tune no LLM carry no share of the peak: their work (numpy, scikit-learn, LightGBM) is "
            "not made of the matrix products torch's FLOP counter sees.\n\n"
            + format_table(table, ["table", "imputer", "runs", "cells filled", "seconds / run", "fine-tunes",
                                   "fine-tune s each", "fitted on", "cells/s (fill)", "fallbacks",
                                   "adapters reused"]) + "\n")


def _cached_share(cached: int, cells: int) -> str:
    """`` (N% cached)`` when some of ``cells`` fills were answered from the answer cache."""
    return f" ({cached / cells:.0%} cached)" if cached and cells else ""


def _fill_compute_table(rows: list[dict[str, Any]]) -> str:
    """Per table and fine-tuned imputer: the sampled fills (computed afresh, timed), GFLOP per cell (counted), the
    rate in GFLOP/s and its share of the matmul peak of the fill's precision, measured where it ran."""
    from recllm.bench.impute.compute import FILL_SAMPLE_ROWS, NOT_MEASURED, fill_share

    per: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["imputer"] in FINE_TUNED:
            for table, info in row["info"].items():
                per[(table, row["imputer"])].append(info)
    table = []
    for (name, imputer), infos in sorted(per.items()):
        measured = [i for i in infos if fill_share(i) is not None]
        if not measured:
            errors = sorted({i[NOT_MEASURED] for i in infos if i.get(NOT_MEASURED)})
            table.append({"table": name, "imputer": _name(imputer), "runs": f"0 of {len(infos)}",
                          **dict.fromkeys(("sampled cells", "cells/s", "GFLOP / cell", "GFLOP/s", "of peak"), ""),
                          "peak (precision, where)": f"not measured ({'; '.join(errors)})" if errors
                          else "not measured (runs stored before it was)"})
            continue
        cells = sum(i["fill_sample_cells"] for i in measured)
        seconds = sum(i["fill_sample_seconds"] for i in measured)
        gflop = sum(i["fill_sample_cells"] * i["fill_gflop_per_cell"] for i in measured)  # over every sampled cell
        shares = [fill_share(i) for i in measured]
        table.append({
            "table": name, "imputer": _name(imputer), "runs": f"{len(measured)} of {len(infos)}",
            "sampled cells": cells, "cells/s": f"{cells / seconds:.1f}", "GFLOP / cell": f"{gflop / cells:.3g}",
            "GFLOP/s": f"{gflop / seconds:.1f}",
            "of peak": f"{np.mean(shares):.1%}"
                       + (f" ({min(shares):.1%}-{max(shares):.1%})" if len(shares) > 1 else ""),
            "peak (precision, where)": "; ".join(sorted({
                f"{i['fill_peak_gflops']:.0f} GFLOP/s ({i['fill_dtype']}, {i['fill_cpu']}, {i['fill_threads']} "
                f"thread(s))" for i in measured}))})
    if not table:
        return "No fine-tuned imputer ran.\n"
    return (f"Each run's fitted imputer fills {FILL_SAMPLE_ROWS} seeded incomplete rows of its masked table (or all, "
            "if fewer) again, never from the answer cache: once with torch's FLOP counter (matrix products and "
            "attention; element-wise work is not counted), then timed. *of peak* is each run's cells/s x GFLOP per "
            "cell over the matmul peak of the fill's precision measured in the same process (the mean over runs, "
            "and the range). A sample has fewer repeated prompts to share and batches of other widths than the "
            "whole table's fill, so its cells/s and GFLOP per cell are the sample's, not the whole fill's; its share "
            "of the peak is what the imputer's fill arithmetic achieves on such rows.\n\n"
            + format_table(table, ["table", "imputer", "runs", "sampled cells", "cells/s", "GFLOP / cell",
                                   "GFLOP/s", "of peak", "peak (precision, where)"]) + "\n")


def _counts(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for value in values:
        out[value] += 1
    return dict(out)


def _llm_training_table(rows: list[dict[str, Any]]) -> str:
    """One line per LLM fine-tune: rows and cells trained on, held-out cells, epochs, the chosen one, its curve, its
    original seconds and machine."""
    table, below = [], []  # below: the fine-tunes whose chosen epoch scored under 0
    for row in rows:
        if row.get("imputer") != "llm":
            continue
        for name, info in sorted(row["info"].items()):
            if not info.get("fitted_here", True):
                continue
            curve = info.get("validation_curve")
            fit = info.get("fit_seconds")
            chosen = info.get("chosen_epoch")
            if curve and isinstance(chosen, int) and 0 < chosen <= len(curve) and curve[chosen - 1] < 0:
                below.append(f"{row['dataset']} seed {row['seed']} {name}")
            table.append({
                "data set": row["dataset"], "seed": row["seed"],
                "setting": "all (shared fit)" if info.get("shared_fit") else _label(row["setting"]), "table": name,
                "rows": info.get("examples", ""), "cells / epoch": info.get("train_cells", "not recorded"),
                "held-out cells": info.get("validation_cells", ""),
                "epochs trained (max)": f"{info.get('epochs_trained', '')} ({info.get('max_epochs', '')})",
                "chosen epoch": info.get("chosen_epoch", ""),
                "validation score by epoch": ", ".join(f"{v:.3f}" for v in curve) if curve else "none (no held-out cells)",
                "fine-tune s": "not recorded" if fit is None else f"{fit:.0f}", "fitted on": _machine(info)})
    if not table:
        return "_(the LLM imputer was not part of this run)_\n"
    return ("Validation score: the mean over the held-out columns of accuracy (categorical, text, code columns) or "
            "1 - MAE / mean absolute deviation (numeric); the kept adapter is the chosen epoch's. On a numeric column "
            "the column mean scores about 0 (its MAE is the mean absolute deviation) and an accuracy is never "
            "negative, so a chosen score below 0 says the fine-tune filled the held-out cells of its numeric columns "
            "worse, on average, than their means would -- known before any masked cell was scored: "
            f"{len(below)} of {len(table)} fine-tunes here"
            + (f" ({'; '.join(below)})" if below else "")
            + ". How the numbers are decoded matters as much: see imputation-numbers.md.\n\n"
            + format_table(table, list(table[0])) + "\n")


def _training_shares(rows: list[dict[str, Any]]) -> str:
    """Per data set, seed, table and masked column: the share of the column's cells (those with a true value) the
    LLM imputer's shared fit was given and trained on (given minus its held-out cells), and the share each setting's
    own masked table holds (what MICE, miceforest and kNN are fitted on), from the runs' ``fit_cells``."""
    shared: dict[tuple[Any, ...], dict[str, Any]] = {}
    own: dict[tuple[Any, ...], dict[str, str]] = defaultdict(dict)
    settings: list[str] = []
    for row in rows:
        for table, info in row.get("info", {}).items():
            for col, (observed, total) in info.get("fit_cells", {}).items():
                where = (row["dataset"], row["seed"], table, col)
                share = observed / total if total else float("nan")
                if row["imputer"] == "llm" and info.get("shared_fit"):
                    held = int(info.get("held_out", {}).get(col, 0))
                    shared[where] = {"given": share, "trained": (observed - held) / total if total else share}
                elif row["imputer"] not in FINE_TUNED and row["imputer"] not in SHARED_REFERENCES:
                    label = _label(row["setting"])
                    own[where][label] = f"{share:.0%}"
                    settings += [label] if label not in settings else []
    if not shared:
        return "_(no shared LLM fit in this run)_\n"
    capped = sorted({(row["dataset"], table, info["examples"], info["rows"]) for row in rows if row["imputer"] == "llm"
                     for table, info in row.get("info", {}).items()
                     if info.get("shared_fit") and info.get("examples", 0) < info.get("rows", 0)})
    table = [{"data set": d, "seed": seed, "table": t, "column": c, "shared fit: given": f"{v['given']:.0%}",
              "shared fit: trained on": f"{v['trained']:.0%}", **{s: own[(d, seed, t, c)].get(s, "") for s in settings}}
             for (d, seed, t, c), v in sorted(shared.items(), key=lambda kv: tuple(map(str, kv[0])))]
    return ("Share of each masked column's cells (those with a true value) in the table each fit saw, computed "
            "from the stored runs: the LLM imputer's shared fit (and GReaT's, and the shared-fit references') is given "
            "the table with every setting's masked cells removed and trains on those minus its held-out validation "
            "cells; the other imputers are fitted on each setting's own masked table (the setting columns)."
            + (" The LLM imputer trained on a seeded sample of rows here (max_train_examples), so on fewer cells than "
               "these shares: " + "; ".join(f"{d} {t}: {n} of {m} rows" for d, t, n, m in capped) + "."
               if capped else "") + "\n\n" + format_table(table, list(table[0])) + "\n")


def _code_columns_table(rows: list[dict[str, Any]]) -> str:
    """Per table, the code columns each imputer used (from its ``report_``; the same detection for all)."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in rows:
        for table, info in row.get("info", {}).items():
            found[table][row["imputer"]].update(info.get("code_columns", ["not recorded"]))
    if not found:
        return "_(no imputer ran)_\n"
    table = []
    for name, by_imputer in sorted(found.items()):
        groups: dict[str, list[str]] = defaultdict(list)
        for imputer, columns in by_imputer.items():
            groups[", ".join(sorted(columns)) or "none"].append(imputer)
        for columns, imputers in sorted(groups.items()):
            table.append({"table": name, "code columns": columns, "imputers": ", ".join(sorted(imputers))})
    from recllm.impute.base import MAX_CODES

    return (f"A code column is a numeric column of <= {MAX_CODES} whole-number codes (each seen twice on average), "
            "detected by "
            "every imputer alike (`code_columns=\"auto\"`); its fills are observed codes and it is scored by exact-match "
            "accuracy.\n\n" + format_table(table, ["table", "code columns", "imputers"]) + "\n")


def _mar_drivers(config: Any) -> str:
    """Each masked table's MAR driver with its distinct values and rows, read from the data (e.g. "advertising/users:
    country, 237 distinct in 1,000 rows")."""
    from recllm.bench.impute.tasks import TABLES, feature_table
    from recllm.data import load

    parts = []
    for dataset in config.datasets:
        ds = load(dataset)
        for spec in TABLES[dataset]:
            values = feature_table(ds, spec)[spec.mar_driver]
            parts.append(f"{spec.name}: {spec.mar_driver}, {values.nunique():,} distinct in {len(values):,} rows")
    return "; ".join(parts)


def _inference_dtypes(rows: list[dict[str, Any]]) -> str:
    """How many LLM table fills ran in each inference dtype (runs stored before it was recorded are counted apart)."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get("imputer") == "llm":
            for info in row.get("info", {}).values():
                counts[info.get("inference_dtype", "not recorded")] += 1
    return ", ".join(f"{dtype} x{n}" for dtype, n in sorted(counts.items())) or "no LLM runs"


def _attempts_table(attempts: list[dict[str, Any]]) -> str:
    if not attempts:
        return "_(not run: add `--attempts`)_\n"
    metrics = sorted({(t, m) for a in attempts for t, s in a.get("scores", {}).items() for m in s})
    table = []
    for a in attempts:
        row = {"data set": a["dataset"], "imputer / attempt": a["attempt"]}
        for t, m in metrics:
            value = a.get("scores", {}).get(t, {}).get(m)
            row[f"{t.split('/')[-1]} {m}"] = "" if value is None else f"{value:.4f}"
        infos = a.get("info", {}).values()
        row["fine-tune s"] = f"{sum(i.get('fit_seconds') or 0 for i in infos):.1f}" if a["attempt"][0] != "[" else ""
        row["rows trained"] = str(int(sum(i.get("examples", 0) for i in infos))) if a["attempt"][0] != "[" else ""
        generated = sum(i.get("how", {}).get("llm-generate", 0) for i in infos)
        clipped = sum(i.get("how", {}).get("clipped", 0) for i in infos)
        row["numbers clipped"] = f"{clipped}/{generated}" if a["attempt"][0] != "[" and generated else ""
        row["note"] = a.get("error", "")
        table.append(row)
    cols = ["data set", "imputer / attempt", *[f"{t.split('/')[-1]} {m}" for t, m in metrics], "fine-tune s",
            "rows trained", "numbers clipped", "note"]
    from recllm.bench.impute.run import ATTEMPTS

    legend = [f"- `{name}`: LLMImputer({', '.join(f'{k}={v!r}' for k, v in ATTEMPTS[name].items()) or 'defaults'})"
              for name in dict.fromkeys(a["attempt"] for a in attempts) if name in ATTEMPTS]
    return format_table(table, cols) + "\n" + ("\nAttempts:\n\n" + "\n".join(legend) + "\n" if legend else "")


def plot_paths(path: Path) -> tuple[Path, Path]:
    """The plots the report at ``path`` links, written beside it: ``<stem>-downstream.png``, ``<stem>-cells.png``."""
    return path.with_name(f"{path.stem}-downstream.png"), path.with_name(f"{path.stem}-cells.png")


def _plots(rows: list[dict[str, Any]], imputers: list[str], path: Path, overwrite: bool = False) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    down = _downstream(rows)
    rates = sorted({float(r["setting"][1]) for r in rows if r["setting"][0] == "mcar"})
    if len(rates) < 2:
        return []
    links = []
    downstream, cells = plot_paths(path)
    tasks = [t for ts in TASKS.values() for t in ts if any(k[0] == t.name for k in down)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for imputer in (i for i in imputers if i not in SHARED_REFERENCES):  # (no DLRM for the references)
            means, errs = [], []
            for rate in rates:
                values = list(down.get((task.name, task.primary, _label(["mcar", rate]), imputer), {}).values())
                mean, _, high = interval_over_runs(values) if values else (np.nan, np.nan, np.nan)
                means.append(mean)
                errs.append(0 if math.isnan(high) else high - mean)
            ax.errorbar([100 * r for r in rates], means, yerr=errs, marker="o", capsize=3, label=imputer)
        ax.set_title(f"{task.name}: {task.primary}")
        ax.set_xlabel("MCAR missing cells (%)")
    axes[0][0].legend(fontsize=8)
    links.append(save_plot(fig, downstream, overwrite=overwrite).name)
    imp = _imputation(rows)
    metrics = sorted({(t, m) for (t, m, _, _) in imp if m.endswith((":nrmse", ":accuracy", ":jaccard"))})
    if metrics:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
        for ax, (table, metric) in zip(axes[0], metrics):
            for imputer in [i for i in imputers if i != "deletion"]:
                means = [np.mean(list(imp.get((table, metric, _label(["mcar", r]), imputer), {}).values()) or [np.nan])
                         for r in rates]
                ax.plot([100 * r for r in rates], means, marker="o", label=_name(imputer))
            ax.set_title(f"{table.split('/')[-1]} {metric}", fontsize=9)
            ax.set_xlabel("MCAR %")
        axes[0][0].legend(fontsize=7)
        links.append(save_plot(fig, cells, overwrite=overwrite).name)
    return links


def llm_setup_line(config: Any) -> str:
    """The report's description of the LLM imputer's training: its defaults (read from recllm.impute.llm, the one
    place) and the benchmark's departures from them."""
    from recllm.impute.llm import DEFAULT_SFT, MAX_VALIDATION_CELLS, VALIDATION_FRACTION

    departures = config.llm_departures()
    named = ", ".join(f"{k}={v!r}" for k, v in departures.items()) or "none (the full preset)"
    runs = config.llm_run_settings()
    where = ("at every setting" if set(runs) == {tuple(s) for s in config.settings} else
             f"at {', '.join(_label(s) for s in runs)} only (a fine-tune on every observed cell takes hours per table "
             "on a CPU; --llm-all-settings runs every setting)")
    fit = (f"one fine-tune per (table, seed, setting), on that setting's masked table, {where}"
           if config.llm_fit == "per-setting"
           else "one fine-tune per (table, seed) on the table with the cells of *all* settings' masks removed, reused "
                "for every setting: it never sees a cell masked in any setting of its seed, and trains on fewer cells "
                "than each masked table has (the observed cells of all settings at once; the shares are in 'What the "
                "shared fits trained on'). A (data set, seed)'s fit and its fills of every setting run in one process "
                "and are stored together, so no table mixes two adapters. For an equal-data comparison, MICE and "
                "miceforest are also fitted on that same table and fill each setting as the LLM imputer does (the "
                "'(shared-fit cells)' rows; masked-cell scores only)")
    from recllm.bench.reporting import lora_text
    from recllm.llm.sft import LoRAConfig

    # LLMImputer's adapter when none is given (recllm.impute.llm)
    return (f"- LLM imputer ({config.llm_model or 'SmolLM2-135M-Instruct (bundled)'}, LoRA {lora_text(LoRAConfig())}): "
            f"LLMImputer's defaults -- whole-row training on every observed cell of every row (each row one sequence, "
            f"its observed cells as lines in a fresh random order each epoch, the loss on every value), up to "
            f"{DEFAULT_SFT.epochs} epochs at lr {DEFAULT_SFT.learning_rate:g}, batch {DEFAULT_SFT.batch_size}, the "
            f"epoch chosen on {VALIDATION_FRACTION:.0%} of the observed cells of the masked columns held out (at most "
            f"{MAX_VALIDATION_CELLS}; early stop at the first worse epoch); {fit}. The benchmark's departures from "
            f"those defaults: {named}.")


def departures(config: Any) -> list[str]:
    """Where this benchmark differs from the paper's protocol (arXiv 2407.10078, PAPERS.md), each with its reason."""
    from recllm.impute.llm import DEFAULT_SFT

    runs = config.llm_run_settings()
    return [f"{config.llm_model} instead of a distilled GPT-2, as given by --model" if config.llm_model else
           "SmolLM2-135M-Instruct instead of a distilled GPT-2: the model the package bundles (an instruct model "
           "about GPT-2-small's size), so no model is downloaded",
           "whole-row SFT on every observed cell of every row, not only on the complete rows: the masked tables "
           "at 20-40% missing leave few complete rows (the DLRM's deletion column shows how few), and "
           f"{DEFAULT_SFT.epochs} epoch(s) at most, the epoch chosen on held-out observed cells (the paper gives no "
           "epochs, lr or LoRA rank)",
           "missingness at 5% (the paper's) and also 20% and 40% MCAR, MAR and MNAR, the open questions the paper "
           "leaves; "
           + (f"the LLM imputer at {', '.join(_label(s) for s in runs)} only (GReaT where its line says) while the "
              "others run at every setting (CPU time: a fine-tune per masked table takes tens of minutes to hours)"
              if set(runs) != {tuple(s) for s in config.settings} else "the LLM imputer at every setting"),
           "the paper's tasks on its data (AdClick: advertising; MovieLens: ml-100k) with our own seeded splits and "
           "DLRM hyper-parameters, the same for every imputer (the paper's splits and settings are not public), and "
           "miceforest and GReaT added beside its baselines, the stronger imputers the paper leaves open"]


def _versions(rows: list[dict[str, Any]]) -> str:
    """The library versions the rows ran with (each distinct set once; rows stored before they were recorded apart)."""
    found: dict[str, int] = defaultdict(int)
    for row in rows:
        versions = row.get("versions")
        found[", ".join(f"{k} {v or 'absent'}" for k, v in sorted(versions.items())) if versions else
              "not recorded"] += 1
    return "; ".join(f"{text} ({n} runs)" for text, n in found.items()) or "no runs"


def write_imputation_report(config: Any, rows: list[dict[str, Any]], attempts: list[dict[str, Any]],
                            seconds: float, target: Any, command: str, imputers: tuple[str, ...] | None = None,
                            skipped: list[str] | None = None) -> Path:
    """Write the report at ``target`` (a :class:`recllm.bench.reporting.ReportTarget`) with plots beside it;
    returns the path. ``imputers``: those that ran (default: the configuration's); ``skipped``: a line per peer
    imputer that could not run and per unit that failed (set-up lines)."""
    from recllm.bench.reporting import library_versions
    from recllm.data import data_files
    from recllm.impute.peers import PEERS, peer_versions
    from recllm.llm.precision import describe_precision, describe_training_precision

    path = target.path
    settings = [_label(s) for s in config.settings]
    imputers = list(imputers if imputers is not None else config.imputers)
    ran = {row["imputer"] for row in rows}
    shown = [i for i in config.unit_imputers(tuple(imputers)) if i in imputers or i in ran]  # + shared-fit references
    links = _plots(rows, shown, path, target.overwrite)
    masked = "; ".join(f"{spec.name}: {', '.join(spec.masked)}" for d in config.datasets for spec in TABLES[d])
    versions = peer_versions()
    peers = [f"{name} ({versions[name]})" for name in PEERS if name in config.imputers]
    body = [
        "## Set-up",
        "",
        f"- Data sets: {', '.join(config.datasets)}; seeds {', '.join(map(str, config.seeds))}; settings "
        f"{', '.join(settings)}; imputers {', '.join(imputers)}; wall time of this run {seconds / 60:.1f} min (stored "
        f"runs cost nothing; see `{path.with_suffix('.runs.jsonl').name}`).",
        f"- Peer imputers: {'; '.join(peers) or 'none requested'}.",
        f"- Library versions of the stored runs (part of every run's key): {_versions(rows)}.",
        *[f"- {line}" for line in skipped or ()],
        f"- Masked feature-table columns ({masked}); MAR is driven by a fully observed column of the same table, "
        f"MNAR by the cell's own value. The drivers and how many distinct values they hold: {_mar_drivers(config)}. "
        "Where a driver is nearly unique per row and a category's weight comes from a seeded shuffle, MAR is close "
        "to MCAR with the gaps gathered in fewer rows: it tests the imputers less than a MAR driven by a column they "
        "model would.",
        "- Every imputer fills the same masked tables; a DLRM (same hyper-parameters and seeded split for every "
        "imputer) is trained per task; 'complete data' is the DLRM on the unmasked tables. Case-wise deletion drops "
        "incomplete table rows from training; its test rows keep their gaps (DLRM: OOV row / training mean).",
        llm_setup_line(config),
        f"- LLM imputer decoding: categories (and code columns) by shared-prefix scoring, numbers by greedy generation "
        "held to the shape (sign, digits, decimals) and observed range of the column's numbers, text by greedy "
        f"generation from the column's tokens; training with {describe_training_precision(config.training_autocast())}; "
        f"inference precision '{config.precision}' (here {describe_precision(config.precision)}): "
        f"{_inference_dtypes(rows)}.",
        *peer_setup_lines(config, rows, imputers),
        "- Departures from the paper (and why):",
        *[f"  - {d}" for d in departures(config)],
        "",
        "## Where each imputer wins",
        "",
        verdict_paragraph(rows, settings),
        "## The LLM imputer against each other imputer",
        "",
        _verdicts(rows, settings),
        "## Downstream tasks (DLRM on the imputed tables; test split)",
        "",
        _downstream_tables(rows, imputers, settings),
        "## Imputation quality on the masked cells",
        "",
        _imputation_tables(rows, shown, settings),
        "## What the shared fits trained on",
        "",
        _training_shares(rows),
        "## What each LLM fine-tune trained on",
        "",
        _llm_training_table(rows),
        "## Code columns",
        "",
        _code_columns_table(rows),
        "## Cost",
        "",
        _cost_table(rows),
        "## Fill throughput against the peak (fine-tuned imputers)",
        "",
        _fill_compute_table(rows),
        "## LLM imputer attempts (MCAR 20%, first seed; masked-cell quality)",
        "",
        _attempts_table(attempts),
    ]
    if links:
        body += ["## Plots", "", *[f"![{name}]({name})" for name in links], ""]
    return write_report(path, "LLM imputation for recommendation data (arXiv 2407.10078)", command,
                        data_files(config.datasets), "\n".join(body), seeds=list(config.seeds),
                        commit=target.commit, precision=describe_precision(config.precision),
                        method_changes=METHOD_CHANGES, more_versions=library_versions(
                            [dist for name, (_, dists) in PEERS.items() if name in config.imputers for dist in dists]),
                            overwrite=target.overwrite)
