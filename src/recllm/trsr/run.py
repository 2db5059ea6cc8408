"""Reading a ``recllm trsr train`` run folder back: its config and the LoRA adapter to rank with, all checked.

Layout (written by ``recllm trsr train --out DIR``)::

    trsr_config.json      {"data": name, "model": HF id or folder or null, "config": TRSRConfig.to_dict()}
    sft/                  the sft_train output folder: best/ (the best epoch's adapter) and checkpoint-<step>/
        best/adapter_config.json, best/adapter_model.safetensors   (peft's format)

:func:`read_run` checks every file it will use (missing, not JSON, wrong fields, a cut adapter) and raises one
:class:`~recllm.errors.UserInputError` naming the folder and the file, before any data or model is loaded.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from recllm.run_folder import RunFolder

if TYPE_CHECKING:  # the pipeline imports torch: the command line reads this module without it
    from recllm.trsr.pipeline import TRSRConfig

RUN_KIND, RUN_VERSION = "trsr-run", 1  # recllm.outputs marker of a `recllm trsr train` run folder

__all__ = ["ADAPTER_FILES", "RUN_CONFIG", "RUN_KIND", "RUN_VERSION", "TRSRRun", "config_from_dict", "legacy_run",
           "read_run"]

RUN_CONFIG = "trsr_config.json"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclass(frozen=True)
class TRSRRun:
    """A checked run folder: the data set and model it was trained with, its config (``fine_tune=False``: the
    adapter is loaded, not trained again) and the adapter folder to load (``sft/best`` or the latest checkpoint)."""

    folder: Path
    data: str
    model: str | None
    config: TRSRConfig
    adapter: Path


def config_from_dict(raw: dict) -> TRSRConfig:
    """The TRSRConfig saved by ``TRSRConfig.to_dict()`` (summariser, ranker, seed, item text columns)."""
    from recllm.trsr.pipeline import TRSRConfig
    from recllm.trsr.ranker import RankerConfig
    from recllm.trsr.segment import SegmentConfig
    from recllm.trsr.summarize import SummarizerConfig

    summarizer = SummarizerConfig(**{**raw["summarizer"], "segment": SegmentConfig(**raw["summarizer"]["segment"])})
    ranker = RankerConfig(**{**raw["ranker"], "answers": tuple(raw["ranker"]["answers"])})
    return TRSRConfig(summarizer=summarizer, ranker=ranker, seed=raw["seed"],
                      item_text_columns=raw["item_text_columns"])


def _adapter(run: RunFolder) -> Path:
    """The adapter ``load_adapter(run/"sft")`` would load: ``sft/best``, else the latest complete checkpoint."""
    from recllm.llm.checkpoints import checkpoints

    sft = run.path("sft")
    run.check(sft.is_dir(), "sft", "is missing: the run holds no trained adapter (training never finished an epoch)")
    if (sft / "best").is_dir():
        return Path("sft") / "best"
    found = checkpoints(sft)
    run.check(bool(found), "sft", "holds no trained adapter (neither best/ nor a complete checkpoint-<step>/)")
    return Path("sft") / found[-1][1].name


def legacy_run(folder: Path) -> bool:
    """A run folder written before run folders were marked: only trsr_config.json and the sft/ folder."""
    names = {p.name for p in folder.iterdir()}
    return bool(names) and names <= {RUN_CONFIG, "sft"}


def read_run(folder: str | os.PathLike[str]) -> TRSRRun:
    """The run in ``folder`` after checking its config and adapter files (see the module docstring)."""
    from recllm.outputs import read_marker

    where = Path(folder).expanduser()  # a damaged run (marked, or from before the marker) is trained again in place
    ours = (read_marker(where) or {}).get("kind") == RUN_KIND or where.is_dir() and legacy_run(where)
    run = RunFolder(folder, "TRSR run",
                    f"train it again with `recllm trsr train --data <name> --out {folder}` (a rerun resumes)" if ours
                    else "give a folder written by `recllm trsr train --out DIR`, or train one into a new folder")
    run.require(RUN_CONFIG)
    saved = run.json(RUN_CONFIG)
    data, model = saved.get("data"), saved.get("model")
    run.check(isinstance(data, str) and bool(data.strip()), RUN_CONFIG, f"has no data set name (data: {data!r})")
    run.check(model is None or (isinstance(model, str) and bool(model.strip())), RUN_CONFIG,
              f"has model {model!r}, not a model id, a folder or null")
    run.check(isinstance(saved.get("config"), dict), RUN_CONFIG, "lacks the TRSR settings ('config')")
    try:
        config = dataclasses.replace(config_from_dict(saved["config"]), fine_tune=False)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing field {exc}" if isinstance(exc, KeyError) else RunFolder.reason(exc)
        raise run.error(RUN_CONFIG, f"holds TRSR settings this recllm cannot use ({what})") from None
    adapter = _adapter(run)
    run.require(*(adapter / name for name in ADAPTER_FILES))
    adapter_config = run.json(adapter / ADAPTER_FILES[0])
    run.check("peft_type" in adapter_config, adapter / ADAPTER_FILES[0], "is not a peft adapter config (no peft_type)")
    run.check_safetensors(adapter / ADAPTER_FILES[1])
    return TRSRRun(run.folder, data, model, config, run.folder / adapter)
