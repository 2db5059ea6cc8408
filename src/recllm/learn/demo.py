"""The LEARN section of ``recllm demo``: cold-start retrieval on MovieLens-100K with frozen-LLM item embeddings.

Cold-start split in time: films first rated after a cut never occur in training; each test user's first such
film is the target, with only what they rated before it as history.
SASRec, an ID model, has never seen them; LEARN reads every film's text through SmolLM2 (frozen, embeddings
cached on disk) and can place them. Both rank the whole catalogue, the user's history masked. The printed results
are cached too (keyed by the seed, the epoch cap and the content embeddings), so a second run takes seconds.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np


def demo_section(seed: int = 0, show_progress: bool = True, max_epochs: int = 10, content: Any = None
                 ) -> list[dict[str, Any]]:
    """Train SASRec and LEARN on the cold-start split, print their HR/NDCG@10 and one user's top 5; return rows.

    ``content``: item embeddings to use instead of SmolLM2's (tests pass small random ones)."""
    from recllm.data import cold_start_split, load
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.eval.report import fmt_ci, format_table
    from recllm.eval.stats import bootstrap_ci
    from recllm.learn.defaults import SEQ_SETTINGS
    from recllm.learn.encoder import content_for
    from recllm.learn.train import LEARN
    from recllm.llm import DiskCache
    from recllm.models import SASRec

    dataset = load("ml-100k", show_progress=show_progress)
    split = cold_start_split(dataset)
    seconds = 0.0
    if content is None:
        content, seconds = content_for(dataset, show_progress)
    cases = split.eval_cases("test")
    cache = DiskCache()
    key = DiskCache.key(task="demo-learn", version=2, seed=seed, max_epochs=max_epochs, n=len(dataset.interactions),
                        content=hashlib.sha256(np.ascontiguousarray(content, dtype=np.float32).tobytes()).hexdigest())
    print(f"MovieLens-100K cold-start split: {len(cases.users)} test users whose next films never occur in "
          f"training; item text encoded by SmolLM2-135M in {seconds:.1f} s (cached on disk after the first run)")
    cached = cache.get(key)
    if cached is not None:
        print(format_table(cached["rows"], ["model", "hr@10", "ndcg@10", "seconds"]))
        print(cached["top5"] + " (cached)")
        return cached["rows"]
    settings = dict(SEQ_SETTINGS, batch_size=128, patience=3, max_epochs=max_epochs, seed=seed,
                    show_progress=show_progress)  # a bar per fit (epochs)
    models = {"SASRec (IDs only)": SASRec(loss="ce", **settings),
              "LEARN (frozen-LLM content)": LEARN(content_embeddings=content, item_input="content",
                                                 item_tower="shared", **{**settings, "lr": 3e-3})}
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(split)
        result = evaluate_full_ranking(model, cases, ks=(10,), show_progress=False)
        rows.append({"model": name, **{m: fmt_ci(*bootstrap_ci(result.per_user[m], seed=seed))
                                       for m in ("hr@10", "ndcg@10")},
                     "seconds": f"{time.perf_counter() - start:.0f}"})
    print(format_table(rows, ["model", "hr@10", "ndcg@10", "seconds"]))
    learn = models["LEARN (frozen-LLM content)"]
    user, history = int(cases.users[0]), cases.histories[0]
    top, _ = learn.recommend(cases.users[:1], [history], k=5, filter_seen=True)
    titles = dataset.items["title"].tolist() if "title" in dataset.items else dataset.items["item_id"].tolist()
    top5 = (f"LEARN's top 5 for user {dataset.users['user_id'].iloc[user]} "
            f"(last watched: {titles[int(history[-1])]}): " + "; ".join(titles[int(i)] for i in top[0]))
    print(top5)
    cache.put(key, {"rows": rows, "top5": top5})
    return rows
