"""Train and score RecBole 1.2.1's SASRec on the benchmark files written by ``export_split``.

Runs inside ``.venv-recbole`` (RecBole imports only with numpy<1.24, pandas<2.1, scipy<1.12, setuptools<70), so it
imports RecBole, torch and numpy but never recllm. Reads ``<dir>/manifest.json`` and the files beside it, then:

1. builds RecBole's datasets and dumps what they hold (user, history, target of every train/valid/test row,
   decoded through RecBole's own id maps) to ``recbole_view.npz``, for ``compare.py`` to check against recllm's
   split user by user (``--check-only`` stops here);
2. trains SASRec with RecBole's own ``Trainer`` (Adam, full-softmax CE, early stopping on validation NDCG@10),
   timing each training epoch apart from its validation pass;
3. evaluates the best checkpoint with RecBole's own evaluator (its protocol: history items are *not* masked for
   sequential models) and scores every test row over the whole catalogue, in recllm's item order, to
   ``recbole_test_scores.npy``, so recllm's harness ranks them exactly as it ranks its own models;
4. writes ``recbole_result.json`` (timings, per-epoch validation, RecBole's test metrics, versions).

RecBole writes its logs, tensorboard files and checkpoints under ``<dir>`` (the script works from there).
Run: ``.venv-recbole/bin/python benchmarks/recbole_reference/run_recbole.py --dir runs/recbole_reference``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# torch >= 2.6 loads checkpoints with weights_only=True; RecBole's own best checkpoint (a dict holding its Config)
# then fails to reload for the final test evaluation. The file is the one this process just wrote.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

STAGES = ("train", "valid", "test")


def recbole_config(manifest: dict, data_path: Path, run_dir: Path):
    """RecBole's Config for SASRec on the benchmark files, with the manifest's shared settings."""
    from recbole.config import Config

    s = manifest["settings"]
    return Config(model="SASRec", dataset=manifest["name"], config_dict={
        "data_path": str(data_path),
        "benchmark_filename": list(STAGES),
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],  # one id map for history and target items
        "MAX_ITEM_LIST_LENGTH": s["max_len"],
        "n_layers": s["n_layers"], "n_heads": s["n_heads"], "hidden_size": s["dim"], "inner_size": s["inner_size"],
        "hidden_dropout_prob": s["dropout"], "attn_dropout_prob": s["dropout"],
        "loss_type": "CE", "train_neg_sample_args": None,
        "learning_rate": s["lr"], "train_batch_size": s["recbole_batch_size"], "epochs": s["epochs"],
        "stopping_step": s["patience"], "eval_step": 1, "eval_batch_size": 4096,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10, 50], "valid_metric": "NDCG@10",
        "seed": s["seed"], "reproducibility": True, "use_gpu": False, "show_progress": False,
        "checkpoint_dir": str(run_dir / "saved"), "save_dataset": False, "save_dataloaders": False,
    })


def dump_view(loaders: dict, path: Path) -> dict[str, int]:
    """Save every row RecBole built (ids decoded back to tokens later via the saved id maps); return row counts."""
    import numpy as np

    arrays: dict[str, object] = {}
    counts = {}
    for stage, loader in loaders.items():
        ds = loader._dataset
        inter = ds.inter_feat
        arrays[f"{stage}_user"] = inter[ds.uid_field].numpy()
        arrays[f"{stage}_history"] = inter[ds.item_id_list_field].numpy()
        arrays[f"{stage}_length"] = inter[ds.item_list_length_field].numpy()
        arrays[f"{stage}_target"] = inter[ds.iid_field].numpy()
        counts[stage] = len(inter)
    any_ds = loaders["train"]._dataset
    arrays["user_tokens"] = np.asarray(any_ds.field2id_token[any_ds.uid_field]).astype(str)
    arrays["item_tokens"] = np.asarray(any_ds.field2id_token[any_ds.iid_field]).astype(str)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    _replace_into(path, write)
    return counts


def score_test(model, test_loader, catalogue: list[str], batch_size: int = 512):
    """Full-catalogue scores of every test row in recllm's item order: (scores, user ids, n unknown items).

    A catalogue item RecBole never saw (absent from every file) gets a score below every other score of its row.
    """
    import numpy as np
    import torch

    ds = test_loader._dataset
    token2id = ds.field2token_id[ds.iid_field]
    columns = np.array([token2id.get(t, -1) for t in catalogue])
    inter = ds.inter_feat
    scores = np.empty((len(inter), len(catalogue)), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(inter), batch_size):
            batch = inter[start:start + batch_size]
            full = model.full_sort_predict(batch).view(len(batch), -1).cpu().numpy()
            block = full[:, np.maximum(columns, 0)]
            if (columns < 0).any():
                block[:, columns < 0] = block.min(axis=1, keepdims=True) - 1.0
            scores[start:start + len(block)] = block
    users = np.asarray(ds.field2id_token[ds.uid_field])[inter[ds.uid_field].numpy()].astype(str)
    return scores, users, int((columns < 0).sum())


def _replace_into(path: Path, write) -> None:
    """Write through a temporary file beside ``path`` and rename it into place (no half-written outputs)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {p: metadata.version(p) for p in ("recbole", "torch", "numpy", "pandas", "scipy")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RecBole 1.2.1 SASRec on recllm's exported split.")
    parser.add_argument("--dir", default="runs/recbole_reference", help="run folder written by export_split")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (use the same for both sides)")
    parser.add_argument("--check-only", action="store_true", help="only build the datasets and dump recbole_view")
    args = parser.parse_args(argv)
    run_dir = Path(args.dir).resolve()
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        parser.error(f"{manifest_path} not found: run `python -m benchmarks.recbole_reference.export_split` first")
    manifest = json.loads(manifest_path.read_text())
    script = ".venv-recbole/bin/python benchmarks/recbole_reference/run_recbole.py"
    command = " ".join([script, *(sys.argv[1:] if argv is None else argv)])

    import numpy as np
    import torch
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    torch.set_num_threads(args.threads)
    os.chdir(run_dir)  # RecBole writes log/ and log_tensorboard/ into the working folder
    config = recbole_config(manifest, run_dir, run_dir)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    loaders = {"train": train_data, "valid": valid_data, "test": test_data}
    counts = dump_view(loaders, run_dir / "recbole_view.npz")
    print(f"RecBole built {counts} rows; item_num={dataset.item_num} (incl. padding)", flush=True)
    if args.check_only:
        return 0

    class TimedTrainer(Trainer):
        """RecBole's Trainer, recording each training epoch's seconds and each validation result."""

        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.epoch_seconds: list[float] = []
            self.epoch_cpu_seconds: list[float] = []
            self.valid_log: list[dict[str, float]] = []

        def _train_epoch(self, *a, **kw):
            tick, cpu = time.perf_counter(), time.process_time()
            out = super()._train_epoch(*a, **kw)
            self.epoch_seconds.append(time.perf_counter() - tick)
            self.epoch_cpu_seconds.append(time.process_time() - cpu)
            return out

        def _valid_epoch(self, *a, **kw):
            score, result = super()._valid_epoch(*a, **kw)
            self.valid_log.append({k: float(v) for k, v in result.items()})
            return score, result

    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = TimedTrainer(config, model)
    load_before = os.getloadavg()
    tick = time.perf_counter()
    best_valid, best_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    test_seconds = time.perf_counter() - tick
    scores, users, n_unknown = score_test(model, test_data, manifest["catalogue"])
    def write_scores(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, scores)

    _replace_into(run_dir / "recbole_test_scores.npy", write_scores)
    valid_ndcg = [r["ndcg@10"] for r in trainer.valid_log]
    result = {
        "command": command,
        "threads": args.threads,
        "versions": _versions(),
        "rows": counts,
        "item_num_with_padding": int(dataset.item_num),
        "catalogue_items_unknown_to_recbole": n_unknown,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "epoch_seconds": trainer.epoch_seconds,
        "epoch_cpu_seconds": trainer.epoch_cpu_seconds,
        "fit_seconds": fit_seconds,
        "test_eval_seconds": test_seconds,
        "train_loss_per_epoch": [float(trainer.train_loss_dict[e]) for e in sorted(trainer.train_loss_dict)],
        "valid_per_epoch": trainer.valid_log,
        "best_epoch": int(np.argmax(valid_ndcg)) + 1 if valid_ndcg else None,
        "best_valid_ndcg@10": float(best_valid),
        "best_valid_result": {k: float(v) for k, v in (best_result or {}).items()},
        "recbole_test": {k: float(v) for k, v in test_result.items()},
        "test_users": users.tolist(),
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }
    _replace_into(run_dir / "recbole_result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    print(f"RecBole SASRec: {len(trainer.epoch_seconds)} epochs, {np.mean(trainer.epoch_seconds):.1f} s/epoch, "
          f"best epoch {result['best_epoch']}, test {result['recbole_test']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
