"""Checkpoint I/O for LoRA fine-tuning: atomic adapter folders, optimizer/scheduler/RNG state, resumption checks.

Every folder is written to a temp folder beside its target and published with renames only, so a reader (or a
resumed run) never sees half a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recllm.llm.backbone import CausalLM
from recllm.utils import publish_folder

STATE_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, RNG_FILE = ("trainer_state.json", "optimizer.pt", "scheduler.pt",
                                                        "rng_state.pt")
# fields that may change between a run and its resumption (they do not change what is learned)
RESUMABLE_FIELDS = ("checkpoint_every", "keep_checkpoints", "log_every", "show_progress")


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = []
    for path in out.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if suffix.isdigit() and (path / STATE_FILE).exists():
            found.append((int(suffix), path))
    return sorted(found)


def save_adapter_dir(model: Any, target: Path, extra: Callable[[Path], None] | None = None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        if extra is not None:
            extra(tmp)
        publish_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop may draw from, as tensors and plain lists (loadable with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                      has_gauss, gauss], "python": [version, list(mt), py_gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, mt, py_gauss = state["python"]
    random.setstate((version, tuple(mt), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: Any, keep: int) -> None:
    def extra(tmp: Path) -> None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        torch.save(scheduler.state_dict(), tmp / SCHEDULER_FILE)
        torch.save(rng_state(), tmp / RNG_FILE)
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")

    save_adapter_dir(model, out / f"checkpoint-{state.step}", extra)
    for _, old in checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_lora_weights(model: Any, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    result = set_peft_model_state_dict(model, load_peft_weights(str(folder), device="cpu"))
    missing = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if missing:
        raise ValueError(f"adapter in {folder} does not fit this model (unexpected keys such as {missing[0]})")


def run_config(lm: CausalLM, examples: Sequence[tuple[str, str]], config: Any, lora: Any) -> dict:
    import hashlib

    data = hashlib.sha256(json.dumps(list(map(list, examples)), ensure_ascii=False).encode()).hexdigest()
    return {"base_model": lm.name, "base_fingerprint": lm.fingerprint, "n_examples": len(examples),
            "examples_sha256": data, "sft": asdict(config), "lora": asdict(lora)}


# what a differing field of run_config means, for the error of check_resumable
_WHY_DIFFERENT = {
    "base_model": "another base model", "examples_sha256": "other training examples",
    "n_examples": "other training examples", "lora": "other LoRA settings",
}


def _fingerprint_change(saved: str, current: str) -> str:
    """What differs between two model fingerprints (``name|dtype|code=...[|adapter=...]``), in words."""
    def parts(fingerprint: str) -> dict[str, str]:
        name, dtype, *rest = str(fingerprint).split("|") + ["", ""]
        named = dict(p.split("=", 1) for p in rest if "=" in p)
        return {"precision": dtype, "source of recllm.llm (an upgrade or an edit)": named.get("code", ""),
                "adapter the model carries": named.get("adapter", "")}

    a, b = parts(saved), parts(current)
    changed = [f"{what} {a[what] or 'none'} -> {b[what] or 'none'}" if what == "precision" else what
               for what in a if a[what] != b[what]]
    return "another " + ", ".join(changed) if changed else "another base model fingerprint"


def check_resumable(saved: dict, current: dict, path: Path) -> None:
    """Raise :class:`~recllm.errors.UserInputError` (a ValueError) naming what differs when ``path`` holds a run
    other than ``current`` (the machine and the fields a resumed run may change aside, but not its number of
    processes, ``resolved.world_size``: 1 when a run before torchrun support left it out): a command that reruns
    into its own folder with other settings ends in one line."""
    def strip(cfg: dict) -> dict:
        processes = int((cfg.get("resolved") or {}).get("world_size", 1))
        cfg = {k: v for k, v in cfg.items() if k != "resolved"}  # the machine may change between runs
        return {**cfg, "world_size": processes,
                "sft": {k: v for k, v in cfg["sft"].items() if k not in RESUMABLE_FIELDS}}

    a, b = strip(json.loads(json.dumps(saved))), strip(json.loads(json.dumps(current)))
    if a != b:
        reasons = []
        for key in sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)):
            if key == "sft":
                fields = sorted(f for f in set(a["sft"]) | set(b["sft"]) if a["sft"].get(f) != b["sft"].get(f))
                reasons.append(f"other SFT settings: {', '.join(fields)}")
            elif key == "base_fingerprint":
                if a.get("base_model") == b.get("base_model"):  # else "another base model" says it
                    reasons.append(_fingerprint_change(a.get(key, ""), b.get(key, "")))
            elif key == "world_size":
                reasons.append(f"{a[key]} process(es) there, {b[key]} here: resume with torchrun --nproc-per-node "
                               f"{a[key]}")
            else:
                reasons.append(_WHY_DIFFERENT.get(key, f"other {key}"))
        from recllm.errors import UserInputError  # the user's to fix: a command names it in one line

        raise UserInputError(f"{path} was written by a different run ({'; '.join(dict.fromkeys(reasons))})",
                             str(path.parent if path.name == "sft" else path),
                             "give a new output folder, or delete the old one to start afresh")


def read_log(out: str | os.PathLike[str]) -> list[dict]:
    """The records of ``out``'s ``training_log.jsonl`` (none when it is absent); a line an interruption cut, or one
    that is not a JSON object, is skipped."""
    path = Path(out) / "training_log.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def append_log(out: Path | None, record: dict) -> None:
    if out is None:
        return
    with open(out / "training_log.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")  # one write per line: concurrent readers never see half a record
