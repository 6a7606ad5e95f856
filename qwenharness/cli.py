"""`qwenharness` command line. Each subcommand lives in qwenharness/commands/<name>.py and exposes
`register(subparsers)`; handlers return an exit status. HarnessErrors become one line and status 2."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from . import __version__
from .errors import HarnessError, storage_error

COMMANDS = ("models", "presets", "datasets", "fetch-model", "evaluate", "score", "bench", "compare", "report",
            "parity")


# lm-evaluation-harness options with no counterpart here, and what to use instead
LM_EVAL_HINTS = {
    "--model": "did you mean --models? (it takes NAME[,NAME]: a registry name, a model folder, a GGUF file "
               "or a Hub id; the backend is --backend vllm|hf)",
    "--model-args": "model settings come from --models and --presets (see qwenharness presets)",
    "--batch-size": "vLLM batches requests itself; the presets set max_num_seqs (see qwenharness presets)",
    "--device": "the device is detected (GPU if one is visible, else CPU); see qwenharness presets --gpu detect",
}


class _Parser(argparse.ArgumentParser):
    """No abbreviated options (`--model` is not `--models`); one-line usage errors with the fix."""

    argv: list[str] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # argparse's own usage errors: one line, status 2
        self.exit(2, f"qwenharness: error: {_with_fix(self, message)}\n")


def _visible_options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions if a.help != argparse.SUPPRESS for o in a.option_strings]


def _subparser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The subcommand's parser named in the arguments being parsed, else `parser` itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word in _Parser.argv:
                if word in action.choices:
                    return action.choices[word]
    return parser


def _with_fix(parser: argparse.ArgumentParser, message: str) -> str:
    from .console import suggest

    m = re.match(r"unrecognized arguments: (\S+)", message)
    if m:
        word = m.group(1).split("=", 1)[0]
        target = _subparser(parser)
        if word in LM_EVAL_HINTS:
            return f"unrecognized option {word}: {LM_EVAL_HINTS[word]}"
        near = suggest(word, _visible_options(target)) if word.startswith("-") else None
        where = target.prog
        if near:
            return f"unrecognized option {word}: did you mean {near}? (see {where} --help)"
        return f"{message} (see {where} --help)"
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
        near = suggest(m.group(1), choices)
        if near:
            return f"{message}: did you mean {near}?"
    return f"{message} (see {parser.prog} --help)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qwenharness", description="Validate and benchmark Qwen models served by vLLM.")
    parser.add_argument("--version", action="version", version=f"qwenharness {__version__}")
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
SUPERVISED = frozenset({"evaluate", "bench", "score", "parity"})


def main(argv: list[str] | None = None, *, supervise: bool | None = None) -> int:
    """Run one command. `supervise` (default: when argv comes from the command line) runs the
    commands in SUPERVISED in a guarded worker process (see qwenharness.lifetime)."""
    parser = build_parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    from .console import quiet_engines

    quiet_engines(verbose=bool(getattr(args, "verbose", False)))  # before any engine library is imported
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
