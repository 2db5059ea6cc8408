"""The imputation benchmark's report: tables (mean ± 95% CI over seeds), LLM-vs-classic verdicts, costs, plots."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from recllm.eval.report import fmt_ci, format_table, save_plot, write_report
from recllm.eval.stats import interval_over_runs, paired_difference
from recllm.bench.impute.tasks import TABLES, TASKS

LOWER_IS_BETTER = ("rmse", "nrmse", "mae", "mse")


def _label(setting: list[Any] | tuple[Any, ...]) -> str:
    if setting[0] == "complete":
        return "complete"
    return f"{str(setting[0]).upper()} {int(round(float(setting[1]) * 100))}%"


def _ci(values: list[float], digits: int = 4) -> str:
    if not values:
        return ""
    mean, low, high = interval_over_runs(values)
    return fmt_ci(mean, low, high, digits) if len(values) > 1 else f"{mean:.{digits}f}"


def _lower_better(metric: str) -> bool:
    return metric.split(":")[-1] in LOWER_IS_BETTER


def _downstream(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[float]]:
    """(task, metric, setting label, imputer) -> values over seeds."""
    out: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        for task, values in row["tasks"].items():
            for metric, value in values.items():
                out[(task, metric, _label(row["setting"]), row["imputer"])].append(float(value))
    return out


def _imputation(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], list[float]]:
    """(table, column:metric, setting label, imputer) -> values over seeds."""
    out: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        for table, scores in row["scores"].items():
            for metric, value in scores.items():
                out[(table, metric, _label(row["setting"]), row["imputer"])].append(float(value))
    return out


def _paired(values: dict, key_a: tuple, key_b: tuple, lower_better: bool) -> tuple[str, str]:
    """Mean difference a - b over seeds with its CI, and a verdict for a (wins / loses / tie)."""
    a, b = values.get(key_a, []), values.get(key_b, [])
    n = min(len(a), len(b))
    if n == 0:
        return "", ""
    ci = paired_difference(a[:n], b[:n])
    text = fmt_ci(ci.mean, ci.low, ci.high, 4) if n > 1 else f"{ci.mean:+.4f} (1 seed)"
    good = -1 if lower_better else 1
    if n > 1 and not (math.isnan(ci.low) or ci.low <= 0 <= ci.high):
        verdict = "wins" if ci.mean * good > 0 else "loses"
    elif n == 1:
        verdict = ("ahead" if ci.mean * good > 0 else "behind") + " (no CI)"
    else:
        verdict = "tie"
    return text, verdict


def _verdicts(rows: list[dict[str, Any]], settings: list[str]) -> str:
    down, imp = _downstream(rows), _imputation(rows)
    lines = []
    for dataset, tasks in TASKS.items():
        for task in tasks:
            for metric in task.metrics:
                for setting in settings:
                    row = {"what": f"{task.name} {metric}", "setting": setting}
                    for other in ("mice", "knn"):
                        row[f"llm - {other}"], row[f"vs {other}"] = _paired(
                            down, (task.name, metric, setting, "llm"), (task.name, metric, setting, other),
                            _lower_better(metric))
                    if row["llm - mice"]:
                        lines.append(row)
    metrics = sorted({(t, m) for (t, m, _, _) in imp})
    for table, metric in metrics:
        for setting in settings:
            row = {"what": f"{table} {metric}", "setting": setting}
            for other in ("mice", "knn"):
                row[f"llm - {other}"], row[f"vs {other}"] = _paired(
                    imp, (table, metric, setting, "llm"), (table, metric, setting, other), _lower_better(metric))
            if row["llm - mice"]:
                lines.append(row)
    if not lines:
        return "_(the LLM imputer was not part of this run)_\n"
    counts = defaultdict(int)
    for row in lines:
        for other in ("mice", "knn"):
            counts[(other, row[f"vs {other}"].split(" ")[0])] += 1
    summary = ", ".join(f"vs {o}: {counts[(o, 'wins')] + counts[(o, 'ahead')]} ahead/wins, "
                        f"{counts[(o, 'loses')] + counts[(o, 'behind')]} behind/loses, {counts[(o, 'tie')]} ties"
                        for o in ("mice", "knn"))
    text = (f"Differences are LLM minus the other imputer, paired by seed (mean ± 95% t-interval over seeds); a "
            f"verdict needs the interval to exclude 0. Count: {summary}.\n\n")
    return text + format_table(lines, ["what", "setting", "llm - mice", "vs mice", "llm - knn", "vs knn"]) + "\n"


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
    return "\n\n".join(parts) + "\n"


def _imputation_tables(rows: list[dict[str, Any]], imputers: list[str], settings: list[str]) -> str:
    imp = _imputation(rows)
    fillers = [i for i in imputers if i != "deletion"]
    parts = []
    for table_name in sorted({k[0] for k in imp}):
        table = []
        for metric in sorted({k[1] for k in imp if k[0] == table_name}):
            for setting in settings:
                row = {"cells": metric, "setting": setting}
                row.update({i: _ci(imp.get((table_name, metric, setting, i), [])) for i in fillers})
                table.append(row)
        parts.append(f"**{table_name}** (accuracy / jaccard: higher is better; rmse / nrmse: lower is better)\n\n"
                     + format_table(table, ["cells", "setting", *fillers]))
    return "\n\n".join(parts) + "\n"


def _cost_table(rows: list[dict[str, Any]]) -> str:
    per: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for table, info in row["info"].items():
            entry = per[(table, row["imputer"])]
            entry["seconds"].append(info["seconds"])
            entry["cells"].append(info["cells"])
            entry["fallbacks"].append(info.get("fallbacks", 0))
            if row["imputer"] == "llm":
                if info.get("fitted_here", True):
                    entry["fit"].append(info["fit_seconds"])
                entry["transform"].append(info["transform_seconds"])
                entry["examples"].append(info["examples"])
                entry["reused"].append(float(info["adapter_reused"]))
    table = []
    for (name, imputer), entry in sorted(per.items()):
        cells, seconds = sum(entry["cells"]), sum(entry["seconds"])
        row = {"table": name, "imputer": imputer, "runs": len(entry["seconds"]), "cells filled": int(cells),
               "seconds / run": f"{np.mean(entry['seconds']):.2f}", "fallbacks": int(sum(entry["fallbacks"]))}
        if imputer == "llm":
            transform = sum(entry["transform"])
            row.update({"fine-tunes": len(entry["fit"]), "fine-tune s each": f"{np.mean(entry['fit']):.1f}" if entry["fit"] else "",
                        "examples": int(np.mean(entry["examples"])),
                        "cells/s (fill)": f"{cells / transform:.1f}" if transform else "",
                        "adapters reused": int(sum(entry["reused"]))})
        else:
            row.update({"fine-tunes": "", "fine-tune s each": "", "examples": "", "cells/s (fill)": f"{cells / seconds:.0f}" if seconds else "",
                        "adapters reused": ""})
        table.append(row)
    return format_table(table, ["table", "imputer", "runs", "cells filled", "seconds / run", "fine-tunes", "fine-tune s each",
                                "examples", "cells/s (fill)", "fallbacks", "adapters reused"]) + "\n"


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
        row["fine-tune s"] = f"{sum(i.get('fit_seconds', 0) for i in infos):.1f}" if a["attempt"][0] != "[" else ""
        row["examples"] = str(int(sum(i.get("examples", 0) for i in infos))) if a["attempt"][0] != "[" else ""
        generated = sum(i.get("how", {}).get("llm-generate", 0) for i in infos)
        clipped = sum(i.get("how", {}).get("clipped", 0) for i in infos)
        row["numbers clipped"] = f"{clipped}/{generated}" if a["attempt"][0] != "[" and generated else ""
        row["note"] = a.get("error", "")
        table.append(row)
    cols = ["data set", "imputer / attempt", *[f"{t.split('/')[-1]} {m}" for t, m in metrics], "fine-tune s",
            "examples", "numbers clipped", "note"]
    from recllm.bench.impute.run import ATTEMPTS

    legend = [f"- `{name}`: LLMImputer({', '.join(f'{k}={v!r}' for k, v in ATTEMPTS[name].items()) or 'defaults'})"
              for name in dict.fromkeys(a["attempt"] for a in attempts) if name in ATTEMPTS]
    return format_table(table, cols) + "\n" + ("\nAttempts:\n\n" + "\n".join(legend) + "\n" if legend else "")


def _plots(rows: list[dict[str, Any]], imputers: list[str], folder: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    down = _downstream(rows)
    rates = sorted({float(r["setting"][1]) for r in rows if r["setting"][0] == "mcar"})
    if len(rates) < 2:
        return []
    links = []
    tasks = [t for ts in TASKS.values() for t in ts if any(k[0] == t.name for k in down)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for imputer in imputers:
            means, errs = [], []
            for rate in rates:
                values = down.get((task.name, task.primary, _label(["mcar", rate]), imputer), [])
                mean, _, high = interval_over_runs(values) if values else (np.nan, np.nan, np.nan)
                means.append(mean)
                errs.append(0 if math.isnan(high) else high - mean)
            ax.errorbar([100 * r for r in rates], means, yerr=errs, marker="o", capsize=3, label=imputer)
        ax.set_title(f"{task.name}: {task.primary}")
        ax.set_xlabel("MCAR missing cells (%)")
    axes[0][0].legend(fontsize=8)
    links.append(save_plot(fig, folder / f"{stem}-downstream.png").name)
    imp = _imputation(rows)
    metrics = sorted({(t, m) for (t, m, _, _) in imp if m.endswith((":nrmse", ":accuracy", ":jaccard"))})
    if metrics:
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
        for ax, (table, metric) in zip(axes[0], metrics):
            for imputer in [i for i in imputers if i != "deletion"]:
                means = [np.mean(imp.get((table, metric, _label(["mcar", r]), imputer), [np.nan])) for r in rates]
                ax.plot([100 * r for r in rates], means, marker="o", label=imputer)
            ax.set_title(f"{table.split('/')[-1]} {metric}", fontsize=9)
            ax.set_xlabel("MCAR %")
        axes[0][0].legend(fontsize=7)
        links.append(save_plot(fig, folder / f"{stem}-cells.png").name)
    return links


def write_imputation_report(config: Any, rows: list[dict[str, Any]], attempts: list[dict[str, Any]],
                            seconds: float, target: Any, command: str) -> Path:
    """Write the report at ``target`` (a :class:`recllm.bench.reporting.ReportTarget`) with plots beside it;
    returns the path."""
    from recllm.data import data_files
    from recllm.llm.precision import describe_precision, describe_training_precision

    path = target.path
    settings = [_label(s) for s in config.settings]
    imputers = [i for i in config.imputers]
    links = _plots(rows, imputers, path.parent, path.stem)
    masked = "; ".join(f"{spec.name}: {', '.join(spec.masked)}" for d in config.datasets for spec in TABLES[d])
    body = [
        "## Set-up",
        "",
        f"- Data sets: {', '.join(config.datasets)}; seeds {', '.join(map(str, config.seeds))}; settings "
        f"{', '.join(settings)}; wall time of this run {seconds / 60:.1f} min (stored runs cost nothing; see `{path.with_suffix('.runs.jsonl').name}`).",
        f"- Masked feature-table columns ({masked}); MAR is driven by a fully observed column of the same table "
        "(advertising: country, users: zip code, items: title), MNAR by the cell's own value.",
        "- Every imputer fills the same masked tables; a DLRM (same hyper-parameters and seeded split for every "
        "imputer) is trained per task; 'complete data' is the DLRM on the unmasked tables. Case-wise deletion drops "
        "incomplete table rows from training; its test rows keep their gaps (DLRM: OOV row / training mean).",
        ("- LLM fine-tuning: one per (table, seed), on the table with the cells of *all* settings' masks removed "
         "(no masked cell of any setting is seen in training), then reused to fill each setting's table -- the LLM "
         "learns from fewer cells than the classic imputers, which are fitted per setting; this keeps the run "
         "within its time budget." if config.llm_fit == "shared" else
         "- LLM fine-tuning: one per (table, seed, setting), on that setting's masked table."),
        f"- LLM imputer: {config.llm_model or 'SmolLM2-135M-Instruct (bundled)'}, LoRA r=8 on q/k/v/o, "
        f"{config.llm_examples} fine-tuning examples per table (seeded sample of the observed cells of the masked "
        f"columns), {config.llm_epochs} epoch(s), lr {config.llm_learning_rate} (the benchmark's overrides; every other "
        "fine-tuning setting is LLMImputer's `DEFAULT_SFT`), training with "
        f"{describe_training_precision()}; categories by shared-prefix scoring, numbers by greedy generation held to "
        "the shape (sign, digits, decimals) and observed range of the column's numbers, text by greedy generation "
        f"from the column's tokens; inference precision 'auto' (here {describe_precision()}): "
        f"{_inference_dtypes(rows)}.",
        "",
        "## Where the LLM imputer wins and loses",
        "",
        _verdicts(rows, settings),
        "## Downstream tasks (DLRM on the imputed tables; test split)",
        "",
        _downstream_tables(rows, imputers, settings),
        "## Imputation quality on the masked cells",
        "",
        _imputation_tables(rows, imputers, settings),
        "## Cost",
        "",
        _cost_table(rows),
        "## LLM imputer attempts (MCAR 20%, first seed; masked-cell quality)",
        "",
        _attempts_table(attempts),
    ]
    if links:
        body += ["## Plots", "", *[f"![{name}]({name})" for name in links], ""]
    return write_report(path, "LLM imputation for recommendation data (arXiv 2407.10078)", command,
                        data_files(config.datasets), "\n".join(body), seeds=list(config.seeds),
                        commit=target.commit, precision=describe_precision())

