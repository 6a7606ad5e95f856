"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse



def split_names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def resolve_names(value: str | None, available: list[str], kind: str, default: list[str]) -> list[str]:
    """Comma-separated names, 'all', or the default; unknown names raise with the valid ones."""
    names = split_names(value)
    if not names:
        return list(default)
    if names == ["all"]:
        return list(available)
    return names


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder of local dataset files (default: $QWENHARNESS_DATA_DIR, "
                   "else ../shared/data beside the checkout if present, else the Hugging Face Hub)")
