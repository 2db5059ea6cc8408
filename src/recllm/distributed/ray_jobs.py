"""LLM batch jobs as Ray Data pipelines: item embedding, candidate scoring and generation on an actor pool.

Each job turns its work into rows (one row = one model batch of the local path), maps them with
``map_batches(<actor class>, concurrency=workers)`` where every actor loads the model once, and collects the
results on the driver. The model batches are formed exactly as the single-process functions form them
(:func:`recllm.llm.embed_texts`, :func:`recllm.llm.score_continuations_many`, :func:`recllm.llm.generate`), so the
outputs are identical, and embeddings and generations use the same :class:`~recllm.llm.cache.DiskCache` keys: an
input already in the cache is not recomputed, and the driver writes every new result to the cache as results arrive
(an interrupted job keeps what it finished). Each result batch carries its worker's ``recllm.llm`` source hash,
and the driver refuses a batch made by other code than its own (a node with another recllm installed).

Ray starts locally by itself when no ``address`` is given; ``address="auto"`` or ``"ray://host:10001"`` joins an
existing cluster. Actors are restarted and their batches retried when a worker dies (Ray Data's default).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from recllm.distributed import require_ray
from recllm.utils import is_finite_number, is_integer

log = logging.getLogger(__name__)

__all__ = ["ModelSpec", "RayOptions", "embed_texts_ray", "score_continuations_ray", "generate_chunks_ray",
           "generate_ray", "ensure_ray", "ship_model"]

MODEL_KINDS = ("causal", "sentence")


@dataclass(frozen=True)
class ModelSpec:
    """How a worker gets its model, without the driver shipping weights: a name/folder + dtype, or a builder.

    ``name`` is a Hugging Face id or folder (None: the bundled default of ``kind``); ``builder`` is a picklable
    zero-argument callable returning the model (e.g. ``functools.partial(tiny_causal_lm, 0)``) and wins over name.
    """

    name: str | None = None
    kind: str = "causal"
    dtype: str = "auto"
    device: str = "auto"
    builder: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"ModelSpec.kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.builder is not None and not callable(self.builder):
            raise ValueError("ModelSpec.builder must be a callable returning the model")

    def load(self) -> Any:
        """The model (called once per worker)."""
        if self.builder is not None:
            return self.builder()
        from recllm.llm import load_causal_lm, load_text_encoder

        loader = load_causal_lm if self.kind == "causal" else load_text_encoder
        return loader(self.name, device=self.device, dtype=self.dtype)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a job runs: ``address`` of an existing cluster (None: ``$RAY_ADDRESS``'s, else one
    ``ray start`` left on this machine, else a local Ray started for the job, see :func:`ensure_ray`), ``workers``
    actors of ``cpus_per_worker`` CPUs (``gpus_per_worker`` GPUs) each; ``max_restarts`` per actor (None: Ray
    Data's default, a dead actor is always replaced and its batches retried)."""

    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_restarts: int | None = None

    def __post_init__(self) -> None:
        if not is_integer(self.workers) or self.workers < 1:
            raise ValueError(f"RayOptions.workers must be a positive integer, got {self.workers!r}")
        object.__setattr__(self, "workers", int(self.workers))  # True is not a count; a NumPy integer is
        for name in ("cpus_per_worker", "gpus_per_worker"):
            if not is_finite_number(getattr(self, name)):
                raise ValueError(f"RayOptions.{name} must be a finite number, got {getattr(self, name)!r}")
        if self.max_restarts is not None and not is_integer(self.max_restarts):
            raise ValueError(f"RayOptions.max_restarts must be an integer >= 0 or None, got {self.max_restarts!r}")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0 or (self.max_restarts or 0) < 0:
            raise ValueError("RayOptions needs cpus_per_worker > 0, gpus_per_worker >= 0 and max_restarts >= 0")


_STARTED_HERE = [False]  # whether ensure_ray started the running Ray (its nodes are fixed: no autoscaler)


def ensure_ray(options: RayOptions) -> None:
    """Connect to ``options.address``, else to the cluster ``$RAY_ADDRESS`` names (``ray job submit`` sets it) or
    one ``ray start`` left on this machine, else start a local Ray sized for the job; reuse a running session."""
    require_ray()
    import ray
    import ray.data

    if ray.is_initialized():
        return
    _STARTED_HERE[0] = False
    if options.address:
        ray.init(address=options.address, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)  # Ray connects to $RAY_ADDRESS; a size is not ours to give an existing cluster
    else:
        cpus = max(int(np.ceil(options.workers * options.cpus_per_worker)), 1)
        try:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            _STARTED_HERE[0] = True
        except ValueError as exc:  # Ray found a cluster `ray start` left running here, which takes no num_cpus
            if "existing cluster" not in str(exc):
                raise
            log.warning("recllm: joining the Ray cluster already running on this machine (`ray start`); pass "
                        "RayOptions.address (--ray-address) to choose one, or `ray stop` it to get a private one")
            ray.init(log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # recllm's own bar reports progress; no per-job INFO


@dataclass
class _ShippedCausalLM:
    """A loaded ``CausalLM`` as plain parts (class, config, weights, tokenizer): transformers installs forward
    hooks that cannot be pickled once the model has run, so the weights travel instead of the module. A peft
    (LoRA) model travels as its base class and config, its adapter configs and its whole state (base and adapter
    weights, unmerged: the worker computes exactly what the driver would). ``scoring`` = ``(dtype, answer_ids)``
    turns the rebuilt model into :func:`recllm.llm.scoring.scoring_lm`'s on the worker."""

    cls: type
    config: Any
    state: dict[str, Any]
    tokenizer: Any
    name: str
    device: str
    dtype: str
    peft_configs: dict[str, Any] | None = None
    scoring: tuple[str, tuple[int, ...]] | None = None

    @classmethod
    def of(cls, lm: Any, scoring: tuple[str, Sequence[int]] | None = None) -> "_ShippedCausalLM":
        from recllm.llm.backbone import adapter_hash

        peft = hasattr(lm.model, "peft_config") and hasattr(lm.model, "get_base_model")
        base = lm.model.get_base_model() if peft else lm.model
        if (not peft and adapter_hash(lm.model) is not None) or not hasattr(base, "config"):
            raise ValueError(f"cannot ship {lm.name!r} (a model with an adapter outside peft) to Ray workers; pass a "
                             "recllm.distributed.ray_jobs.ModelSpec that loads it on each worker instead")
        if peft and len(lm.model.peft_config) != 1:
            raise ValueError(f"cannot ship {lm.name!r} with {len(lm.model.peft_config)} peft adapters to Ray "
                             "workers (one adapter only); pass a ModelSpec that loads it on each worker instead")
        state = {k: v.detach().cpu() for k, v in lm.model.state_dict().items()}
        configs = dict(lm.model.peft_config) if peft else None
        score = None if scoring is None else (str(scoring[0]), tuple(int(t) for t in scoring[1]))
        return cls(type(base), base.config, state, lm.tokenizer, lm.name, lm.device, lm.dtype, configs, score)

    def build(self) -> Any:
        import torch

        from recllm.llm.backbone import CausalLM

        dtype = next(iter(self.state.values())).dtype if self.state else torch.float32
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten; leave the RNG alone
            model = self.cls(self.config).to(dtype)
            if self.peft_configs:
                from peft import get_peft_model

                (adapter, config), = self.peft_configs.items()
                model = get_peft_model(model, config, adapter_name=adapter)
        model.load_state_dict(self.state)
        model = model.to(self.device).eval()
        lm = CausalLM(model=model, tokenizer=self.tokenizer, name=self.name, device=self.device, dtype=self.dtype)
        if self.scoring is not None:
            from recllm.llm.scoring import scoring_lm

            lm = scoring_lm(lm, self.scoring[0], self.scoring[1])
        return lm


class _ModelActor:
    """Base of the pool's actors: one thread per worker, the model loaded once, optional test-only crash. Every
    result batch carries the worker's ``recllm.llm`` source hash (column ``code``), which the driver checks."""

    def __init__(self, model: Any, threads: int, crash_marker: str | None) -> None:
        from recllm.utils import set_threads

        set_threads(threads)  # torch and the BLAS pools
        if not isinstance(model, ModelSpec):  # an ObjectRef of the model put by the driver
            import ray

            model = ray.get(model)
        self.model = model.load() if isinstance(model, ModelSpec) else (
            model.build() if isinstance(model, _ShippedCausalLM) else model)
        self.crash_marker = crash_marker
        from recllm.llm.backbone import llm_code_version

        self.code = llm_code_version()

    def _stamped(self, out: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        """``out`` with the worker's code identity on each of its ``rows`` result rows."""
        out["code"] = np.asarray([self.code] * rows, dtype=object)
        return out

    def _maybe_crash(self) -> None:
        """Test hook: the first batch of the job kills its worker process (once, marked by a file)."""
        if self.crash_marker and not os.path.exists(self.crash_marker):
            with open(self.crash_marker, "w") as fh:
                fh.write(str(os.getpid()))
            os._exit(1)


class _EmbedActor(_ModelActor):
    def __init__(self, model: Any, threads: int, crash_marker: str | None, pooling: str, batch_size: int,
                 max_length: int) -> None:
        super().__init__(model, threads, crash_marker)
        self.pooling, self.batch_size, self.max_length = pooling, batch_size, max_length

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from recllm.llm.backbone import CausalLM
        from recllm.llm.embed import _embed_causal, _embed_encoder

        self._maybe_crash()
        index, vectors = [], []
        for ids, texts in zip(batch["ids"], batch["texts"]):
            texts = [str(t) for t in texts]
            if isinstance(self.model, CausalLM):
                out = _embed_causal(self.model, texts, self.pooling, self.max_length)
            else:
                out = _embed_encoder(self.model, texts, self.batch_size, self.max_length)
            index.extend(int(i) for i in ids)
            vectors.append(out)
        return self._stamped({"index": np.asarray(index, dtype=np.int64),
                              "vector": np.concatenate(vectors).astype(np.float32)}, len(index))


class _ScoreActor(_ModelActor):
    def __init__(self, model: Any, threads: int, crash_marker: str | None, shared_prefix: bool, batch_size: int,
                 token_ids: list[int] | None) -> None:
        super().__init__(model, threads, crash_marker)
        self.shared_prefix, self.batch_size, self.token_ids = shared_prefix, batch_size, token_ids

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from recllm.llm.scoring import next_token_logprobs, score_continuations

        self._maybe_crash()
        groups, positions, values = [], [], []
        for group, prefix, conts in zip(batch["group"], batch["prefix"], batch["continuations"]):
            conts = [str(c) for c in conts]
            if self.token_ids is None:
                out = score_continuations(self.model, str(prefix), conts, self.shared_prefix, self.batch_size)
                out = out[:, None]
            else:
                out = next_token_logprobs(self.model, str(prefix), conts, self.token_ids, self.shared_prefix,
                                          self.batch_size).astype(np.float64)
            groups.extend([int(group)] * len(conts))
            positions.extend(range(len(conts)))
            values.append(out)
        width = 1 if self.token_ids is None else len(self.token_ids)
        value = np.concatenate(values) if values else np.zeros((0, width))
        return self._stamped({"group": np.asarray(groups, dtype=np.int64),
                              "pos": np.asarray(positions, dtype=np.int64), "value": value}, len(groups))


class _GenerateActor(_ModelActor):
    def __init__(self, model: Any, threads: int, crash_marker: str | None, max_new_tokens: int,
                 batch_size: int | None, allowed_token_ids: list[int] | None = None, number_shape: Any = None
                 ) -> None:
        super().__init__(model, threads, crash_marker)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.allowed_token_ids, self.number_shape = allowed_token_ids, number_shape

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import time

        from recllm.llm.generate import generate

        self._maybe_crash()
        index, texts, seconds = [], [], []
        for ids, prompts in zip(batch["ids"], batch["prompts"]):
            began = time.perf_counter()
            out = generate(self.model, [str(p) for p in prompts], max_new_tokens=self.max_new_tokens,
                           batch_size=self.batch_size, allowed_token_ids=self.allowed_token_ids,
                           number_shape=self.number_shape, show_progress=False)
            share = (time.perf_counter() - began) / max(len(out), 1)
            index.extend(int(i) for i in ids)
            texts.extend(out)
            seconds.extend([share] * len(out))
        return self._stamped({"index": np.asarray(index, dtype=np.int64), "text": np.asarray(texts, dtype=object),
                              "seconds": np.asarray(seconds, dtype=np.float64)}, len(index))


def generate_chunks_ray(
    model: Any,
    chunks: Sequence[Sequence[str]],
    max_new_tokens: int = 64,
    batch_size: int | None = None,
    show_progress: bool = True,
    options: RayOptions | None = None,
    on_chunk: Callable[[int, list[str], list[float]], None] | None = None,
    allowed_token_ids: Sequence[int] | None = None,
    number_shape: Any = None,
) -> list[tuple[list[str], list[float]]]:
    """Greedy completions of each chunk of prompts, one :func:`recllm.llm.generate` call per chunk on a Ray
    actor pool (the chunking of LLM-TRSR's summarizer): per chunk, the texts and the seconds per prompt.

    The building block for the summaries on Ray; the caller keeps its own cache keys, as in the local path, and
    can commit each chunk as soon as it is done with ``on_chunk(chunk_index, texts, seconds)`` (an interrupted
    job keeps what it finished). ``model`` is a loaded model, a :class:`ModelSpec` or :func:`ship_model`'s result.
    """
    options = options or RayOptions()
    chunks = [[str(p) for p in chunk] for chunk in chunks]
    flat = [p for chunk in chunks for p in chunk]
    texts: list[str | None] = [None] * len(flat)
    seconds = [0.0] * len(flat)
    if flat:
        ensure_ray(options)
        rows, start, owner, bounds = [], 0, [], []
        for c, chunk in enumerate(chunks):
            if chunk:
                rows.append({"ids": list(range(start, start + len(chunk))), "prompts": chunk})
            owner.extend([c] * len(chunk))
            bounds.append((start, start + len(chunk)))
            start += len(chunk)
        left = [len(chunk) for chunk in chunks]
        allowed = None if allowed_token_ids is None else [int(t) for t in allowed_token_ids]
        mapped = _run(rows, _GenerateActor, model, options,
                      {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "allowed_token_ids": allowed,
                       "number_shape": number_shape}, None)
        with tqdm(total=len(flat), desc="generating (ray)", unit="prompt", disable=not show_progress) as bar:
            for out in _results(mapped):
                for i, text, sec in zip(out["index"], out["text"], out["seconds"]):
                    i = int(i)
                    if texts[i] is not None:  # a retried row delivered twice
                        continue
                    texts[i], seconds[i] = str(text), float(sec)
                    c = owner[i]
                    left[c] -= 1
                    if left[c] == 0 and on_chunk is not None:
                        lo, hi = bounds[c]
                        on_chunk(c, list(texts[lo:hi]), seconds[lo:hi])  # type: ignore[arg-type]
                bar.update(len(out["index"]))
    result, start = [], 0
    for chunk in chunks:
        result.append(([t for t in texts[start:start + len(chunk)]], seconds[start:start + len(chunk)]))
        start += len(chunk)
    return result  # type: ignore[return-value]


def generate_ray(
    model: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int | None = None,
    allowed_token_ids: Sequence[int] | None = None,
    number_shape: Any = None,
    show_progress: bool = True,
    options: RayOptions | None = None,
    cache: Any = None,
    on_cache_hits: Callable[[int], None] | None = None,
) -> list[str]:
    """:func:`recllm.llm.generate` on a Ray actor pool, with identical texts and the same cache keys
    (:func:`~recllm.llm.generate.cached_generations`): cached prompts are not sent to the pool, and each finished
    batch's texts are written to ``cache`` as it arrives. The driver plans the very batches ``generate`` would form
    (distinct uncached prompts, longest first, :func:`~recllm.llm.generate.batch_rows` wide) and each becomes one
    pool row, generated as one batch by a worker. ``model``: a loaded ``CausalLM`` (tokenizer, cache keys and batch
    plan on the driver). ``on_cache_hits(n)``: as in ``generate``."""
    from recllm.llm.generate import MAX_GENERATE_ROWS, _check, batch_rows, cached_generations

    prompts = [str(p) for p in prompts]
    allowed = _check(model, prompts, max_new_tokens, batch_size, allowed_token_ids)
    keys, done, todo = cached_generations(model, prompts, max_new_tokens, allowed, number_shape, cache)
    if on_cache_hits is not None:
        on_cache_hits(sum(p in done for p in prompts))
    lengths = {p: len(model.tokenizer(p, add_special_tokens=False).input_ids) for p in todo}
    todo.sort(key=lambda p: -lengths[p])
    chunks, start = [], 0
    while start < len(todo):
        rows = batch_rows(model, lengths[todo[start]], max_new_tokens, batch_size or MAX_GENERATE_ROWS)
        chunks.append(todo[start:start + rows])
        start += rows

    def commit(c: int, texts: list[str], seconds: list[float]) -> None:
        done.update(zip(chunks[c], texts))
        if cache is not None:
            cache.put_many({keys[p]: t for p, t in zip(chunks[c], texts)})

    generate_chunks_ray(model, chunks, max_new_tokens=max_new_tokens, batch_size=batch_size or MAX_GENERATE_ROWS,
                        show_progress=show_progress, options=options, on_chunk=commit, allowed_token_ids=allowed,
                        number_shape=number_shape)
    return [done[p] for p in prompts]


def _check_worker_code(batch: dict[str, np.ndarray]) -> None:
    """Refuse a result batch made by other ``recllm.llm`` code than the driver's: its results would be cached and
    returned under the driver's model fingerprint (which names the driver's code), so a cluster whose nodes run
    another recllm would silently mix two versions' outputs."""
    from recllm.llm.backbone import llm_code_version

    here = llm_code_version()
    other = sorted({str(c) for c in batch["code"]} - {here})
    if other:
        raise RuntimeError(
            f"a Ray worker runs other recllm.llm code (source {', '.join(other)}) than this driver ({here}); its "
            "results were not used: install the same recllm on every node of the cluster (the same wheel or "
            "commit, or ship it with ray.init(runtime_env={'py_modules': [recllm]})) and run the job again")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _worker_error(exc: BaseException) -> RuntimeError:
    """A Ray worker's exception as one line naming the original error (type and message), not Ray's flattened
    traceback with its terminal colours. Ray Data wraps the model's exception in a ``UserCodeException`` whose
    message is generic, and an actor that failed to start carries only text: the original is then the last line(s)
    of the worker's traceback (before "direct cause", when there is one)."""
    from ray.exceptions import UserCodeException

    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and not isinstance(cause, UserCodeException):
        found = f"{type(cause).__name__}: {cause}"
    else:
        text = _ANSI.sub("", str(exc)).split("\nThe above exception was the direct cause", 1)[0]
        last: list[str] = []  # the exception line(s) after the innermost traceback frame
        for line in reversed(text.strip().splitlines()):
            if not line.strip() or line[0].isspace():
                break
            last.insert(0, line.strip())
        found = " ".join(last) or f"{type(cause or exc).__name__}: {cause or exc}"
    found = " ".join(found.split())
    return RuntimeError(f"a Ray worker failed: {found}")


def _results(mapped: Any) -> Iterator[dict[str, np.ndarray]]:
    """The result batches of a :func:`_run` dataset as they arrive, each checked by :func:`_check_worker_code`;
    a worker's exception is raised as one line naming its cause (:func:`_worker_error`)."""
    from ray.exceptions import RayActorError, RayTaskError

    try:
        for out in mapped.iter_batches(batch_size=None, batch_format="numpy"):
            _check_worker_code(out)
            yield out
    except (RayTaskError, RayActorError) as exc:  # a batch failed, or a worker could not load the model
        raise _worker_error(exc) from exc


def _run(rows: list[dict[str, Any]], actor: type, model: Any, options: RayOptions, kwargs: dict[str, Any],
         crash_marker: str | None) -> Any:
    """The mapped Ray dataset of ``rows`` (one model batch each) through a pool of ``actor``."""
    import ray.data

    _check_schedulable(options)
    shipped = ship_model(model)
    threads = max(int(options.cpus_per_worker), 1)
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * options.workers)))
    restarts = {} if options.max_restarts is None else {
        "max_restarts": options.max_restarts, "max_task_retries": -1 if options.max_restarts else 0}
    return ds.map_batches(
        actor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=options.workers), num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker or None, batch_format="numpy",
        fn_constructor_kwargs={"model": shipped, "threads": threads, "crash_marker": crash_marker, **kwargs},
        **restarts,
    )


def _check_schedulable(options: RayOptions) -> None:
    """One line, before the job, when the running Ray cannot hold the pool -- no node has one worker's CPUs and GPUs
    together, or the nodes hold fewer than ``workers`` such workers: Ray would wait for them forever. On a cluster
    recllm joined an autoscaler may add nodes, so there it is a warning."""
    import ray

    cpus, gpus = options.cpus_per_worker, options.gpus_per_worker
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    fits = [min(float(n.get("CPU", 0.0)) // cpus, float(n.get("GPU", 0.0)) // gpus if gpus else math.inf)
            for n in nodes]
    room = int(sum(f for f in fits if math.isfinite(f)))
    if room >= options.workers:
        return
    largest = max(nodes, key=lambda n: (float(n.get("GPU", 0.0)), float(n.get("CPU", 0.0))), default={})
    if room == 0:
        field = "gpus_per_worker" if gpus and all(float(n.get("GPU", 0.0)) < gpus for n in nodes) else \
            "cpus_per_worker"
        message = (f"no node of the Ray cluster has {cpus:g} CPUs{f' and {gpus:g} GPUs' if gpus else ''} for one "
                   f"worker (the largest has {float(largest.get('CPU', 0.0)):g} CPUs and "
                   f"{float(largest.get('GPU', 0.0)):g} GPUs); the job would wait for one forever")
    else:
        field = "workers"
        message = (f"the Ray cluster holds {room} worker(s) of {cpus:g} CPUs{f' and {gpus:g} GPUs' if gpus else ''}, "
                   f"not {options.workers}; the job would wait for the others forever")
    if _STARTED_HERE[0]:
        from recllm.errors import UserInputError

        raise UserInputError(message, f"RayOptions.{field}", "lower it (--ray-workers on the command line), or "
                             "pass RayOptions.address of a cluster that holds the pool")
    log.warning("recllm: %s, unless the cluster's autoscaler adds nodes", message)


def ship_model(model: Any, scoring: tuple[str, Sequence[int]] | None = None) -> Any:
    """What the workers receive for ``model``: a :class:`ModelSpec` as is, a loaded model put once in Ray's
    object store (pass the result to several jobs to ship the weights once; Ray must be running). A loaded
    ``CausalLM`` may carry one peft (LoRA) adapter; ``scoring=(dtype, answer_ids)`` makes each worker score with
    :func:`recllm.llm.scoring.scoring_lm` of it (what the driver would score with)."""
    import ray

    if isinstance(model, (ModelSpec, ray.ObjectRef)):
        return model
    from recllm.llm.backbone import CausalLM

    if isinstance(model, CausalLM):
        return ray.put(_ShippedCausalLM.of(model, scoring))
    return ray.put(model)


def _local_model(model: Any) -> Any:
    """The model the driver needs for cache keys and checks (a ModelSpec is loaded here only when needed)."""
    return model.load() if isinstance(model, ModelSpec) else model


def embed_texts_ray(
    model: Any,
    texts: Sequence[str],
    pooling: str = "mean",
    batch_size: int = 32,
    max_length: int = 128,
    cache: Any = None,
    show_progress: bool = True,
    options: RayOptions | None = None,
    crash_marker: str | None = None,
) -> np.ndarray:
    """:func:`recllm.llm.embed_texts` on a Ray actor pool: same arguments, same cache keys, identical vectors.

    ``model`` is a loaded model (put in Ray's object store once) or a :class:`ModelSpec` each worker loads;
    ``crash_marker`` is a test hook (a file path: the first batch kills its worker once).
    """
    from recllm.llm.embed import _check, _dimension, cached_embeddings

    options = options or RayOptions()
    local = _local_model(model)
    _check(local, texts, pooling, batch_size, max_length)
    texts = list(texts)
    keys, done, todo = cached_embeddings(local, texts, pooling, max_length, cache)  # the local path's keys, batches
    if todo:
        ensure_ray(options)
        rows = [{"ids": list(range(s, min(s + batch_size, len(todo)))), "texts": todo[s:s + batch_size]}
                for s in range(0, len(todo), batch_size)]
        mapped = _run(rows, _EmbedActor, model, options,
                      {"pooling": pooling, "batch_size": batch_size, "max_length": max_length}, crash_marker)
        with tqdm(total=len(todo), desc="embedding (ray)", unit="text", disable=not show_progress) as bar:
            for out in _results(mapped):
                new = {todo[int(i)]: np.asarray(v, dtype=np.float32) for i, v in zip(out["index"], out["vector"])}
                done.update(new)
                if cache is not None:
                    cache.put_many({keys[t]: v for t, v in new.items()})
                bar.update(len(new))
    missing = [t for t in todo if t not in done]
    if missing:
        raise RuntimeError(f"the ray embedding job returned no vector for {len(missing)} of {len(todo)} texts")
    if not texts:
        return np.zeros((0, _dimension(local)), dtype=np.float32)
    return np.stack([done[t] for t in texts]).astype(np.float32, copy=False)


def score_continuations_ray(
    model: Any,
    groups: Sequence[tuple[str, Sequence[str]]],
    token_ids: Sequence[int] | None = None,
    shared_prefix: bool = True,
    batch_size: int = 64,
    show_progress: bool = True,
    options: RayOptions | None = None,
    crash_marker: str | None = None,
) -> list[np.ndarray]:
    """:func:`recllm.llm.score_continuations_many` (``token_ids=None``) or
    :func:`recllm.llm.next_token_logprobs_many` (``token_ids`` given) on a Ray actor pool, one row per group.

    Returns one array per group, equal to the single-process result (float64 sums, or float32 log-probs
    ``(len(continuations), len(token_ids))``).
    """
    options = options or RayOptions()
    listed = []
    for i, (prefix, conts) in enumerate(groups):
        if isinstance(conts, str):  # checked before listing: list("Yes") would be three continuations
            raise TypeError(f"groups[{i}] continuations must be a sequence of strings, not one string")
        listed.append((str(prefix), [str(c) for c in conts]))
    groups = listed
    width = 1 if token_ids is None else len(token_ids)
    results = [np.zeros((len(c), width)) for _, c in groups]
    work = [{"group": g, "prefix": p, "continuations": c} for g, (p, c) in enumerate(groups) if c]
    if work:
        ensure_ray(options)
        ids = None if token_ids is None else [int(t) for t in token_ids]
        mapped = _run(work, _ScoreActor, model, options,
                      {"shared_prefix": shared_prefix, "batch_size": batch_size, "token_ids": ids}, crash_marker)
        with tqdm(total=len(work), desc="scoring (ray)", unit="prefix", disable=not show_progress) as bar:
            seen: set[int] = set()
            for out in _results(mapped):
                for g, pos, value in zip(out["group"], out["pos"], out["value"]):
                    results[int(g)][int(pos)] = value
                    seen.add(int(g))
                bar.n = len(seen)
                bar.refresh()
    if token_ids is None:
        return [r[:, 0].astype(np.float64) for r in results]
    return [r.astype(np.float32) for r in results]
