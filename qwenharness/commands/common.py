"""Argument helpers shared by subcommands.

Numeric and list options are checked by argparse types here, so a bad value ends the command with
one line and status 2 before any work is done or any file is written."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
    p.add_argument("--data-dir", help="folder of local dataset files (default: $QWENHARNESS_DATA_DIR, "
                   "else ../shared/data beside the checkout if present, else the Hugging Face Hub)")


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="engine logs (vLLM, transformers) at INFO on the console; they always go to the run's run.log")


def sample_limit_text(value: str) -> str:
    """argparse type of --sample-limit: N, or name=N,...,default=N (dataset names are checked later)."""
    from ..errors import HarnessError
    from ..selection import parse_sample_limits

    try:
        parse_sample_limits(value)
    except HarnessError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def canonical_models(names: list[str]) -> list[str]:
    """Registry aliases (qwen2.5_7b, ...) replaced by the registry names results are stored under."""
    from ..models import canonical_model_name

    return list(dict.fromkeys(canonical_model_name(n) for n in names))
