"""Argument checks shared by every ``recllm`` subcommand, run before any data or model is loaded.

The ``argparse`` types (``positive_int``, ``non_negative_int``, ``positive_float``, ``fraction``, ``seed_arg``)
turn a bad value into argparse's own one-line error (exit 2). The ``check_*`` functions raise
:class:`recllm.errors.UserInputError`; handlers call them first, so a mistake costs no work.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from recllm.errors import UserInputError

__all__ = ["SEED_LIMIT", "TRAIN_TODO", "add_engine_args", "check_choices", "check_dataset", "check_input_dir",
           "fetch_data", "check_model", "check_seeds", "config_errors", "engine_options", "fraction",
           "non_negative_int", "positive_float", "positive_int", "seed_arg", "thread_count"]

SEED_LIMIT = 2**32  # seeds go to NumPy's RandomState / default_rng and scikit-learn: 0 .. 2**32 - 1
_SEED_TODO = f"give a whole number from 0 to {SEED_LIMIT - 1}"
# what to add when a split leaves nothing to train on (check_split_cases' train_todo)
TRAIN_TODO = ("add interactions to --data (training needs a user with 2 or more before the validation and test ones: "
              "4 or more under leave-one-out)")


def _int(text: str) -> int:
    """A whole number written in ASCII digits with an optional sign (Python's ``int`` also reads ``1_000`` and
    other scripts' digits, which no shell user means as a number)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def positive_int(text: str) -> int:
    """A count or ``k``: a whole number of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number; give 1 or more")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0 (e.g. ``--threads``, where 0 means the library default)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more")
    return value


def max_threads() -> int:
    """The most threads a ``--threads`` option accepts: 4 per CPU, and at least 64."""
    return max(64, 4 * (os.cpu_count() or 1))


def thread_count(text: str) -> int:
    """``--threads``: 0 (the libraries' default) up to :func:`max_threads` (thousands of OpenMP threads end in a
    MemoryError at the first model call, after the model has loaded)."""
    value = non_negative_int(text)
    if value > max_threads():
        raise argparse.ArgumentTypeError(f"{text!r} is far more threads than this machine's {os.cpu_count() or 1} "
                                         f"CPUs can use; give at most {max_threads()}, or 0 for the libraries' default")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """A rate or a scale: a finite number above 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def non_negative_float(text: str) -> float:
    """An age or a margin: a finite number of at least 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; give 0 or more")
    return value


def port_number(text: str) -> int:
    """A TCP port: a whole number from 1 to 65535."""
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port; give a whole number from 1 to 65535")
    return value


def fraction(text: str) -> float:
    """A share: a number from 0 to 1."""
    value = _float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def _is_seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT


def seed_arg(text: str) -> int:
    """A random seed (``--seed``, each of ``--seeds``): a whole number from 0 to 2**32 - 1."""
    value = _int(text)
    if not _is_seed(value):
        raise argparse.ArgumentTypeError(f"seed {text!r} is out of range; {_SEED_TODO}")
    return value


def check_seeds(seeds: Any, option: str = "--seeds") -> list[int] | None:
    """A ``--seeds`` list (None: not given, the command's own seeds): at least one seed, none twice, each a
    :func:`seed_arg`; a UserInputError naming ``option`` otherwise."""
    if seeds is None:
        return None
    given = list(seeds) if isinstance(seeds, (list, tuple)) else [seeds]
    if not given:
        raise UserInputError("no seed given", option,
                             f"name one or more seeds after {option}, or leave {option} out for the command's own")
    bad = [v for v in given if not _is_seed(v)]
    if bad:
        raise UserInputError(f"seed {bad[0]!r} is out of range", option, _SEED_TODO)
    twice = sorted({v for v in given if given.count(v) > 1})
    if twice:
        raise UserInputError(f"seed {twice[0]} is given twice", option, "name each seed once")
    return given


def check_dataset(name: str, option: str = "--data") -> str:
    """``name`` when the data set registry knows it, else a UserInputError listing close names (loads nothing)."""
    from recllm.data import DATASETS, get_loader

    if not isinstance(name, str) or not name.strip():
        raise UserInputError(f"no data set name (got {name!r})", option, "see `recllm data list` for the names")
    try:
        get_loader(name)
    except KeyError:
        close = difflib.get_close_matches(name, list(DATASETS), n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise UserInputError(f"unknown data set {name!r}", option,
                             f"{hint}see `recllm data list` for the known names") from None
    return name


def check_data_source(value: str, option: str = "--data") -> str:
    """``value`` when it is a data set of the registry (:func:`check_dataset`) or a data folder holding an
    interactions table (:func:`recllm.data.folder.check_folder`; its files are read later, by the command)."""
    from recllm.data.folder import check_folder, is_data_folder

    if not isinstance(value, str) or not is_data_folder(value):
        return check_dataset(value, option)
    check_folder(Path(value).expanduser(), value)
    return value


def fetch_data(names: Iterable[str], skip_missing: bool = False) -> list[str]:
    """Each registry data set of ``names`` on this machine before a command's expensive work (models, probes, fits):
    its missing files are downloaded as a load would, or a one-line :class:`recllm.data.dataset.DataError` names
    the files, the folder and what to do (``skip_missing``: leaves that data set out of the returned names
    instead). Data folders of the user's own files are kept as they are (``check_data_source`` checks them);
    nothing is parsed."""
    from recllm.data.dataset import DataError
    from recllm.data.folder import is_data_folder
    from recllm.data.loaders import data_root, get_loader

    here = []
    for name in dict.fromkeys(names):
        if not is_data_folder(name):
            try:
                get_loader(name).fetch(data_root(name), show_progress=False)
            except DataError:
                if not skip_missing:
                    raise
                continue
        here.append(name)
    return here


def check_item_text(dataset: Any, where: str, use: str, todo: str = "") -> Any:
    """``dataset`` when it declares item text columns; else a UserInputError saying how to add them (``use``: what
    needs the text, ``todo``: another way out)."""
    if not dataset.schema.item_text:
        raise UserInputError(f"data set {dataset.name!r} has no item text, which {use}", where,
                             "add items.csv (item_id and text columns such as title) to the data folder" + todo)
    return dataset


def check_split_cases(split: Any, where: str, todo: str = "add interactions (leave-one-out needs users with 3 or more)",
                      train_todo: str | None = None) -> Any:
    """``split`` when its validation and test stages each have an evaluation case (a user with a history and a later
    target) and, when ``train_todo`` is given (a command that trains on the split), its training part has a user
    with 2 or more items (the item-to-next-item step SASRec, LEARN and the LLM-TRSR ranker train on: their ``fit``
    raises ValueError without one); else a UserInputError with ``todo`` or ``train_todo`` (a small data set of your
    own, e.g. users with fewer than 3 interactions under leave-one-out, or fewer than 4 for training)."""
    for stage in ("valid", "test"):
        if len(split.eval_cases(stage)) == 0:
            raise UserInputError(f"the {split.name} split of {split.dataset.name!r} leaves no {stage} case (a user "
                                 "with a history and a later target)", where, todo)
    if train_todo is not None and not any(len(items) >= 2 for items in split.sequences("train").values()):
        raise UserInputError(f"the {split.name} split of {split.dataset.name!r} leaves no user with 2 or more "
                             "training interactions, which training learns from", where, train_todo)
    return split


def check_choices(given: Iterable[str] | None, known: Iterable[str], what: str, option: str) -> None:
    """A UserInputError naming ``option`` when ``given`` (an option's values; None: not given) holds a name not in
    ``known`` (``what``: the kind of name, plural, e.g. "imputer(s)"); checked before a config is built, so the
    message names the option where the config's own ValueError could not."""
    known = list(known)
    unknown = sorted(set(given or ()) - set(known))
    if unknown:
        raise UserInputError(f"unknown {what} {unknown}", option, f"choose from {', '.join(map(repr, known))}")


def check_model(name: str | None, option: str = "--model") -> str | None:
    """``name`` unless it looks like a local folder that does not exist (see ``recllm.llm.backbone``)."""
    if name is None:
        return None
    from recllm.llm.backbone import check_model_reference

    checked = check_model_reference(name, option)
    folder = Path(name).expanduser()
    todo = ("give the folder that holds the model's config.json (or a LoRA adapter's adapter_config.json), or a "
            "Hugging Face model id")
    if folder.is_dir() and not any((folder / f).is_file() for f in ("config.json", "adapter_config.json")):
        raise UserInputError(f"{name} is a folder without config.json, not a model folder", option, todo)
    if folder.is_dir() and not (folder / "adapter_config.json").is_file():  # a model folder: what transformers reads
        _check_model_folder(folder, name, option, todo)
    return checked


_WEIGHTS = ("*.safetensors", "*.bin", "*.h5", "*.msgpack")  # transformers' weight files, sharded or not


def _check_model_folder(folder: Path, name: str, option: str, todo: str) -> None:
    """A model folder's config.json is a JSON object naming its ``model_type`` and the folder holds weights, so a
    folder of another kind (a LEARN artifact, a cut download) is one line here, not a library error after the
    data and the precision probe; reads only config.json."""
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserInputError(f"{name}/config.json cannot be read as JSON ({exc}), so {name} is not a model folder",
                             option, todo) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise UserInputError(f"{name}/config.json names no model_type: {name} is not a Hugging Face model folder "
                             "(a recllm artifact or run folder is not a model)", option, todo)
    if not any(next(folder.glob(pattern), None) for pattern in _WEIGHTS):
        raise UserInputError(f"{name} holds no model weights (*.safetensors or *.bin)", option,
                             "give a complete model folder (a download may have been cut short), or a Hugging Face "
                             "model id")


def check_folder_settings() -> None:
    """A one-line error when ``$RECLLM_CACHE`` or ``$RECLLM_DATA`` names something other than a folder (checked
    before any command, so no download or cache write goes to ``<a file>/...``)."""
    # each taken as its reader takes it: recllm.utils.cache_root as written, recllm.data.loaders.data_home with ~
    for name, expand, keeps, todo in (
            ("RECLLM_CACHE", False, "its cache", "set it to a folder (it is created if missing), or unset it for "
             "~/.cache/recllm"),
            ("RECLLM_DATA", True, "the data sets (one sub-folder each)", "set it to the folder holding the data sets' "
             "folders (it is created if missing), or unset it for ~/.cache/recllm/data")):
        value = os.environ.get(name)
        path = Path(value).expanduser() if value and expand else Path(value or "")
        if value and path.exists() and not path.is_dir():
            raise UserInputError(f"{name}={value} is a file; recllm keeps {keeps} in a folder", name, todo)


def check_input_dir(path: str, option: str, what: str, needs: str | None = None, todo: str | None = None) -> Path:
    """An existing folder given by the user (a run or an artifact); ``needs`` is a file it must hold."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise UserInputError(f"no such {what} folder", f"{option} {path}", todo)
    if not folder.is_dir():
        raise UserInputError(f"{path} is a file, not a {what} folder", option, todo)
    if needs and not (folder / needs).is_file():
        raise UserInputError(f"{path} is not a {what} folder: {needs} is missing", option, todo)
    if not os.access(folder, os.R_OK | os.X_OK):
        raise UserInputError(f"cannot read the {what} folder: no permission", f"{option} {path}", todo)
    return folder


@contextlib.contextmanager
def config_errors(where: str = "command-line options") -> Iterator[None]:
    """Turn a config's validation error (``ValueError`` from ``__post_init__``) into a UserInputError.

    Wrap only the building of configs from the options, so a ValueError from real work is not mistaken for one.
    """
    try:
        yield
    except UserInputError:
        raise
    except (ValueError, TypeError) as err:
        raise UserInputError(str(err), where, "change that option (see --help)") from err


def add_engine_args(parser: argparse.ArgumentParser, what: str) -> None:
    """``--engine local|ray``, ``--ray-address`` and ``--ray-workers`` (``what``: the work that moves to Ray, a
    plural noun phrase such as "the item embeddings")."""
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help=f"where {what} run: this process, or a Ray actor pool, with the same results and cache "
                             "(pip install 'recllm[distributed]'; see docs/distributed.md)")
    parser.add_argument("--ray-address", default=None,
                        help="an existing Ray cluster (e.g. auto or ray://host:10001); default: $RAY_ADDRESS's, "
                        "else one `ray start` left on this machine, else start Ray here")
    parser.add_argument("--ray-workers", type=positive_int, default=2, help="Ray actors, one model each")


def engine_options(args: argparse.Namespace) -> Any:
    """The :class:`~recllm.distributed.ray_jobs.RayOptions` of ``--engine ray`` (None for local), after checking
    that Ray Data is installed (one-line UserInputError naming ``--engine`` otherwise); loads no data or model."""
    if args.engine == "local":
        return None
    from recllm.distributed import check_engine

    check_engine(args.engine, "--engine")
    from recllm.distributed.ray_jobs import RayOptions

    if args.ray_address is None and os.environ.get("RAY_ADDRESS"):  # what Ray joins then (`ray job submit` sets it)
        check_ray_address(os.environ["RAY_ADDRESS"], where="$RAY_ADDRESS")
    else:
        check_ray_address(args.ray_address)
    return RayOptions(address=args.ray_address, workers=args.ray_workers)


def check_ray_address(address: str | None, timeout: float = 5.0, where: str = "--ray-address") -> None:
    """A one-line error when ``address`` (from ``where``) names a host and port that do not answer (Ray itself
    retries such an address for minutes). Accepted: none, ``auto``, ``local``, ``host:port`` and
    ``ray://host:port`` (IPv6 hosts in brackets); other schemes are refused."""
    if address in (None, "", "auto", "local"):
        return
    import socket

    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not (port.isascii() and port.isdecimal()) or not host:
        raise UserInputError(f"{address!r} is not a Ray address", where,
                             "give host:port of the cluster's head (e.g. 10.0.0.5:6379 or ray://10.0.0.5:10001), "
                             "or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserInputError(f"nothing answers at {target} ({exc.strerror or exc})", where,
                             "start the cluster (`ray start --head`) or give its head's address") from None
