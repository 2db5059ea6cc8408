"""``recllm bench learn``: LEARN against popularity, content-kNN, SASRec (CE, BCE) and HSTU -> docs/results/learn.md.

Every model x data set x split x seed is fitted (early stopping on the validation stage only), then ranked on the
whole catalogue by the shared harness (HR and NDCG at 10, 50, 200, history items masked); a cold-start split
also among its test-new items only (``new:`` metrics at 10 and 50). A figure is the mean
over seeds with a 95% t-interval across seeds (with one seed: a bootstrap interval over users). Each fit records
its training time per epoch, total fit time and peak resident memory added during the fit. Content embeddings
are computed once per data set and encoder (SmolLM2-135M, and all-MiniLM-L6-v2 for the shared tower: the
encoder is a benchmark dimension and part of each run's key) and cached on disk by recllm.llm; what embedding a
catalogue costs is measured once per data set and encoder (:mod:`recllm.bench.learn.content`). Finished runs are
stored beside the report (``learn.runs.jsonl`` + ``learn.runs.npz``, see :mod:`recllm.bench.runs`) and reused
while the code that produced them, the data and the settings match, so a benchmark longer than one sitting resumes
where it stopped; ``--plan`` (:mod:`recllm.bench.learn.plan`) lists what is stored and what is left.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.learn import content as contents
from recllm.bench.learn.recbole_ref import cases_fingerprint
from recllm.bench.runs import RunStore, data_sha256, required_fields, run_key
from recllm.learn.defaults import SEQ_SETTINGS
from recllm.learn.encoder import content_config, content_for
from recllm.models.base import Recommender

FULL_DATASETS = ("ml-100k", "ml-latest-small", "amazon2018-magazine-subscriptions", "ml-1m")
QUICK_DATASETS = ("ml-100k",)
# Full mode runs the ablation models on this data set only (at ABLATION_SEED), whatever order or subset of data sets
# a run is given, so shards over different data sets split the work without repeating ablations.
ABLATION_DATASET = "ml-100k"
# the seed of the ablation runs, whichever --seeds a process is given: a benchmark split by seed across processes
# (`--seeds 0`, `--seeds 1`, ...) fits each ablation once, not once per process (as "the first seed given" did)
ABLATION_SEED = 0
# Data sets whose catalogue is mostly items nobody engaged with (Amazon: metadata of items the 5-core filter
# removed from the reviews); the catalogue-negatives variant of LEARN runs on every seed of these (and, as a
# control, on the ablation data set at ABLATION_SEED). 256 was set before any run; a validation sweep on Amazon seed 0
# (learn-catalogue.md) found no count clearly better (the best of 64/256/1024 differs per split).
UNENGAGED_ITEM_DATASETS = ("amazon2018-magazine-subscriptions",)
CATALOGUE_NEGATIVES = 256
SPLITS = ("loo", "temporal", "cold_start")  # cold_start: recllm.data.cold_start_split (new items in time)
MINILM_LEARN = "LEARN (shared tower, MiniLM)"
CONTENT_KNN = "content-kNN"
KS = (10, 50, 200)
# Cold-start splits are also ranked among the items new in the test period only (the usual cold-start protocol):
# metric "new:hr@10" is HR@10 with those items as the only candidates.
NEW_ITEM_KS = (10, 50)
NEW_ITEM_PREFIX = "new:"


@dataclass
class RunResult:
    """One fitted model's test figures on one data set x split x seed."""

    dataset: str
    split: str
    seed: int
    model: str
    metrics: dict[str, float]
    per_user: dict[str, list[float]] = field(repr=False)
    fit_seconds: float = math.nan
    epoch_seconds: float = math.nan
    epochs: int = 0
    best_epoch: int = 0
    peak_mb: float = math.nan
    n_users: int = 0
    key: str = ""
    # validation NDCG@10 was 0 at every epoch: early stopping had no signal and kept the first epoch's weights
    flat_validation: bool = False
    # epochs an interrupted fit of this run had checkpointed (0: fitted in one go); fit_seconds, epoch_seconds and
    # peak_mb then count only the epochs after them, the ones fitted on ``machine``
    resumed_after: int = 0
    # CPU model and torch threads of the process that fitted the run (:func:`recllm.hardware.this_process_machine`;
    # None: stored before it was recorded): the machine its times were measured on
    machine: dict[str, Any] | None = None
    # the share of its torch threads' cores the fitting process had (CPU time over wall time x threads; NaN: not
    # recorded): below 1 the fit shared its cores with other work, and its times are about 1/share an idle one's
    core_share: float = math.nan


def store_run(store: RunStore, result: RunResult) -> None:
    """Put ``result`` in the run store: its figures as the row, its per-user metrics as arrays."""
    row = {k: v for k, v in vars(result).items() if k != "per_user"}
    store.put(result.key, row, {m: np.asarray(v, dtype=np.float32) for m, v in result.per_user.items()})


def stored_run(store: RunStore, key: str) -> RunResult | None:
    """The valid stored run under ``key`` (code, data and settings unchanged), or None."""
    row = store.get(key, [name for name in required_fields(RunResult) if name != "per_user"])  # per_user: arrays
    arrays = store.get_arrays(key)
    if row is None or set(arrays) != set(row.get("metrics", {})):
        return None
    fields = {k: v for k, v in row.items() if k in RunResult.__dataclass_fields__}
    return RunResult(**{**fields, "per_user": {m: a.astype(float).tolist() for m, a in arrays.items()}})


# ---------------------------------------------------------------------------------------------- measuring
def _release_freed_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc ``malloc_trim``), so the next
    measurement's baseline does not hide its allocations in memory an earlier fit freed."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is merely less tight
        pass


class PeakMemory:
    """Peak resident memory added inside the ``with`` block (MB), sampled every ``interval`` seconds.

    Reads ``/proc/self/statm`` (Linux); elsewhere falls back to ``tracemalloc`` (Python allocations only).
    Freed memory is returned to the OS first (:func:`_release_freed_memory`), so blocks measure from a low base.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak_mb = interval, math.nan
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._stop = threading.Event()
        self._proc = Path("/proc/self/statm").is_file()

    def _rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self._page

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._max = max(self._max, self._rss())

    def __enter__(self) -> "PeakMemory":
        _release_freed_memory()
        if self._proc:
            self._base = self._max = self._rss()
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        else:
            import tracemalloc

            tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._rss())
            self.peak_mb = (self._max - self._base) / 2**20
        else:
            import tracemalloc

            self.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()


# ---------------------------------------------------------------------------------------------- models
from recllm.bench.learn.stopping import DEFAULT_PATIENCE, FULL_EPOCHS, QUICK_EPOCHS  # noqa: E402 (re-exported)


@dataclass
class ModelSpec:
    """A benchmarked model: display name, how to build it, and whether it reads item text."""

    name: str
    build: Callable[[int, int, Any], Recommender]  # (seed, max_epochs, raw content embeddings) -> model
    uses_content: bool = False
    note: str = ""
    ablation: bool = False  # full mode: run on ABLATION_DATASET at ABLATION_SEED
    datasets: tuple[str, ...] = ()  # full mode: run on every seed of these data sets (and nowhere else unless ablation)
    settings: dict[str, Any] = field(default_factory=dict)  # what decides its results (part of each run's key)
    encoder: str | None = None  # the content encoder (a key of content.ENCODERS) of a model that reads item text


def model_specs(quick: bool, patience: int = DEFAULT_PATIENCE) -> list[ModelSpec]:
    """The compared models with their fixed settings (chosen on validation NDCG@10 of ML-100K, see the report)."""
    from recllm.learn.train import LEARN
    from recllm.models import MODELS, HSTU, ContentKNN, SASRec

    seq = dict(SEQ_SETTINGS, batch_size=128, patience=patience, show_progress=False)
    hstu = {**seq, "n_heads": 1, "lr": 3e-3, "loss": "ce"}
    # lr 3e-3 and temperature 0.2 (LEARNConfig's defaults) were chosen on ML-100K validation NDCG@10
    learn_base = {**seq, "lr": 3e-3}

    def sasrec(loss: str) -> tuple[Callable[[int, int, Any], Recommender], dict[str, Any]]:
        kw = {**seq, "loss": loss}
        return (lambda s, e, c: SASRec(seed=s, max_epochs=e, **kw)), kw

    def learn(encoder: str = contents.DEFAULT_ENCODER, **variant: Any) -> dict[str, Any]:
        uses_content = variant.get("item_input") != "id"
        kw = {**learn_base, **variant}
        if uses_content:  # the encoder named in the model's own config (what it would encode new items with)
            kw["content"] = asdict(content_config(encoder))
        build = (lambda seed, epochs, content: LEARN(
            content_embeddings=content if uses_content else None, seed=seed, max_epochs=epochs, **kw))
        return {"build": build, "settings": kw, "uses_content": uses_content,
                "encoder": encoder if uses_content else None}

    sasrec_ce, sasrec_ce_kw = sasrec("ce")
    sasrec_bce, sasrec_bce_kw = sasrec("bce")
    return [
        ModelSpec("popularity", lambda seed, epochs, content: MODELS["popularity"]()),
        ModelSpec(CONTENT_KNN, lambda seed, epochs, content: ContentKNN(content_embeddings=content),
                  uses_content=True, encoder=contents.DEFAULT_ENCODER, note=(
                      "no training: cosine between an item's content vector (SmolLM2, whitened as LEARN's input) and "
                      "the mean of the history's; the content-only reference a cold-start model has to beat")),
        ModelSpec("SASRec-CE", sasrec_ce, settings=sasrec_ce_kw),
        ModelSpec("SASRec-BCE", sasrec_bce, ablation=True, settings=sasrec_bce_kw),
        ModelSpec("HSTU", lambda s, e, c: HSTU(seed=s, max_epochs=e, **hstu), settings=hstu, note=(
            "full-softmax CE over the catalogue and lr 3e-3 (both chosen on ML-100K validation NDCG@10, over the "
            "paper's 128-negative sampled softmax and lr 1e-3); cosine scores / temperature 0.05; relative position "
            "bias only (the Recommender API passes no timestamps)")),
        ModelSpec("LEARN (shared tower)", **learn(item_input="content", item_tower="shared")),
        ModelSpec(MINILM_LEARN, **learn("minilm", item_input="content", item_tower="shared"), note=(
            "the shared tower over all-MiniLM-L6-v2 sentence embeddings of the item texts instead of SmolLM2's "
            "mean-pooled states (same whitening, same training): the cheap encoder, for CPUs without fast bfloat16")),
        ModelSpec("LEARN (MLP item tower)", **learn(item_input="content", item_tower="mlp"), ablation=True),
        ModelSpec("LEARN-ID (ablation)", **learn(item_input="id", item_tower="mlp"),
                  note="ID embeddings instead of content, with the MLP item tower (a shared tower over a bare ID "
                       "embedding must map an item and its successor to nearby vectors)", ablation=True),
        ModelSpec("LEARN content+ID", **learn(item_input="content+id", item_tower="shared"), ablation=True),
        ModelSpec("LEARN + catalogue negatives", **learn(item_input="content", item_tower="shared",
                                                         catalogue_negatives=CATALOGUE_NEGATIVES),
                  datasets=UNENGAGED_ITEM_DATASETS, ablation=True, note=(
                      f"the shared tower plus {CATALOGUE_NEGATIVES} negatives per batch drawn uniformly from the whole "
                      "catalogue (mixed negative sampling, Yang et al. 2020; the count is not tuned, see learn-catalogue.md). Made for "
                      "data sets whose catalogue is mostly items no user engaged with (all seeds there): in-batch candidates "
                      "never contain them, so plain LEARN never learns to rank them down (see learn-catalogue.md); "
                      "on the ablation data set, where every item is engaged, as a control")),
    ]


# ---------------------------------------------------------------------------------------------- running
def planned(spec: ModelSpec, dataset: str, ablation_seed: bool, quick: bool = False) -> bool:
    """Whether a run of ``spec`` on ``dataset`` for a seed belongs to the benchmark: quick mode runs the headline
    models only (no ablation, no data-set variant); full mode see :func:`planned_in_full_mode`."""
    if quick:
        return not (spec.ablation or spec.datasets)
    return planned_in_full_mode(spec, dataset, ablation_seed)


def planned_in_full_mode(spec: ModelSpec, dataset: str, ablation_seed: bool) -> bool:
    """Whether the full benchmark runs ``spec`` on ``dataset`` for a seed: every seed of a data set in
    ``spec.datasets``; an ablation also on the ablation data set at :data:`ABLATION_SEED` (``ablation_seed``: the
    seed is that one); every other model everywhere."""
    if spec.datasets and dataset in spec.datasets:
        return True
    if spec.ablation:
        return dataset == ABLATION_DATASET and ablation_seed
    return not spec.datasets


FITS_AREA = ("bench", "learn-fits")  # in the cache: epoch checkpoints of fits whose runs are not stored yet


def fit_checkpoints(key: str) -> Path:
    """The folder where the fit of the run stored under ``key`` keeps its epoch checkpoints (and the hash of the
    code writing them) until the run is stored (:func:`forget_fit`), so a fit cut off by the end of a session
    resumes at its last epoch."""
    from recllm.utils import cache_root

    return cache_root().joinpath(*FITS_AREA, key[:24])


# in a fit's folder: the source hash of the code that fitted it, and the trainer's epoch checkpoints
FIT_CODE_FILE, FIT_EPOCHS_FOLDER = "code.sha256", "epochs"


def fit_code() -> str:
    """The code a fit runs: the source hash of the whole recllm package, read once per process. A run's key holds
    its settings, data and seed but not its code, so a checkpoint carries this hash and is resumed only by the
    same code (a fit finished by other code would be stored as that code's run)."""
    from recllm.utils import package_source_sha256

    return package_source_sha256("recllm")


def _checkpointed(model: Any, key: str) -> int:
    """Give ``model`` (a model trained epoch by epoch: its config has ``checkpoint_dir``) the epoch checkpoints of
    run ``key``; the epochs an interrupted fit of the same run, by the same code, left there (0: none, or a model
    without epochs). A resumed fit ends where a fit in one go ends (the checkpoint holds the weights, optimizer and
    random states). Checkpoints written by other code (:func:`fit_code`) are removed and the fit starts afresh."""
    config = getattr(model, "config", None)
    if not key or config is None or not hasattr(config, "checkpoint_dir"):
        return 0
    from dataclasses import replace

    from recllm.distributed.checkpoint import EpochCheckpoint
    from recllm.utils import write_text_atomic

    folder = fit_checkpoints(key)
    marker, epochs_folder = folder / FIT_CODE_FILE, folder / FIT_EPOCHS_FOLDER
    code = fit_code()
    if folder.is_dir() and not (marker.is_file() and marker.read_text(encoding="utf-8").strip() == code):
        print(f"[bench learn] {folder}: its epoch checkpoints were written by other code (the recllm source "
              "changed since); this fit starts afresh", flush=True)
        forget_fit(key)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(marker, code + "\n")
    model.config = replace(config, checkpoint_dir=str(epochs_folder))
    return EpochCheckpoint.at(epochs_folder).saved_epoch()


def forget_fit(key: str) -> None:
    """Remove the epoch checkpoints of run ``key`` (the benchmark made them; the run is stored now, or they came
    from other code, or the run is fitted afresh)."""
    import shutil

    folder = fit_checkpoints(key)
    if folder.is_dir():
        shutil.rmtree(folder)


def run_one(spec: ModelSpec, split: Any, seed: int, epochs: int, content: Any, key: str = "") -> RunResult:
    """Fit one model on one split (timed, memory-watched; epoch checkpoints under :func:`fit_checkpoints` when
    ``key`` is given) and rank the whole catalogue for the test users."""
    from recllm.eval.ranking import evaluate_full_ranking

    model = spec.build(seed, epochs, content)
    resumed = _checkpointed(model, key)
    from recllm.bench.reporting import ShareClock

    clock, start = ShareClock(), time.perf_counter()
    with PeakMemory() as mem:
        model.fit(split)
    fit_seconds, core_share = time.perf_counter() - start, clock.share()
    cases = split.eval_cases("test")
    result = evaluate_full_ranking(model, cases, ks=KS, show_progress=False)
    per_user = {f"{m}@{k}": result.per_user[f"{m}@{k}"] for m in ("hr", "ndcg") for k in KS}
    new = cold_start_new_items(split)
    if new is not None:
        among = evaluate_full_ranking(model, cases, ks=NEW_ITEM_KS, show_progress=False, candidates=new)
        per_user.update({f"{NEW_ITEM_PREFIX}{m}@{k}": among.per_user[f"{m}@{k}"] for m in ("hr", "ndcg")
                         for k in NEW_ITEM_KS})
    from recllm.hardware import this_process_machine

    history = getattr(model, "history_", [])
    return RunResult(
        split.dataset.name, split.name, seed, spec.name, {k: float(v.mean()) for k, v in per_user.items()},
        {k: v.tolist() for k, v in per_user.items()}, fit_seconds, seconds_per_epoch(model, resumed),
        len(history), int(getattr(model, "best_epoch_", 0)), mem.peak_mb, len(result), key,
        flat_validation(history), resumed, this_process_machine(), core_share,
    )


def seconds_per_epoch(model: Any, resumed_after: int = 0) -> float:
    """A fitted model's mean training seconds per epoch, over the epochs after ``resumed_after`` (those this process
    fitted, on one machine; the earlier ones' times, restored from the checkpoint, may be another machine's)."""
    if resumed_after:  # NaN when no epoch was left to fit (e.g. cut off while scoring the test users)
        fitted = [r["seconds"] for r in getattr(model, "history_", [])[resumed_after:] if "seconds" in r]
        return float(np.mean(fitted)) if fitted else math.nan
    return float(getattr(model, "epoch_seconds_", math.nan))


def flat_validation(history: list[dict[str, float]]) -> bool:
    """Whether a fit's validation NDCG@10 (``model.history_``) was 0 at every epoch it was measured: early
    stopping then had nothing to go on and kept the first epoch (seen on the cold-start split of ML-100K)."""
    scores = [r["valid_ndcg@10"] for r in history if "valid_ndcg@10" in r]
    return bool(scores) and all(v == 0 for v in scores)


def cold_start_new_items(split: Any) -> np.ndarray | None:
    """The items a cold-start split's test period introduces (first interaction at or after its test cut), sorted,
    as the split records them (:meth:`recllm.data.split.Split.candidates`): the candidates of its among-new-items
    metrics. None for other splits."""
    return split.candidates("test") if split.name == "cold_start" else None


def unit_keys(split: Any, seed: int, specs: list[ModelSpec], data: str, epochs: int, quick: bool,
              explicit_models: bool = False) -> list[tuple[ModelSpec, str]]:
    """The runs of ``split`` x ``seed`` the benchmark makes, each with its store key: the data sha256, the split's
    own cases (a changed split definition never reuses runs scored on the old one), the seed, the model, its
    settings and content encoder, the epoch cap and the mode."""
    cases = {stage: cases_fingerprint(split.eval_cases(stage)) for stage in ("valid", "test")}
    name = split.dataset.name
    return [(spec, run_key(data=data, dataset=name, split=split.name, seed=seed, model=spec.name,
                           settings=spec.settings, encoder=spec.encoder, epochs=epochs, quick=quick, cases=cases))
            for spec in specs if explicit_models or planned(spec, name, seed == ABLATION_SEED, quick)]


def targets_in_history(cases: Any) -> tuple[int, int]:
    """How many of the ``cases``' targets are items of their own history, and how many targets there are."""
    repeated = sum(int(np.isin(t, h).sum()) for h, t in zip(cases.histories, cases.targets))
    return repeated, sum(len(t) for t in cases.targets)


def describe_split(split: Any) -> dict[str, Any]:
    """What the report says about a split: test and validation cases (users), whether it is informative (at least
    ``recllm.data.split.MIN_TEST_USERS`` test users) and its note."""
    from recllm.data.split import MIN_TEST_USERS

    test, valid = len(split.eval_cases("test")), len(split.eval_cases("valid"))
    users = int(split.info.get("test_users", test))
    info = {"test_cases": test, "test_users": users, "valid_cases": valid,
            "informative": bool(split.info.get("informative", users >= MIN_TEST_USERS)),
            "note": str(split.info.get("note", ""))}
    if not info["informative"] and not info["note"]:
        info["note"] = f"only {users} test users (fewer than {MIN_TEST_USERS}): too few for an informative comparison"
    repeated, targets = targets_in_history(split.eval_cases("test"))
    if repeated:
        info["note"] = "; ".join(n for n in (info["note"], (
            f"{repeated} of the {targets} test targets are already in their user's history (a re-consumption, or a "
            "duplicate row of the data file): the history is masked, so every model misses them")) if n)
    for extra in ("test_items", "valid_items"):
        if extra in split.info:
            info[extra] = int(split.info[extra])
    return info


def load_dataset(name: str) -> Any:
    """The data set (a registry name or a data folder of your own files), or None (with the reason printed) when
    a registry data set's files are not present here. A data folder the user named is read or refused: its
    mistake is a one-line :class:`recllm.data.dataset.DataError`, never a skipped section."""
    from recllm.data import load
    from recllm.data.folder import is_data_folder, read_folder

    if is_data_folder(name):  # named as --datasets gave it, in the report's sections as in its runs
        return read_folder(name, name=name)
    try:
        return load(name)
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"[bench learn] skipping {name}: {exc}")
        return None


def no_data_error(datasets: list[str]) -> Exception:
    """The one-line error for a benchmark none of whose ``datasets`` is on this machine."""
    from recllm.data.loaders import data_home
    from recllm.errors import UserInputError

    return UserInputError(f"none of the benchmark's data sets ({', '.join(datasets)}) is on this machine",
                          "--datasets", f"place their files under {data_home()} (see `recllm data list`), set "
                          "RECLLM_DATA to the folder holding them, or name data folders of your own")


def run_benchmark(quick: bool = False, datasets: list[str] | None = None, splits: list[str] | None = None,
                  seeds: list[int] | None = None, models: list[str] | None = None, out: Any = None,
                  epochs: int | None = None, recbole_run: str | None = None, patience: int = DEFAULT_PATIENCE,
                  show_progress: bool = True, fresh: bool = False) -> int:
    """Run the grid and write the report (see the module docstring). Returns a process exit code.

    ``out``: a checked :class:`recllm.bench.reporting.ReportTarget` or a path. Finished runs are stored beside
    the report (:mod:`recllm.bench.runs`) and reused while their code, data and settings match, so an interrupted
    benchmark resumes; ``fresh`` ignores the stored runs.
    """
    from recllm.bench.learn.report import write_learn_report
    from recllm.bench.reporting import REPORT_FOLDER, as_target
    from recllm.data import make_split
    from recllm.data.folder import source_files

    explicit_seeds = seeds is not None
    datasets = list(datasets or (QUICK_DATASETS if quick else FULL_DATASETS))
    splits = list(splits or SPLITS)
    seeds = list(seeds if seeds is not None else ([0] if quick else [0, 1, 2]))
    default_epochs = QUICK_EPOCHS if quick else FULL_EPOCHS
    epochs = epochs or default_epochs
    target = as_target(out, "learn-quick.md" if quick else "learn.md")
    out_path, default_out = target.path, Path.cwd() / REPORT_FOLDER / ("learn-quick.md" if quick else "learn.md")
    specs = model_specs(quick, patience)
    default_datasets = list(QUICK_DATASETS if quick else FULL_DATASETS)
    command = " ".join(["recllm bench learn", *(["--quick"] if quick else []),
                        *([f"--datasets {' '.join(datasets)}"] if datasets != default_datasets else []),
                        *([f"--splits {' '.join(splits)}"] if splits != list(SPLITS) else []),
                        *([f"--seeds {' '.join(map(str, seeds))}"] if explicit_seeds else []),
                        *([f"--models {' '.join(repr(m) if ' ' in m else m for m in models)}"] if models else []),
                        *([f"--epochs {epochs}"] if epochs != default_epochs else []),
                        *([f"--patience {patience}"] if patience != DEFAULT_PATIENCE else []),
                        *([f"--out {out_path}"] if out_path != default_out else [])])
    if models:
        unknown = sorted(set(models) - {s.name for s in specs})
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {[s.name for s in specs]}")
        specs = [s for s in specs if s.name in models]
    results: list[RunResult] = []
    notes: list[str] = []
    split_info: dict[tuple[str, str], dict[str, Any]] = {}  # (data set, split) -> its sizes and note
    timings: list[contents.ContentTiming] = []
    used: list[str] = []
    started = time.perf_counter()
    runs_path = out_path.with_suffix(".runs.jsonl")
    store = RunStore(runs_path)
    timing_store = contents.timing_store(runs_path)
    encoders = list(dict.fromkeys(s.encoder for s in specs if s.encoder))
    reused = 0
    loaded = {name: load_dataset(name) for name in datasets}  # every folder is read (or refused) before any fit
    if not any(d is not None for d in loaded.values()):  # no report of nothing
        raise no_data_error(datasets)
    for name in datasets:
        dataset = loaded[name]
        if dataset is None:
            notes.append(f"{name}: not present on this machine, skipped")
            continue
        if any(s.uses_content for s in specs):
            from recllm.cli_args import check_item_text

            check_item_text(dataset, name, "LEARN's content models embed", ", or pass --models naming ID-only models")
        used.append(name)
        fingerprint = data_sha256(source_files([name]))
        content: dict[str, Any] = {}  # encoder -> raw embeddings, computed when a run that is not stored needs them

        def content_of(encoder: str) -> Any:
            if encoder not in content:
                content[encoder], timing = contents.catalogue_content(dataset, encoder, timing_store, fingerprint,
                                                                      quick, show_progress)
                timings.append(timing)
            return content[encoder]

        notes.append(f"{name}: seeds {seeds}")
        if not quick and not models and name == ABLATION_DATASET and ABLATION_SEED not in seeds:
            notes.append(f"{name}: no ablation runs (they run at seed {ABLATION_SEED}, which --seeds does not hold)")
        for split_name in splits:
            for seed in seeds:
                split = make_split(dataset, split_name, seed=seed)
                split_info.setdefault((name, split_name), describe_split(split))
                for spec, key in unit_keys(split, seed, specs, fingerprint, epochs, quick, bool(models)):
                    res = None if fresh else stored_run(store, key)
                    if res is not None:
                        reused, how = reused + 1, "stored"
                    else:
                        if fresh:  # afresh: no epoch checkpoints of an earlier, interrupted fit either
                            forget_fit(key)
                        res = run_one(spec, split, seed, epochs, content_of(spec.encoder) if spec.encoder else None,
                                      key)
                        how = "fitted"
                        store_run(store, res)  # a rerun resumes from here
                        forget_fit(key)
                    results.append(res)
                    print(f"[bench learn] {name} {split_name} seed {seed} {spec.name} ({how}): "
                          f"ndcg@10 {res.metrics['ndcg@10']:.4f} hr@10 {res.metrics['hr@10']:.4f} "
                          f"fit {res.fit_seconds:.1f} s ({res.epochs} epochs"
                          + (f", resumed after epoch {res.resumed_after}" if res.resumed_after else "") + ")",
                          flush=True)
        for encoder in encoders:  # the embedding-time table has every catalogue x encoder, even when all runs were stored
            if not any(t.dataset == name and t.encoder == encoder for t in timings):
                timing = contents.stored_timing(timing_store, contents.timing_key(
                    fingerprint, name, encoder, contents.QUICK_SAMPLE if quick else 0))
                if timing is None:
                    content_of(encoder)
                else:
                    timings.append(timing)
    if reused:
        notes.append(f"{reused} of {len(results)} runs reused from {runs_path.name} (same code, data and "
                     "settings); their timings are those of the session that fitted them")
    if store.stale:
        notes.append(f"{store.stale} stored runs were not reused: the code that produced them changed")
    unused = len(set(store.keys()) - {r.key for r in results})
    if unused:
        notes.append(f"{unused} stored runs of other data sets, splits, seeds or settings are kept in "
                     f"{runs_path.name} but are not part of this report")
    reference = None
    if "ml-100k" in used and "loo" in splits and any(s.name == "SASRec-CE" for s in specs):
        from recllm.bench.learn.recbole_ref import DEFAULT_RUN, recbole_reference

        ours = [r for r in results if r.dataset == "ml-100k" and r.split == "loo" and r.model == "SASRec-CE"]
        run_dir = Path(recbole_run) if recbole_run else Path.cwd() / DEFAULT_RUN
        store = out_path.with_suffix(".recbole.json")
        reference = recbole_reference(ours, make_split(load_dataset("ml-100k"), "loo", seed=0), run_dir, store,
                                      target.overwrite)
    total = time.perf_counter() - started
    write_learn_report(target, results, specs, used, seeds, notes, total, quick, reference, runs_path,
                       command, patience, split_info, timings, epochs)
    print(f"[bench learn] wrote {out_path} in {total / 60:.1f} min")
    return 0

