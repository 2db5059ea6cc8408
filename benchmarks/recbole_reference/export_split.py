"""Write a recllm Split as RecBole benchmark files, so RecBole trains and evaluates on exactly our split.

RecBole's ``benchmark_filename`` mechanism reads ``<name>.train.inter``, ``<name>.valid.inter`` and
``<name>.test.inter`` and, for a sequential model, does no splitting or augmentation of its own: each row is one
(user, item history, next item) example. So we write the rows ourselves from the split:

- train: every transition of each user's chronological training sequence (RecBole's own augmentation makes the
  same prefixes), the history cut to the last ``max_len`` items;
- valid: one row per validation case, history = the training sequence, target = the validation item;
- test: one row per test case, history = training + validation sequence, target = the test item.

Sequences come from ``Split.sequences`` / ``Split.eval_cases``, so items with equal timestamps keep recllm's
order (a fixed hash of user and item, ``recllm.data.split.tie_order``) and RecBole cannot reorder them.
``manifest.json`` beside the files holds the catalogue in recllm's item order (so RecBole's scores can be put back
into it), the row counts and sha256 of the files, the test cases' fingerprint and the :class:`ReferenceSettings`
that both ``run_recbole.py`` and ``compare.py`` read.

Run: ``python -m benchmarks.recbole_reference.export_split --out runs/recbole_reference [--epochs 10]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recllm.data import ITEM, USER, Split
from recllm.eval.report import sha256_file
from recllm.bench.learn.recbole_ref import cases_fingerprint
from recllm.utils import atomic_path, write_json_atomic

STAGES = ("train", "valid", "test")
FIELDS = ("user_id:token", "item_id_list:token_seq", "item_id:token")
DEFAULT_OUT = "runs/recbole_reference"


@dataclass
class ReferenceSettings:
    """Hyper-parameters shared by both implementations: RecBole 1.2.1's SASRec defaults unless noted.

    ``dropout`` is RecBole's ``hidden_dropout_prob`` and ``attn_dropout_prob`` (both 0.5) and our ``dropout``.
    The batch sizes differ in kind: RecBole batches (history, next item) examples, recllm batches windows of
    ``max_len`` positions with a target at every position.
    """

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    max_len: int = 50
    dropout: float = 0.5
    lr: float = 1e-3
    recbole_batch_size: int = 2048
    ours_batch_size: int = 128
    epochs: int = 10
    patience: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "n_layers", "n_heads", "inner_size", "max_len", "recbole_batch_size",
                     "ours_batch_size", "epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ReferenceSettings.{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ReferenceSettings.dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise ValueError(f"ReferenceSettings.lr must be positive, got {self.lr}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"ReferenceSettings.seed must be a non-negative integer, got {self.seed!r}")


@dataclass
class StageRows:
    """Benchmark rows of one stage, aligned by position: user id, history (item ids, oldest first), next item."""

    users: list[str]
    histories: list[list[str]]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.users)


def _tokens(ids: np.ndarray, what: str) -> np.ndarray:
    """Ids as strings, refusing those RecBole's atomic format cannot hold (empty, tab, space, line break)."""
    tokens = np.asarray(ids).astype(str)
    for token in tokens:
        if not token or any(c in token for c in " \t\r\n"):
            raise ValueError(f"{what} id {token!r} is empty or holds whitespace, which RecBole's atomic files cannot "
                             f"represent (space separates the items of a history); re-map the ids first")
    return tokens


def benchmark_rows(split: Split, max_len: int) -> dict[str, StageRows]:
    """The rows RecBole must see for ``split``: every train transition, and one row per valid and test case.

    Raises ``ValueError`` when a valid/test case has several target items (a benchmark row holds one target, so
    RecBole would evaluate such a user once per target while recllm evaluates the user once).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len}")
    items = _tokens(split.dataset.items[ITEM].to_numpy(), "item")
    users = _tokens(split.dataset.users[USER].to_numpy(), "user")
    out: dict[str, StageRows] = {}
    train = StageRows([], [], [])
    sequences = split.sequences("train")
    for u in sorted(sequences):
        seq = items[sequences[u]]
        for t in range(1, len(seq)):
            train.users.append(users[u])
            train.histories.append(seq[max(0, t - max_len):t].tolist())
            train.targets.append(seq[t])
    out["train"] = train
    for stage in ("valid", "test"):
        cases = split.eval_cases(stage)
        rows = StageRows([], [], [])
        for u, hist, tgt in zip(cases.users, cases.histories, cases.targets):
            if len(tgt) != 1:
                raise ValueError(f"{stage} case of user {users[u]!r} has {len(tgt)} target items; RecBole benchmark "
                                 f"rows hold one target each, so use a leave-one-out split")
            rows.users.append(users[u])
            rows.histories.append(items[hist[-max_len:]].tolist())
            rows.targets.append(items[tgt[0]])
        out[stage] = rows
    return out


def write_stage(rows: StageRows, path: Path) -> None:
    """One benchmark ``.inter`` file (tab-separated, RecBole's ``field:type`` header), written atomically."""
    lines = ["\t".join(FIELDS)]
    lines += [f"{u}\t{' '.join(h)}\t{t}" for u, h, t in zip(rows.users, rows.histories, rows.targets)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def export_split(split: Split, out: str | Path, settings: ReferenceSettings | None = None, name: str | None = None,
                 command: str = "") -> dict[str, Path]:
    """Write ``<out>/<name>/<name>.{train,valid,test}.inter`` and ``<out>/manifest.json``; return their paths.

    ``name`` defaults to ``<dataset>-<split>`` (e.g. ``ml-100k-loo``). It must not be ``ml-100k``: RecBole
    1.2.1 hard-wires that name to the copy bundled in its package and would ignore our files.
    """
    settings = settings or ReferenceSettings()
    name = name or f"{split.dataset.name}-{split.name}"
    if name == "ml-100k":
        raise ValueError("RecBole reads its own bundled data for a data set named 'ml-100k'; choose another name")
    out = Path(out)
    rows = benchmark_rows(split, settings.max_len)
    paths: dict[str, Path] = {}
    for stage in STAGES:
        paths[stage] = out / name / f"{name}.{stage}.inter"
        write_stage(rows[stage], paths[stage])
    paths["manifest"] = out / "manifest.json"
    write_json_atomic(paths["manifest"], {
        "name": name,
        "dataset": split.dataset.name,
        "split": split.name,
        "catalogue": _tokens(split.dataset.items[ITEM].to_numpy(), "item").tolist(),
        "rows": {stage: len(rows[stage]) for stage in STAGES},
        "sha256": {stage: sha256_file(paths[stage]) for stage in STAGES},
        "test_cases": cases_fingerprint(split.eval_cases("test")),  # checked before its scores are ranked
        "settings": dataclasses.asdict(settings),
        "command": command,
    })
    return paths


def portable_command(argv: list[str]) -> str:
    """The command line with absolute paths under the working folder made relative (reports are committed)."""
    cwd = Path.cwd().resolve()
    parts = argv[:1]  # the program, already written as it should read
    for arg in argv[1:]:
        path = Path(arg)
        if path.is_absolute():
            try:
                arg = path.resolve().relative_to(cwd).as_posix()
            except ValueError:
                arg = path.name
        parts.append(shlex.quote(arg))
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write recllm's leave-one-out split as RecBole benchmark files.")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"run folder (default {DEFAULT_OUT})")
    parser.add_argument("--dataset", default="ml-100k", help="recllm data set name (default ml-100k)")
    defaults = ReferenceSettings()
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epoch cap for both implementations")
    parser.add_argument("--patience", type=int, default=defaults.patience, help="early-stopping patience (epochs)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    from recllm.data import leave_one_out, load

    settings = ReferenceSettings(epochs=args.epochs, patience=args.patience, seed=args.seed)
    split = leave_one_out(load(args.dataset, show_progress=False))
    command = portable_command(["python -m benchmarks.recbole_reference.export_split",
                                *(sys.argv[1:] if argv is None else argv)])
    paths = export_split(split, args.out, settings, command=command)
    manifest = json.loads(paths["manifest"].read_text())
    print(f"wrote {', '.join(str(paths[s]) for s in STAGES)} ({manifest['rows']}) and {paths['manifest']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
