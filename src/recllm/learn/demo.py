"""The LEARN section of ``recllm demo``: cold-start retrieval on MovieLens-100K with frozen-LLM item embeddings.

Cold-start split in time: films first rated after a cut never occur in training; each test user's first such
film is the target, with only what they rated before it as history.
SASRec, an ID model, has never seen them; LEARN reads every film's text through a frozen text encoder (SmolLM2-135M,
or the bundled all-MiniLM-L6-v2 where the demo's budget says SmolLM2 would take too long on this CPU; embeddings
cached on disk) and can place them. Both rank the whole catalogue, the user's history masked. The printed results
are cached too (keyed by the seed, the epoch cap and the content embeddings), so a second run takes seconds.

On this split the two encoders do about equally (2-core EPYC, seed 0, 230 test users: LEARN HR@10 0.004 with
SmolLM2-135M, 0.004-0.013 with all-MiniLM-L6-v2 across whitening variants; both a few hits, within noise), so the
demo's smaller encoder on a slow CPU changes its time, not its story.

The LEARN model is also saved as an artifact in the recllm cache: the serving section serves that very model
(:func:`learn_artifact`) instead of training another one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_EPOCHS = 10
ENCODER_NAMES = {"smollm2": "SmolLM2-135M", "minilm": "all-MiniLM-L6-v2"}


def item_content(dataset: Any, encoder: str, show_progress: bool) -> tuple[np.ndarray, Any, float]:
    """Raw embeddings of the catalogue's film texts by ``encoder`` ("smollm2" or "minilm", precision "auto";
    cached on disk), the ContentConfig that names the encoder (so the served model encodes new films the same way),
    and the seconds it took."""
    from recllm.learn.encoder import ContentConfig, catalogue_texts, raw_item_embeddings

    if encoder not in ENCODER_NAMES:
        raise ValueError(f"encoder must be one of {list(ENCODER_NAMES)}, got {encoder!r}")
    from recllm.llm import resolve_dtype
    from recllm.llm.backbone import llm_code_version
    from recllm.llm.embed import EMBED_VERSION
    from recllm.utils import atomic_path, cache_dir

    config = ContentConfig(model=encoder)
    texts = catalogue_texts(dataset)
    start = time.perf_counter()
    # The whole array is kept too, so a later run reads it without loading the encoder (~20 s for MiniLM's imports).
    key = hashlib.sha256(json.dumps([encoder, resolve_dtype(config.dtype, config.device), config.max_length,
                                     EMBED_VERSION, llm_code_version(), texts]).encode()).hexdigest()[:24]
    path = cache_dir("demo") / f"content-{encoder}-{key}.npy"
    if path.is_file():
        return np.load(path), config, time.perf_counter() - start
    if show_progress:
        print(f"encoding {len(texts)} film texts with {ENCODER_NAMES[encoder]} (cached on disk after the first run)",
              flush=True)
    content = raw_item_embeddings(texts, config, show_progress=show_progress)
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        np.save(out, content)
    return content, config, time.perf_counter() - start


def _digest(content: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(content, dtype=np.float32).tobytes()).hexdigest()


def _artifact_folder(seed: int, max_epochs: int, content: np.ndarray) -> Path:
    """Where the demo keeps the LEARN model it serves: one folder per seed, epochs, content and recllm source."""
    from recllm.utils import cache_dir, package_source_sha256

    code = package_source_sha256("recllm")[:12]
    return cache_dir("demo") / f"learn-coldstart-ml100k-s{seed}-e{max_epochs}-{_digest(content)[:16]}-{code}"


def _learn(content: np.ndarray, config: Any, seed: int, max_epochs: int, show_progress: bool) -> Any:
    from recllm.learn.train import LEARN

    return LEARN(content_embeddings=content, content=config, item_input="content", item_tower="shared",
                 **{**_settings(seed, max_epochs, show_progress), "lr": 3e-3})


def _settings(seed: int, max_epochs: int, show_progress: bool) -> dict[str, Any]:
    from recllm.learn.defaults import SEQ_SETTINGS

    return dict(SEQ_SETTINGS, batch_size=128, patience=3, max_epochs=max_epochs, seed=seed,
                show_progress=show_progress)  # a bar per fit (epochs)


def learn_artifact(seed: int = 0, show_progress: bool = True, encoder: str = "smollm2",
                   max_epochs: int = MAX_EPOCHS, content: Any = None) -> tuple[Path, str]:
    """The LEARN section's model as a saved artifact (``recllm.learn.save``) and how it was obtained: reused when
    the section (or an earlier call) saved it for this seed, epoch cap and content, else trained as the section
    trains it (cold-start split of MovieLens-100K) and saved. ``content``: as in :func:`demo_section`."""
    from recllm.data import cold_start_split, load
    from recllm.learn import save
    from recllm.learn.encoder import ContentConfig

    dataset = load("ml-100k", show_progress=show_progress)
    if content is None:
        content, config, _ = item_content(dataset, encoder, show_progress)
    else:
        config = ContentConfig(model=encoder)
    folder = _artifact_folder(seed, max_epochs, content)
    if (folder / "config.json").is_file():
        return folder, "the LEARN section's model, reused"
    start = time.perf_counter()
    model = _learn(content, config, seed, max_epochs, show_progress).fit(cold_start_split(dataset))
    save(model, folder, dataset)
    return folder, f"trained as the LEARN section trains it, in {time.perf_counter() - start:.0f} s"


NEW_ITEMS_LABEL = "new films: "  # the columns of the ranking among the test period's new films only
TABLE_COLUMNS = ["model", "hr@10", "ndcg@10", NEW_ITEMS_LABEL + "hr@10", NEW_ITEMS_LABEL + "ndcg@10", "seconds"]


def demo_section(seed: int = 0, show_progress: bool = True, max_epochs: int = MAX_EPOCHS, content: Any = None,
                 encoder: str = "smollm2") -> list[dict[str, Any]]:
    """Train SASRec and LEARN on the cold-start split, print their HR/NDCG@10 and one user's top 5; return rows.

    ``encoder``: the frozen text encoder of the film texts ("smollm2" or "minilm"); ``content``: item embeddings to
    use instead of the encoder's (tests pass small random ones)."""
    from recllm.data import cold_start_split, load
    from recllm.eval.ranking import evaluate_full_ranking
    from recllm.eval.report import fmt_ci, format_table
    from recllm.eval.stats import bootstrap_ci
    from recllm.learn import save
    from recllm.learn.encoder import ContentConfig
    from recllm.llm import DiskCache
    from recllm.models import SASRec
    from recllm.utils import package_source_sha256

    dataset = load("ml-100k", show_progress=show_progress)
    split = cold_start_split(dataset)
    if content is None:
        content, config, seconds = item_content(dataset, encoder, show_progress)
        how = f"item text encoded by {ENCODER_NAMES[encoder]} in {seconds:.1f} s (cached on disk after the first run)"
    else:
        config, how = ContentConfig(model=encoder), "item embeddings given by the caller"
    learn_name = f"LEARN ({ENCODER_NAMES[encoder]} item text)"
    cases = split.eval_cases("test")
    cache = DiskCache()
    # the whole package's source: the table comes from the loaders, the split, both models and the evaluation
    key = DiskCache.key(task="demo-learn", code=package_source_sha256("recllm"), seed=seed, max_epochs=max_epochs,
                        n=len(dataset.interactions), encoder=encoder, content=_digest(content))
    print(f"MovieLens-100K cold-start split: {len(cases.users)} test users whose next films never occur in "
          f"training; {how}")
    cached = cache.get(key)
    if cached is not None:
        print(format_table(cached["rows"], TABLE_COLUMNS))
        print(cached["top5"] + " (cached)")
        return cached["rows"]
    models = {"SASRec (IDs only)": SASRec(loss="ce", **_settings(seed, max_epochs, show_progress)),
              learn_name: _learn(content, config, seed, max_epochs, show_progress)}
    new_items = split.candidates("test")  # the films the test period introduces
    rows = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(split)
        seconds = time.perf_counter() - start
        row = {"model": name}
        for label, among in (("", None), (NEW_ITEMS_LABEL, new_items)):
            result = evaluate_full_ranking(model, cases, ks=(10,), show_progress=False, candidates=among)
            row.update({label + m: fmt_ci(*bootstrap_ci(result.per_user[m], seed=seed)) for m in ("hr@10", "ndcg@10")})
        rows.append({**row, "seconds": f"{seconds:.0f}"})
    print(f"Every film ranked (hr@10, ndcg@10), then only the {len(new_items)} films the test period introduces "
          f"(the \"{NEW_ITEMS_LABEL.rstrip(': ')}\" columns): an ID model has no trained vector for them, LEARN scores them from text.")
    print(format_table(rows, TABLE_COLUMNS))
    learn = models[learn_name]
    folder = _artifact_folder(seed, max_epochs, content)
    if not (folder / "config.json").is_file():
        save(learn, folder, dataset)  # the serving section serves this model (learn_artifact)
    user, history = int(cases.users[0]), cases.histories[0]
    top, _ = learn.recommend(cases.users[:1], [history], k=5, filter_seen=True)
    titles = dataset.items["title"].tolist() if "title" in dataset.items else dataset.items["item_id"].tolist()
    top5 = (f"LEARN's top 5 for user {dataset.users['user_id'].iloc[user]} "
            f"(last watched: {titles[int(history[-1])]}): " + "; ".join(titles[int(i)] for i in top[0]))
    print(top5)
    cache.put(key, {"rows": rows, "top5": top5})
    return rows
