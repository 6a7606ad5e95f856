"""GGUF files as a model source: dequantised once into a cached Hugging Face folder that both
engines (vLLM and transformers) load.

transformers reads the GGUF's config, tokenizer (with its chat template) and tensors; the tensors
are dequantised (`load_gguf_checkpoint(..., return_tensors=True)`) into an ordinary state dict of
the architecture's own class, saved as bf16 safetensors. The folder is keyed by the file's sha256,
built in a temporary folder and renamed into place when complete, so a killed conversion leaves
nothing that looks usable (a stale temporary folder is removed by the next conversion).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ConfigError, HarnessError
from .fetch import cache_root, sha256_of

CONVERTER_VERSION = 1
BUILD_FILE = "qwenharness_gguf.json"  # written last: its presence marks a complete folder
CONVERTED_DTYPE = "bfloat16"


class ConversionError(HarnessError, RuntimeError):
    """A GGUF file that transformers cannot read or convert."""


def converted_root() -> Path:
    return cache_root() / "models"


def converted_dir(sha256: str, root: Path | None = None) -> Path:
    return (root or converted_root()) / f"gguf-{sha256[:16]}"


def is_converted(folder: Path, sha256: str) -> bool:
    marker = folder / BUILD_FILE
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("sha256") == sha256 and info.get("converter_version") == CONVERTER_VERSION


def file_sha256(path: Path) -> str:
    """sha256 of a GGUF, remembered beside the converted folders by (path, size, mtime)."""
    st = path.stat()
    index_path = converted_root() / "gguf-hashes.json"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError):
        index = {}
    if key in index:
        return str(index[key])
    digest = sha256_of(path, progress=st.st_size > (256 << 20))
    index[key] = digest
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_name(f".{index_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(index, indent=1))
        os.replace(tmp, index_path)
    except OSError:
        pass  # only a cache of hashes: recomputed next time
    return digest


def read_gguf_config(path: Path) -> dict[str, Any]:
    """The Hugging Face config.json transformers derives from a GGUF's metadata (no tensors read)."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as e:  # transformers raises ValueError/KeyError/ImportError for unknown files
        raise ConversionError(
            f"transformers cannot read {path.name} as a GGUF model ({type(e).__name__}: {e})",
            "use a GGUF whose architecture transformers supports (llama, qwen2, qwen3, mistral, ...), "
            "and install the `gguf` package") from e
    d = cfg.to_dict()
    if not d.get("architectures"):
        from transformers import AutoModelForCausalLM

        d["architectures"] = [AutoModelForCausalLM._model_mapping[type(cfg)].__name__]
    return d


def ensure_converted(gguf_path: Path, *, sha256: str | None = None, root: Path | None = None) -> Path:
    """The converted folder of `gguf_path`, converting first if it is not cached yet."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ConfigError(f"GGUF file {gguf_path} does not exist", "check the path")
    digest = sha256 or file_sha256(gguf_path)
    target = converted_dir(digest, root)
    if is_converted(target, digest):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        started = time.time()
        print(f"gguf: converting {gguf_path.name} into {target} (bf16; once per file)", file=sys.stderr)
        convert(gguf_path, tmp)
        _write_json(tmp / BUILD_FILE, {
            "sha256": digest, "source_file": gguf_path.name, "converter_version": CONVERTER_VERSION,
            "dtype": CONVERTED_DTYPE, "seconds": round(time.time() - started, 1),
        })
        if target.exists():  # an incomplete folder from another converter version
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not is_converted(target, digest):  # not a concurrent conversion that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert(gguf_path: Path, out: Path) -> None:
    """Dequantise `gguf_path` into a Hugging Face folder `out`: config, tokenizer, bf16 weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        config = AutoConfig.from_pretrained(folder, gguf_file=name)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        parsed = load_gguf_checkpoint(str(gguf_path), return_tensors=True, model_to_load=model,
                                      torch_dtype=torch.bfloat16)
    except HarnessError:
        raise
    except Exception as e:
        raise ConversionError(f"cannot convert {name} ({type(e).__name__}: {e})",
                              "use a GGUF whose architecture transformers supports, with the `gguf` package") from e
    tensors = parsed["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise ConversionError(
            f"{name}: the GGUF's tensors do not match {type(model).__name__} "
            f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})",
            "the file may be damaged or of an architecture variant transformers does not map")
    model.tie_weights()
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    for f in out.iterdir():  # safetensors writes 0600; results and models are readable by the group
        f.chmod(0o644)


def _remove_stale_temporaries(folder: Path, older_than_s: float = 6 * 3600) -> None:
    now = time.time()
    for p in folder.glob(".gguf-*.tmp"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
