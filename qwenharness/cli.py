"""`qwenharness` command line. Each subcommand lives in qwenharness/commands/<name>.py and exposes
`register(subparsers)`; handlers return an exit status. HarnessErrors become one line and status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import HarnessError, storage_error

COMMANDS = ("models", "presets", "datasets", "fetch-model", "evaluate", "score", "bench", "compare", "report")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: one line, status 2
        self.exit(2, f"qwenharness: error: {message} (see qwenharness --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qwenharness", description="Validate and benchmark Qwen models served by vLLM.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"qwenharness.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as e:
            if e.name != f"qwenharness.commands.{name.replace('-', '_')}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


# Commands that start processes (engines, sandboxed programs) run under qwenharness.lifetime's
# guard when started from the command line, so those processes die with the command however it ends.
SUPERVISED = frozenset({"evaluate", "bench", "score"})


def main(argv: list[str] | None = None, *, supervise: bool | None = None) -> int:
    """Run one command. `supervise` (default: when argv comes from the command line) runs the
    commands in SUPERVISED in a guarded worker process (see qwenharness.lifetime)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (argv is None if supervise is None else supervise) and args.command in SUPERVISED:
        from .lifetime import run_supervised

        return run_supervised(lambda: _dispatch(args))
    return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except HarnessError as e:
        print(f"qwenharness: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a disk error that no lower layer named: still one line
        err = storage_error(e)
        if err is None:
            raise
        print(f"qwenharness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qwenharness: interrupted; finished samples are saved, rerun with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
