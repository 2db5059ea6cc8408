"""RecBole 1.2.1's SASRec on a split exported by recllm: the reference point for recllm's own SASRec.

Runs inside its own virtual environment (``make recbole-reference`` builds ``.venv-recbole``: RecBole imports only
with numpy<1.24, pandas<2.1, scipy<1.12, setuptools<70), so it cannot import recllm. It reads the atomic files
``<dir>/<name>/<name>.{train,valid,test}.inter`` and ``<dir>/cases.json`` written by
``recllm.learn.recbole_ref``, trains SASRec with RecBole's own trainer (full-softmax CE, early stopping on
validation NDCG@10), and writes ``scores.npy`` (test users x catalogue, in recllm's catalogue order) so that
recllm's harness ranks RecBole's scores with exactly the protocol used for its own models, plus ``result.json``
(timing per epoch, best epoch, RecBole's own test metrics).

Usage: ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 .venv-recbole/bin/python benchmarks/recbole_sasrec.py --dir D``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, help="folder written by recllm.learn.recbole_ref")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--stopping-step", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

    import numpy as np
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(args.threads)
    folder = Path(args.dir)
    cases = json.loads((folder / "cases.json").read_text())
    settings = cases["settings"]
    config = Config(model="SASRec", dataset=cases["name"], config_dict={
        "data_path": str(folder), "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id_list", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": settings["max_len"], "loss_type": "CE", "train_neg_sample_args": None,
        "n_layers": settings["n_layers"], "n_heads": settings["n_heads"], "hidden_size": settings["dim"],
        "inner_size": 4 * settings["dim"], "hidden_dropout_prob": settings["dropout"],
        "attn_dropout_prob": settings["dropout"], "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "initializer_range": 0.02, "learning_rate": settings["lr"], "train_batch_size": settings["batch_size"],
        "eval_batch_size": 4096, "epochs": args.epochs, "stopping_step": args.stopping_step,
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG"], "topk": [10, 50, 200], "valid_metric": "NDCG@10",
        "device": "cpu", "use_gpu": False, "seed": args.seed, "reproducibility": True, "show_progress": False,
        "checkpoint_dir": str(folder / "saved"), "save_dataset": False, "save_dataloaders": False,
        "log_wandb": False,
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)

    epoch_seconds: list[float] = []
    original = trainer._train_epoch

    def timed_epoch(*a, **kw):  # RecBole's own epoch, timed without its validation pass
        start = time.perf_counter()
        out = original(*a, **kw)
        epoch_seconds.append(time.perf_counter() - start)
        return out

    valid_scores: list[float] = []
    original_valid = trainer._valid_epoch

    def recorded_valid(*a, **kw):
        score, result = original_valid(*a, **kw)
        valid_scores.append(float(score))
        return score, result

    trainer._train_epoch = timed_epoch
    trainer._valid_epoch = recorded_valid
    start = time.perf_counter()
    best_valid, _ = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - start
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)

    # Score recllm's test cases with the best model: history = the last max_len items, RecBole's right padding.
    model.eval()
    token2id = dataset.field2token_id["item_id"]
    n_cases, max_len = len(cases["histories"]), settings["max_len"]
    seq = torch.zeros((n_cases, max_len), dtype=torch.long)
    lengths = torch.zeros(n_cases, dtype=torch.long)
    for row, hist in enumerate(cases["histories"]):
        ids = [token2id[t] for t in hist][-max_len:]
        seq[row, :len(ids)] = torch.tensor(ids)
        lengths[row] = len(ids)
    columns = np.array([token2id.get(t, 0) for t in cases["catalogue"]])
    scores = np.empty((n_cases, len(columns)), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, n_cases, 512):
            inter = Interaction({model.ITEM_SEQ: seq[s:s + 512], model.ITEM_SEQ_LEN: lengths[s:s + 512]})
            full = model.full_sort_predict(inter).view(len(seq[s:s + 512]), -1).numpy()
            scores[s:s + len(full)] = full[:, columns]
    scores[:, columns == 0] = -1e9  # catalogue items RecBole never saw
    np.save(folder / "scores.npy", scores)
    (folder / "result.json").write_text(json.dumps({
        "epoch_seconds": epoch_seconds, "fit_seconds": fit_seconds, "best_valid_ndcg@10": float(best_valid),
        "valid_ndcg@10_per_epoch": valid_scores,
        "best_epoch": int(np.argmax(valid_scores)) + 1 if valid_scores else None,
        "epochs_run": len(epoch_seconds), "recbole_test": {k: float(v) for k, v in test_result.items()},
        "threads": args.threads, "train_batch_size": settings["batch_size"],
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
