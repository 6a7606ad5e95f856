"""Argument helpers shared by subcommands.

Numeric and list options are checked by argparse types here, so a bad value ends the command with
one line and status 2 before any work is done or any file is written."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import HarnessError
from ..selection import parse_doc_ids, parse_sample_limits


def split_names(value: str | None) -> list[str]:
    """Comma-separated names, blanks dropped, duplicates dropped (first one kept)."""
    return list(dict.fromkeys(v.strip() for v in (value or "").split(",") if v.strip()))


def resolve_names(value: str | None, available: list[str], kind: str, default: list[str]) -> list[str]:
    """Comma-separated names, 'all', or the default; unknown names raise with the valid ones."""
    names = split_names(value)
    if not names:
        return list(default)
    if names == ["all"]:
        return list(available)
    return names


def name_list(value: str) -> str:
    """argparse type of a comma-separated list option: at least one name, 'all' alone or not at all."""
    names = split_names(value)
    if not names:
        raise argparse.ArgumentTypeError(f"'{value}' names nothing; give comma-separated names such as a,b")
    if "all" in names and len(names) > 1:
        raise argparse.ArgumentTypeError(f"'{value}' mixes 'all' with names; give 'all' or the names")
    return ",".join(names)


def bounded_int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type of an integer option in [minimum, maximum]."""
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value}' is not an integer") from None
        if n < minimum or (maximum is not None and n > maximum):
            span = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {n}")
        return n
    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


positive_int = bounded_int(1)
non_negative_int = bounded_int(0)
seed_int = bounded_int(0, 2**32 - 1)  # vLLM and numpy take unsigned 32-bit seeds


def add_data_dir(p: argparse.ArgumentParser) -> None:
    from ..options import OPTIONS, add_to_argparse

    add_to_argparse(p, [OPTIONS["--data-dir"]])


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="engine logs (vLLM, transformers) at INFO on the console; they always go to the run's run.log")


def parsed_text(parse: Callable[[str], object], name: str) -> Callable[[str], str]:
    """An argparse type that keeps the option's text but refuses, in `parse`'s words, what `parse`
    refuses (dataset names in it are checked later, against the datasets of the run)."""
    def check(value: str) -> str:
        try:
            parse(value)
        except HarnessError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value

    check.__name__ = name
    return check


# --sample-limit: N, or name=N,...,default=N
sample_limit_text = parsed_text(parse_sample_limits, "sample_limit_text")
# --doc-ids: a JSON object or a file holding one
doc_ids_text = parsed_text(parse_doc_ids, "doc_ids_text")


def canonical_models(names: list[str]) -> list[str]:
    """Registry aliases (qwen2.5_7b, ...) replaced by the registry names results are stored under."""
    from ..models import canonical_model_name

    return list(dict.fromkeys(canonical_model_name(n) for n in names))


def unit_float(value: str) -> float:
    """argparse type of a fraction in (0, 1] (--gpu-memory-utilization)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if not 0 < x <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {x}")
    return x


def positive_float(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {x}")
    return x


# The engine, server and judge options are declared once, in qwenharness/options.py, for the CLI
# and the pytest gates alike.
def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The in-process engine's settings (they replace the preset's and enter the memory plan)."""
    from ..options import ENGINE_OPTIONS, add_to_argparse

    add_to_argparse(p.add_argument_group("engine settings (in-process engines; default: the preset's)"),
                    ENGINE_OPTIONS)


def add_server_options(p: argparse.ArgumentParser, *, judge: bool = False) -> None:
    """Backend openai: the server's address and how to talk to it."""
    from ..options import JUDGE_SERVER_OPTIONS, SERVER_OPTIONS, add_to_argparse

    g = p.add_argument_group("server (--backend openai: an OpenAI-compatible server such as vllm serve)")
    add_to_argparse(g, SERVER_OPTIONS + (JUDGE_SERVER_OPTIONS if judge else ()))


def engine_settings(args: argparse.Namespace, previous: dict | None = None) -> "EngineSettings":  # noqa: F821
    """The EngineSettings of the flags given (else those of `previous`, a manifest's)."""
    from ..engine_args import EngineSettings, parse_engine_args

    prev = previous or {}
    values = {}
    for name in ("max_model_len", "tensor_parallel_size", "gpu_memory_utilization", "max_num_seqs", "dtype",
                 "kv_cache_dtype", "compilation"):
        value = getattr(args, name, None)
        values[name] = value if value is not None else prev.get(name)
    text = getattr(args, "engine_args", None)
    values["engine_args"] = parse_engine_args(text) if text else dict(prev.get("engine_args") or {})
    return EngineSettings(**values)


def server_endpoint(args: argparse.Namespace, previous: dict | None = None, *, judge: bool = False) -> "Any":  # noqa: F821
    """The ServerEndpoint of the --base-url (or --judge-base-url) flags, else `previous`'s; None without one."""
    from ..engines.openai import ServerEndpoint

    prefix = "judge_" if judge else ""
    url = getattr(args, f"{prefix}base_url", None)
    if url is None:
        return ServerEndpoint.from_dict(previous) if previous else None
    base = dict(previous or {})
    base["base_url"] = url
    for arg, key in ((f"{prefix}api_key_env", "api_key_env"), (f"{prefix}served_model", "served_model"),
                     ("server_api", "api"), ("max_concurrency", "max_concurrency"),
                     ("request_timeout", "timeout_s"), ("max_retries", "max_retries")):
        value = getattr(args, arg, None)
        if value is not None:
            base[key] = value
    return ServerEndpoint.from_dict(base)
