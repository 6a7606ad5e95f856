"""The real Qwen tokenizer for dummy-weight runs of the seed's architectures.

Random weights (`load_format="dummy"`) need a tokenizer beside the config. Without a real one the
dummy folders get a WordLevel tokenizer of `t0 ... t{vocab-1}` and runs use token-id prompts, so
dataset text cannot be measured for real. Qwen2.5 and Qwen3 share one byte-level BPE vocabulary
(151,643 merges-based tokens, then `<|endoftext|>` 151643, `<|im_start|>` 151644, `<|im_end|>`
151645, ...), and Qwen (v1)'s tiktoken vocabulary has the same ranks and the same three special ids.
The `qwen2.5_coder_1.5b` GGUF carries that tokenizer in its metadata; `extract_from_gguf` turns it
into `tokenizer.json` + `tokenizer_config.json` (+ `chat_template.jinja`) with transformers.

Where the dummy-folder builder looks (`find_real_tokenizer`), first hit wins:
1. `$QWENHARNESS_DUMMY_TOKENIZER`: a folder holding tokenizer.json (an error if it does not);
   the value `none` turns the real tokenizer off (WordLevel placeholders, token-id prompts);
2. `<cache>/tokenizers/qwen2.5` (`default_dir()`), where `extract_from_gguf` writes by default.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError

ENV = "QWENHARNESS_DUMMY_TOKENIZER"
FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
# Architectures whose vocabulary is the Qwen2.5 tokenizer's (ids below 151936 mean the same tokens).
SHARED_VOCAB_ARCHITECTURES = ("Qwen3ForCausalLM", "Qwen2ForCausalLM", "QWenLMHeadModel")
ENDOFTEXT_ID, IM_START_ID, IM_END_ID = 151643, 151644, 151645


def default_dir() -> Path:
    """`$QWENHARNESS_CACHE/tokenizers/qwen2.5`, else `~/.cache/qwenharness/tokenizers/qwen2.5`."""
    base = os.environ.get("QWENHARNESS_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "qwenharness"
    return root / "tokenizers" / "qwen2.5"


def find_real_tokenizer() -> Path | None:
    """The folder of the real Qwen tokenizer for dummy runs, or None (then: WordLevel placeholders)."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() == "none":
        return None
    if value:
        folder = Path(value).expanduser()
        if not (folder / "tokenizer.json").is_file():
            raise ConfigError(f"${ENV} is {value}, which holds no tokenizer.json",
                              "point it at a folder written by scripts/gpu/make_dummy_tokenizer.py, "
                              "or set it to 'none' for the placeholder tokenizer")
        return folder
    folder = default_dir()
    return folder if (folder / "tokenizer.json").is_file() else None


def fingerprint(folder: Path) -> str:
    """A short hash of the tokenizer files (dummy-folder cache names include it)."""
    h = hashlib.sha256()
    for name in FILES:
        file = folder / name
        if file.is_file():
            h.update(name.encode())
            h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()[:12]


def extract_from_gguf(gguf_file: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the tokenizer inside a GGUF file as Hugging Face tokenizer files; return the folder.

    Needs transformers and the `gguf` package (transformers reads GGUF metadata through it). The
    vocabulary is checked against the Qwen special ids, so a GGUF of another family is refused."""
    gguf_file = Path(gguf_file).expanduser()
    if not gguf_file.is_file():
        raise ConfigError(f"no GGUF file at {gguf_file}", "fetch it first: qwenharness fetch-model qwen2.5_coder_1.5b")
    try:
        from transformers import AutoTokenizer
    except ImportError as e:  # pragma: no cover - transformers is a dependency
        raise ConfigError(f"transformers is not importable ({e})", "pip install transformers gguf") from e
    out = Path(out_dir).expanduser() if out_dir is not None else default_dir()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    except ImportError as e:
        raise ConfigError(f"reading a GGUF tokenizer needs the gguf package ({e})", "pip install gguf") from e
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    if ids != [ENDOFTEXT_ID, IM_START_ID, IM_END_ID]:
        raise ConfigError(f"{gguf_file.name} does not hold the Qwen2.5 vocabulary (special ids {ids})",
                          "use the qwen2.5_coder_1.5b GGUF (or another Qwen2.5/Qwen3 GGUF)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=out.parent))
    try:
        tok.save_pretrained(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
