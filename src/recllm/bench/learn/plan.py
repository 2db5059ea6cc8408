"""``recllm bench learn --plan``: every run of the benchmark, stored or not, with its estimated minutes here.

The full benchmark takes hours; it stores each run as it finishes and a rerun reuses the stored ones, so it can be
run in pieces (e.g. ``--datasets ml-100k``, then the next) across sittings. The plan says what is left and what it
will cost on this machine:

* a run's fitting time = this machine's seconds per epoch x the epochs it is expected to take. Seconds per epoch
  come from probes: a one-epoch fit (validation included) of the model on :data:`PROBE_USERS` seeded users of the
  data set (same catalogue), twice, giving a fixed cost and a cost per training interaction, extrapolated to the
  split's training interactions; probes are kept per machine (CPU, threads) in the recllm cache, so a second
  ``--plan`` is quick. Expected epochs: what this very run took when earlier code fitted it, else what earlier runs
  of the same model, data set and split took, else its twin with the other content encoder (from the runs file,
  whatever code made them, and remembered in the cache after the store dropped them), else the epoch cap (an upper
  bound);
* a catalogue's embedding time (one per data set and encoder, when not stored): the encoder timed on
  :data:`recllm.bench.learn.content.QUICK_SAMPLE` texts and scaled to the catalogue.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.learn import content as contents
from recllm.bench.learn import run as bench

PROBE_USERS = (100, 300)
_PROBE_VERSION = 2


@dataclass
class Unit:
    """One run of the benchmark and what it will cost."""

    dataset: str
    split: str
    seed: int
    model: str
    stored: bool
    minutes: float = 0.0
    basis: str = ""
    share: float = 1.0  # the share of its cores the speed probe behind ``minutes`` had (CPU over wall time)


def _earlier_run(key: Any, facts: Any) -> tuple[str, tuple[str, str, str, int]] | None:
    """(run key, (data set, split, model, epochs)) when ``facts`` (a stored row, or a memo entry as a list) holds
    them, well typed (epochs a whole number >= 1); else None."""
    if isinstance(facts, dict):
        facts = [facts.get(k) for k in ("dataset", "split", "model", "epochs")]
    if not (isinstance(key, str) and isinstance(facts, list) and len(facts) == 4):
        return None
    *names, epochs = facts
    if not all(isinstance(n, str) for n in names) or isinstance(epochs, bool) or not isinstance(epochs, int) \
            or epochs < 1:
        return None
    return key, (names[0], names[1], names[2], epochs)


def earlier_runs(runs_path: Path) -> dict[str, tuple[str, str, str, int]]:
    """run key -> (data set, split, model, epochs) of the runs in the runs file, whatever code made them (an older
    flat layout included; unreadable lines and ill-typed rows are skipped), and of those an earlier plan read there.
    The store drops the runs of other code when it is next written, so each plan keeps what it reads in the recllm
    cache (:func:`_epochs_memo`, per runs file; a run key holds the settings, seed, data and epoch cap, not the
    code, so a refit under new code finds its own earlier fit)."""
    from recllm.utils import write_text_atomic

    memo_path, where = _epochs_memo(), str(runs_path.resolve())
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    memo = memo if isinstance(memo, dict) else {}
    mine = memo.get(where) if isinstance(memo.get(where), dict) else {}
    known = dict(filter(None, (_earlier_run(k, v) for k, v in mine.items())))
    lines = runs_path.read_text(encoding="utf-8").splitlines() if runs_path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            row = record.get("row", record)
            found = _earlier_run(record.get("key", row.get("key") if isinstance(row, dict) else None), row)
            if found:
                known[found[0]] = found[1]
    if known != mine:
        memo[where] = {k: list(v) for k, v in known.items()}
        try:
            write_text_atomic(memo_path, json.dumps(memo, indent=1, sort_keys=True))
        except OSError:
            pass  # a read-only cache: this plan still uses what it read
    return known


def by_model(runs: dict[str, tuple[str, str, str, int]]) -> dict[tuple[str, str, str], list[int]]:
    """(data set, split, model) -> the epochs of those of ``runs`` (:func:`earlier_runs`)."""
    out: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for dataset, split, model, epochs in runs.values():
        out[(dataset, split, model)].append(epochs)
    return out


def prior_epochs(runs_path: Path) -> dict[tuple[str, str, str], list[int]]:
    """(data set, split, model) -> epochs that earlier runs took (:func:`earlier_runs`)."""
    return by_model(earlier_runs(runs_path))


def _epochs_memo() -> Path:
    from recllm.utils import cache_dir

    return cache_dir("bench") / "learn-epochs.json"


def _speed_cache() -> Path:
    from recllm.utils import cache_dir

    return cache_dir("bench") / "learn-speed.json"


def _load_speeds() -> dict[str, float]:
    path = _speed_cache()
    try:
        return {k: float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _probe_split(split: Any, n_users: int) -> Any:
    """``split`` restricted to ``n_users`` seeded users (same catalogue): what one probe epoch trains on."""
    from recllm.data.dataset import USER
    from recllm.data.split import Split

    users = np.sort(split.train[USER].unique())
    picked = np.random.default_rng(0).choice(users, min(n_users, len(users)), replace=False)

    def keep(frame: Any) -> Any:
        return frame[frame[USER].isin(picked)]

    return Split(split.name, split.dataset, keep(split.train), keep(split.valid), keep(split.test), dict(split.info))


def _probe_again(speeds: dict[str, float], key: str, probed: set[str]) -> bool:
    """Whether the cached probe ``key`` (not taken in this plan: ``probed``) was starved of its cores (e.g. run under
    ``nice`` beside busy jobs) and a core is free now (:func:`recllm.bench.reporting.calmer_now`): it would
    overprice every run."""
    from recllm.bench.reporting import calmer_now
    from recllm.hardware import load_average

    return key not in probed and calmer_now(float("nan"), load_average(), os.cpu_count() or 1,
                                            speeds.get(key + "|share", float("nan")))


# the modules whose code sets a fit's speed: a change to any of them makes the speed probes stale
TRAINING_MODULES = ("recllm.models.sasrec", "recllm.models.hstu", "recllm.models.softmax", "recllm.learn.train",
                    "recllm.learn.model", "recllm.learn.losses")


def training_code() -> dict[str, str]:
    """sha256 of the source of each of :data:`TRAINING_MODULES` (a speed probe's key holds it)."""
    import importlib.util

    from recllm.bench.runs import source_sha256

    return {name: source_sha256(importlib.util.find_spec(name).origin) for name in TRAINING_MODULES}


def epoch_seconds(spec: Any, loo: Any, data: str, speeds: dict[str, float], interactions: int,
                  probed: set[str] | None = None) -> tuple[float, float]:
    """Seconds one epoch (with its validation) of ``spec`` takes on this machine for a split with ``interactions``
    training interactions: a line through two probes on :data:`PROBE_USERS` users of the leave-one-out split
    (cached in ``speeds``; ``probed``: the keys probed in this plan, added to); and the share of its cores the probe
    had."""
    import torch

    from recllm.bench.reporting import ShareClock
    from recllm.bench.runs import run_key
    from recllm.hardware import cpu_model

    settings = {k: v for k, v in spec.settings.items() if k != "content"}  # the encoder does not change the cost
    key = run_key(version=_PROBE_VERSION, cpu=cpu_model(), threads=torch.get_num_threads(), data=data,
                  dataset=loo.dataset.name, settings=settings, model=spec.name if not settings else None,
                  users=PROBE_USERS, code=training_code())
    probed = set() if probed is None else probed
    if key + "|per" not in speeds or _probe_again(speeds, key, probed):
        probed.add(key)
        width = 256  # whitened content width of either encoder
        content = np.random.default_rng(0).normal(size=(loo.dataset.n_items, width)).astype(np.float32)
        points, clock = [], ShareClock()
        for users in PROBE_USERS:
            probe = _probe_split(loo, users)
            model = spec.build(0, 1, content if spec.uses_content else None)
            start = time.perf_counter()
            model.fit(probe)
            points.append((len(probe.train), time.perf_counter() - start))
        (n1, t1), (n2, t2) = points
        per = (t2 - t1) / (n2 - n1) if n2 > n1 else 0.0
        if per <= 0:  # timing noise: proportional to the larger probe instead
            per, t1, n1 = t2 / max(n2, 1), 0.0, 0
        speeds[key + "|fixed"], speeds[key + "|per"] = max(t1 - per * n1, 0.0), per
        speeds[key + "|share"] = clock.share()
    return (speeds[key + "|fixed"] + speeds[key + "|per"] * interactions,
            speeds.get(key + "|share", float("nan")))


def _twin(spec: Any, specs: list[Any]) -> Any:
    """The model that differs from ``spec`` only in its content encoder, if any."""
    def bare(s: Any) -> dict[str, Any]:
        return {k: v for k, v in s.settings.items() if k != "content"}

    return next((s for s in specs if s is not spec and s.encoder and spec.encoder and bare(s) == bare(spec)), None)


def plan_benchmark(out_path: Path, quick: bool = False, datasets: list[str] | None = None,
                   splits: list[str] | None = None, seeds: list[int] | None = None, models: list[str] | None = None,
                   epochs: int | None = None, patience: int = bench.DEFAULT_PATIENCE) -> list[Unit]:
    """Print every run the benchmark would make (stored or not, estimated minutes) and the embedding times still
    to measure; returns the runs. Fits nothing but the short speed probes."""
    import torch

    from recllm.bench.reporting import ShareClock
    from recllm.bench.runs import RunStore, data_sha256
    from recllm.data import make_split
    from recllm.data.folder import source_files
    from recllm.errors import UserInputError
    from recllm.hardware import cpu_model

    datasets = list(datasets or (bench.QUICK_DATASETS if quick else bench.FULL_DATASETS))
    splits = list(splits or bench.SPLITS)
    seeds = list(seeds if seeds is not None else ([0] if quick else [0, 1, 2]))
    epochs = epochs or (bench.QUICK_EPOCHS if quick else bench.FULL_EPOCHS)
    specs = bench.model_specs(quick, patience)
    if models:
        specs = [s for s in specs if s.name in models]
    runs_path = out_path.with_suffix(".runs.jsonl")
    try:
        store = RunStore(runs_path)
    except UserInputError as exc:
        print(f"[bench learn] the stored runs cannot be read ({exc}); planning as if none were stored")
        store = None
    timing_store = contents.timing_store(runs_path)
    runs = earlier_runs(runs_path)
    earlier = by_model(runs)
    speeds = _load_speeds()
    probed: set[str] = set()  # the probes taken again in this plan (a starved one is retaken once)
    units: list[Unit] = []
    embedding: list[Unit] = []  # a catalogue embedding still to measure (model: the encoder)
    for name in datasets:
        dataset = bench.load_dataset(name)
        if dataset is None:
            continue
        data = data_sha256(source_files([name]))
        loo = make_split(dataset, "loo")
        for split_name in splits:
            for seed in seeds:
                split = make_split(dataset, split_name, seed=seed)
                for spec, key in bench.unit_keys(split, seed, specs, data, epochs, quick, bool(models)):
                    unit = Unit(name, split_name, seed, spec.name, store is not None and key in store)
                    if not unit.stored:
                        n_epochs, basis = epochs, "epoch cap"
                        twin = _twin(spec, specs)
                        if key in runs:  # this very run, fitted by earlier code
                            n_epochs, basis = min(epochs, runs[key][3]), "its earlier fit"
                        else:
                            for source in (spec, twin):
                                found = earlier.get((name, split_name, source.name)) if source is not None else None
                                if found:
                                    n_epochs = min(epochs, round(float(np.mean(found))))
                                    basis = "earlier runs" + ("" if source is spec else f" of {source.name}")
                                    break
                        per, unit.share = (epoch_seconds(spec, loo, data, speeds, len(split.train), probed)
                                           if spec.settings else (0.0, 1.0))
                        unit.minutes = per * max(n_epochs, 1) / 60
                        unit.basis = f"{n_epochs} epochs ({basis})" if spec.settings else "no training"
                    units.append(unit)
        for encoder in dict.fromkeys(s.encoder for s in specs if s.encoder):
            key = contents.timing_key(data, name, encoder, contents.QUICK_SAMPLE if quick else 0)
            if contents.stored_timing(timing_store, key) is None:
                speed_key = f"embed|{_PROBE_VERSION}|{cpu_model()}|{torch.get_num_threads()}|{data}|{encoder}"
                if speed_key + "|encode" not in speeds or _probe_again(speeds, speed_key, probed):
                    probed.add(speed_key)
                    clock = ShareClock()
                    _, timing = contents.measure_content(dataset, encoder, contents.QUICK_SAMPLE)
                    speeds[speed_key + "|load"] = timing.load_seconds
                    speeds[speed_key + "|encode"] = timing.encode_seconds
                    speeds[speed_key + "|share"] = clock.share()
                part = contents.QUICK_SAMPLE / dataset.n_items if quick else 1.0
                seconds = speeds[speed_key + "|load"] + speeds[speed_key + "|encode"] * min(part, 1.0)
                embedding.append(Unit(name, "-", -1, encoder, False, seconds / 60, "catalogue embedded fresh, timed",
                                      speeds.get(speed_key + "|share", float("nan"))))
    from recllm.utils import write_text_atomic

    write_text_atomic(_speed_cache(), json.dumps(speeds, indent=1, sort_keys=True))
    print(format_plan(units, embedding, cpu_model(), torch.get_num_threads()))
    return units


def format_plan(units: list[Unit], embedding: list[Unit], cpu: str, threads: int) -> str:
    """The plan as text: one line per run, then totals per data set and overall, and an idle machine's estimate
    when the probes did not have their cores (:func:`recllm.bench.reporting.idle_share`)."""
    from recllm.bench.reporting import idle_share

    lines = [f"{'data set':34} {'split':10} {'seed':>4}  {'model':32} {'status':8} {'est. min':>8}  basis"]
    for u in units:
        lines.append(f"{u.dataset:34} {u.split:10} {u.seed:>4}  {u.model:32} {'stored' if u.stored else 'to fit':8} "
                     f"{u.minutes:8.1f}  {u.basis}")
    for e in embedding:
        lines.append(f"{e.dataset:34} {'-':10} {'-':>4}  {'embed with ' + contents.ENCODERS.get(e.model, e.model):32} "
                     f"{'to time':8} {e.minutes:8.1f}  {e.basis}")
    lines.append("")
    for name in dict.fromkeys(u.dataset for u in units):
        mine = [u for u in units if u.dataset == name]
        left = sum(u.minutes for u in mine) + sum(e.minutes for e in embedding if e.dataset == name)
        lines.append(f"{name}: {sum(u.stored for u in mine)} of {len(mine)} runs stored; {left:.0f} min left "
                     f"(~{left / 60:.1f} h)")
    todo = [u for u in units if not u.stored] + embedding
    total = sum(u.minutes for u in todo)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    lines.append(f"in all: {sum(u.stored for u in units)} of {len(units)} runs stored; about {total:.0f} min "
                 f"(~{total / 60:.1f} h) left on this machine ({cpu}, {threads} threads{load}; estimates from "
                 f"one-epoch probes on {' and '.join(map(str, PROBE_USERS))} users, cached in {_speed_cache()})")
    idle = sum(u.minutes * idle_share(u.share, float("nan")) for u in todo)
    if idle < 0.95 * total:
        lines.append(f"on an idle machine roughly ~{idle / 60:.1f} h: the probes had about {idle / total:.0%} of their "
                     "cores (CPU time over wall time, time-weighted); a probe short of its cores is taken again "
                     "when a core is free")
    lines.append("Run it in pieces (each run is stored as it finishes; a rerun reuses it), e.g. "
                 "`recllm bench learn --datasets <one data set>`, then the full command for the report. On several "
                 "cores, one process a core with `--threads 1` and its own `--seeds` (`--seeds 0`, `--seeds 1`, ...) "
                 "shares the store without fitting a run twice (the ablations run at seed 0 only).")
    return "\n".join(lines)
