"""Ray Data jobs give exactly the single-process results, share its cache keys, and survive a killed worker."""

from __future__ import annotations

import functools

import numpy as np
import pytest

pytest.importorskip("ray.data")

from recllm.distributed.ray_jobs import ModelSpec, RayOptions, ensure_ray, score_continuations_ray  # noqa: E402
from recllm.llm import embed_texts, next_token_logprobs_many, score_continuations_many  # noqa: E402
from recllm.llm.backbone import tiny_causal_lm  # noqa: E402
from recllm.llm.cache import DiskCache  # noqa: E402

pytestmark = pytest.mark.distributed

TEXTS = [f"item {i}: " + "a film about space " * (i % 5 + 1) for i in range(14)] + ["item 0: a film about space "]
GROUPS = [(f"<|im_start|>user\nuser {u} liked film {u}", [f" film {u + c}" * (c % 3 + 1) for c in range(u + 2)])
          for u in range(5)] + [("prefix without candidates", [])]


class CountingCache(DiskCache):
    """A DiskCache that counts the entries written to it (driver side only)."""

    puts = 0

    def put_many(self, mapping):  # noqa: ANN001
        self.puts += len(mapping)
        super().put_many(mapping)


@pytest.fixture(scope="module")
def ray_session():
    import ray

    options = RayOptions(workers=2)
    ensure_ray(options)
    yield options
    ray.shutdown()


@pytest.fixture(scope="module")
def lm():
    """The tiny model, with the driver on one torch thread like each worker (cpus_per_worker=1): reductions
    split over a different number of threads may differ in the last bit."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_causal_lm(seed=0)
    torch.set_num_threads(threads)


def _planted_cache(path, lm):
    """A cache holding marker vectors (all 7.0) for the first three texts, under the local path's keys."""
    cache = CountingCache(path)
    embed_texts(lm, TEXTS[:3], batch_size=4, cache=cache, show_progress=False)
    keys = [DiskCache.key(task="embed", version=1, model=lm.fingerprint, pooling="mean", max_length=128, text=t)
            for t in TEXTS[:3]]
    found = cache.get_many(keys)
    assert len(found) == 3
    cache.put_many({k: np.full_like(v, 7.0) for k, v in found.items()})
    return cache


def test_embedding_equals_local_and_shares_the_cache(ray_session, lm, tmp_path):
    expected = embed_texts(lm, TEXTS, batch_size=4, cache=_planted_cache(tmp_path / "local.sqlite", lm),
                           show_progress=False)
    cache = _planted_cache(tmp_path / "ray.sqlite", lm)
    got = embed_texts(lm, TEXTS, batch_size=4, cache=cache, show_progress=False, engine="ray",
                      ray_options=ray_session)
    assert np.all(got[[0, 1, 2, 14]] == 7.0)  # cached texts are not recomputed (text 14 repeats text 0)
    assert not np.any(got[3:14] == 7.0)
    np.testing.assert_array_equal(got, expected)  # exactly, float32
    # the ray job wrote every new vector under the local path's keys: a local run now computes nothing
    cache.puts = 0
    again = embed_texts(lm, TEXTS, batch_size=4, cache=cache, show_progress=False)
    assert cache.puts == 0
    np.testing.assert_array_equal(again, got)


def test_scoring_survives_a_killed_worker(ray_session, lm, tmp_path):
    ids = [lm.tokenizer.convert_tokens_to_ids("Yes"), lm.tokenizer.convert_tokens_to_ids("No")]
    expected = next_token_logprobs_many(lm, GROUPS, ids, batch_size=3, show_progress=False)
    marker = tmp_path / "crashed"
    spec = ModelSpec(builder=functools.partial(tiny_causal_lm, 0))  # each worker builds the model itself
    options = RayOptions(workers=ray_session.workers, max_restarts=2)  # bounded restarts, batches retried
    got = score_continuations_ray(spec, GROUPS, token_ids=ids, batch_size=3, show_progress=False,
                                  options=options, crash_marker=str(marker))
    assert marker.exists()  # a worker really died on its first batch
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_sum_scores_of_the_pool_worker_equal_local(lm):
    """The worker's sum-of-log-probs path, called in process (the pool mechanics are tested above)."""
    from recllm.distributed.ray_jobs import _ScoreActor

    expected = score_continuations_many(lm, GROUPS, batch_size=3, show_progress=False)
    worker = _ScoreActor(ModelSpec(builder=functools.partial(tiny_causal_lm, 0)), 1, None, True, 3, None)
    rows = {"group": np.arange(len(GROUPS)), "prefix": np.array([p for p, _ in GROUPS], dtype=object),
            "continuations": np.array([np.array(c, dtype=object) for _, c in GROUPS], dtype=object)}
    out = worker(rows)
    for g, e in enumerate(expected):
        np.testing.assert_array_equal(out["value"][out["group"] == g, 0], e)
        assert list(out["pos"][out["group"] == g]) == list(range(len(e)))


def test_generation_worker_equals_local(lm):
    """The pool worker for summaries: one generate call per chunk, as the local summarizer makes them."""
    from recllm.distributed.ray_jobs import _GenerateActor
    from recllm.llm import generate

    chunks = [[p for p, _ in GROUPS[:3]], [p for p, _ in GROUPS[3:]]]
    worker = _GenerateActor(ModelSpec(builder=functools.partial(tiny_causal_lm, 0)), 1, None, 6, 2)
    rows = {"ids": np.array([np.arange(3), np.arange(3, 6)], dtype=object),
            "prompts": np.array([np.array(c, dtype=object) for c in chunks], dtype=object)}
    out = worker(rows)
    expected = [t for c in chunks for t in generate(lm, c, max_new_tokens=6, batch_size=2, show_progress=False)]
    assert list(out["index"]) == list(range(6))
    assert list(out["text"]) == expected
    assert any(expected) and np.all(out["seconds"] > 0)


def test_summaries_on_ray_equal_local_and_share_the_cache(ray_session, lm, tmp_path):
    """LLM-TRSR block and merge summaries on 2 workers: the local path's texts, under the local path's keys (the
    recurrent mode goes through the same chunk runner; one mode keeps the suite cheap)."""
    from recllm.trsr.segment import SegmentConfig
    from recllm.trsr.summarize import SummarizerConfig, summarize_histories

    item_texts = [f"film {i} about " + "space " * (i % 4 + 1) for i in range(12)]
    histories = [np.arange(u, u + 3 + 2 * u) % 12 for u in range(4)]  # 1 to 3 blocks of 3 items
    config = SummarizerConfig(mode="hierarchical", max_new_tokens=4, batch_size=2, chunk_size=2,
                              segment=SegmentConfig(block_size=3, max_blocks=3))
    local_cache = CountingCache(tmp_path / "local.sqlite")
    expected = summarize_histories(lm, histories, item_texts, config, cache=local_cache, show_progress=False)
    cache = CountingCache(tmp_path / "ray.sqlite")
    got = summarize_histories(lm, histories, item_texts, config, cache=cache, show_progress=False, engine="ray",
                              ray_options=ray_session)
    assert got.texts == expected.texts and got.steps == expected.steps
    assert any(got.texts) and got.generated == expected.generated == got.prompts > len(histories)
    assert cache.puts == got.generated  # every chunk committed to the cache as it finished
    # a local run over the Ray run's cache generates nothing, and a Ray run over the local run's cache neither
    again = summarize_histories(lm, histories, item_texts, config, cache=cache, show_progress=False)
    back = summarize_histories(lm, histories, item_texts, config, cache=local_cache, show_progress=False,
                               engine="ray", ray_options=ray_session)
    assert again.generated == back.generated == 0
    assert again.texts == back.texts == expected.texts


def test_a_worker_running_other_recllm_code_is_refused(ray_session):
    """A node with another recllm.llm (another release or an edit) would put its outputs under the driver's
    fingerprint: the driver refuses its batches, naming both code hashes and what to do."""
    from recllm.llm.backbone import llm_code_version

    def other_code_model():  # runs on the worker only: that process reports another recllm.llm source
        import recllm.llm.backbone as backbone

        backbone.llm_code_version = lambda: "0" * 12
        return backbone.tiny_causal_lm(0)

    with pytest.raises(RuntimeError, match=f"other recllm.llm code \\(source 000000000000\\) than this driver "
                                           f"\\({llm_code_version()}\\).*install the same recllm on every node"):
        score_continuations_ray(ModelSpec(builder=other_code_model), GROUPS, batch_size=3, show_progress=False,
                                options=ray_session)
    import recllm.llm.backbone as backbone

    assert backbone.llm_code_version() == llm_code_version() != "0" * 12  # the driver's own is untouched


def test_the_driver_checks_every_result_batch_for_its_code():
    from recllm.distributed.ray_jobs import _check_worker_code
    from recllm.llm.backbone import llm_code_version

    _check_worker_code({"code": np.asarray([llm_code_version()] * 3, dtype=object)})
    _check_worker_code({"code": np.asarray([], dtype=object)})
    with pytest.raises(RuntimeError, match="source abc"):
        _check_worker_code({"code": np.asarray([llm_code_version(), "abc"], dtype=object)})


def test_one_string_of_continuations_is_refused_before_ray_starts(monkeypatch):
    """As the local ``score_continuations``: "Yes" is one string, not the continuations "Y", "e", "s"."""
    import recllm.distributed.ray_jobs as ray_jobs

    def no_ray(options):  # noqa: ANN001 - the check must come before Ray is needed
        raise AssertionError("Ray was started for a wrong argument")

    monkeypatch.setattr(ray_jobs, "ensure_ray", no_ray)
    with pytest.raises(TypeError, match=r"groups\[1\] continuations must be a sequence of strings, not one string"):
        score_continuations_ray(object(), [("a prefix", ["Yes", "No"]), ("another prefix", "Yes")],
                                show_progress=False)


def _assert_one_line_naming(exc: BaseException, cause: str) -> None:
    message = str(exc)
    assert message == f"a Ray worker failed: {cause}", message
    assert "\n" not in message and "\x1b" not in message


def test_a_worker_exception_is_one_line_naming_its_cause_not_rays_traceback():
    """Ray Data wraps the model's exception in a generic UserCodeException: the driver names the original in one
    line, without Ray's traceback or its terminal colours (a stand-in dataset raises what a failed job raises)."""
    from ray.exceptions import RayTaskError, UserCodeException

    from recllm.distributed.ray_jobs import _results

    title = "\x1b[36mray::MapWorker(MapBatches(_EmbedActor)).submit()\x1b[39m"
    worker_trace = ('  File "recllm/llm/embed.py", line 64, in _embed_causal\n'
                    '    out = lm.model(**enc, output_hidden_states=True, **keep)\n'
                    '          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n'
                    'ValueError: weights are NaN on this node\n\n'
                    'The above exception was the direct cause of the following exception:\n\n'
                    f'{title} (pid=1, ip=127.0.0.1)\n'
                    'ray.exceptions.UserCodeException: UDF failed to process a data block.\n')
    failed = RayTaskError("submit", worker_trace, UserCodeException("UDF failed to process a data block."),
                          proctitle=title, pid=1, ip="127.0.0.1").make_dual_exception_instance()

    class FailedJob:
        def iter_batches(self, **kwargs):  # noqa: ANN003
            raise failed

    with pytest.raises(RuntimeError) as caught:
        list(_results(FailedJob()))
    _assert_one_line_naming(caught.value, "ValueError: weights are NaN on this node")
    assert caught.value.__cause__ is failed  # Ray's traceback stays reachable (the CLI shows it with --debug)
    # a task error whose cause is the original exception itself (not Ray Data's wrapper)
    plain = RayTaskError("f", "Traceback ...", KeyError("no column 'x'"), proctitle="ray::f", pid=1, ip="127.0.0.1")
    with pytest.raises(RuntimeError) as caught:
        list(_results(type("Job", (), {"iter_batches": lambda self, **kw: (_ for _ in ()).throw(plain)})()))
    _assert_one_line_naming(caught.value, "KeyError: \"no column 'x'\"")


def test_a_failing_model_on_a_real_worker_is_one_line(ray_session):
    """A model whose forward fails on the worker (as a corrupt weight or an out-of-memory would), and one that
    cannot be loaded there: the original error in one line, on a real pool."""
    from recllm.distributed.ray_jobs import embed_texts_ray

    def broken_model():  # defined here: a worker unpickles it by value (it cannot import this test module)
        from recllm.llm.backbone import tiny_causal_lm

        lm = tiny_causal_lm(0)

        def fail(*args, **kwargs):  # noqa: ANN002, ANN003
            raise ValueError("weights are NaN on this node")

        lm.model.forward = fail
        return lm

    def missing_model():  # the driver loads it too (for the cache keys): only the workers lack it
        import ray

        from recllm.llm.backbone import tiny_causal_lm

        if ray.get_runtime_context().get_actor_id() is not None:
            raise OSError("no model folder /models/x on this node")
        return tiny_causal_lm(0)

    for builder, cause in ((broken_model, "ValueError: weights are NaN on this node"),
                           (missing_model, "OSError: no model folder /models/x on this node")):
        with pytest.raises(RuntimeError) as caught:
            embed_texts_ray(ModelSpec(builder=builder), TEXTS[:4], batch_size=4, show_progress=False,
                            options=ray_session)
        _assert_one_line_naming(caught.value, cause)


@pytest.mark.parametrize("kwargs, field", [
    (dict(cpus_per_worker=float("nan")), "cpus_per_worker"), (dict(gpus_per_worker=float("nan")), "gpus_per_worker"),
    (dict(cpus_per_worker="1"), "cpus_per_worker"), (dict(gpus_per_worker=True), "gpus_per_worker"),
    (dict(max_restarts=1.5), "max_restarts"),
])
def test_ray_options_name_the_bad_field(kwargs, field):
    """A NaN CPU or GPU share passed every comparison (NaN <= 0 is False) and reached ray.init; refused by name."""
    with pytest.raises(ValueError, match=rf"RayOptions\.{field} must be"):
        RayOptions(**kwargs)
    assert RayOptions(cpus_per_worker=np.float64(0.5), max_restarts=np.int64(2)).max_restarts == 2


def test_a_worker_no_node_can_hold_is_one_line_not_a_wait_forever(ray_session, lm):
    """RayOptions(gpus_per_worker=1) on a Ray without GPUs: the actors could never be scheduled and the job waited
    with no result and no error."""
    from recllm.distributed import ray_jobs
    from recllm.errors import UserInputError

    import ray

    if not ray_jobs._STARTED_HERE[0] or any(n.get("Resources", {}).get("GPU") for n in ray.nodes()):
        pytest.skip("the session joined a Ray cluster (or has GPUs): the cases below could be scheduled there")
    cases = ((RayOptions(workers=1, gpus_per_worker=1), r"no node of the Ray cluster has 1 CPUs and 1 GPUs",
              "gpus_per_worker"),
             (RayOptions(workers=1, cpus_per_worker=64), r"no node of the Ray cluster has 64 CPUs", "cpus_per_worker"),
             (RayOptions(workers=5), r"the Ray cluster holds 2 worker\(s\) of 1 CPUs, not 5", "workers"))
    for options, message, field in cases:  # the module's session: a local Ray of 2 CPUs that recllm started
        with pytest.raises(UserInputError, match=rf"{message}.*forever \(RayOptions\.{field}\)"):
            ray_jobs.embed_texts_ray(lm, ["a"], show_progress=False, options=options)


def test_ray_address_from_the_environment_is_checked_like_the_option(monkeypatch):
    """`ray job submit` sets $RAY_ADDRESS; with no --ray-address Ray joins it, and ensure_ray passed num_cpus to that
    existing cluster (Ray: "num_cpus and num_gpus must not be provided", an internal error)."""
    import argparse

    from recllm.cli_args import engine_options
    from recllm.errors import UserInputError

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    args = argparse.Namespace(engine="ray", ray_address=None, ray_workers=2)
    with pytest.raises(UserInputError, match=r"nothing answers at 127\.0\.0\.1:1 .*\(\$RAY_ADDRESS\)"):
        engine_options(args)
