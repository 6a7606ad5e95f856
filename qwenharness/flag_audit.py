"""Every flag an error message names must exist: the flags the CLI and the pytest options accept, and
the flags named in the package's error messages (read from the source with `ast`), so a test can
check that no message recommends a flag nobody can pass (issue 15: "use --max-model-len" answered
"unrecognized arguments")."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE = Path(__file__).resolve().parent

# Flags of other programs that messages quote: pip's (the install hint) and vllm serve's.
FOREIGN = frozenset({"--index-url", "--api-key"})


def cli_flags() -> set[str]:
    """Every option string of every `qwenharness` subcommand."""
    from .cli import build_parser

    flags: set[str] = set()
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                for a in sub._actions:
                    flags.update(o for o in a.option_strings if o.startswith("--"))
    return flags


def pytest_flags() -> set[str]:
    """The options the suite's pytest plugin adds (its pytest_addoption run against a recording group)."""
    from .pytest_plugin import pytest_addoption

    names: set[str] = set()

    class Group:
        def addoption(self, *opts: str, **kwargs: object) -> None:
            names.update(o for o in opts if o.startswith("--"))

    class Parser:
        def getgroup(self, *args: object, **kwargs: object) -> Group:
            return Group()

        def addoption(self, *opts: str, **kwargs: object) -> None:
            names.update(o for o in opts if o.startswith("--"))

    pytest_addoption(Parser())  # type: ignore[arg-type]
    return names


def _strings(node: ast.AST, constants: dict[str, str]) -> list[str]:
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
        elif isinstance(sub, ast.Name) and sub.id in constants:
            out.append(constants[sub.id])
    return out


def message_flags(root: Path = PACKAGE) -> dict[str, set[str]]:
    """flag -> the files whose raised errors (or module-level message constants they use) name it."""
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        constants: dict[str, str] = {}
        for node in tree.body:  # module-level text constants (MEMORY_FIX, INSTALL_HINT, ...)
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                texts = [s.value for s in ast.walk(node.value) if isinstance(s, ast.Constant) and isinstance(s.value, str)]
                if texts:
                    constants[node.targets[0].id] = "".join(texts)
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                for text in _strings(node.exc, constants):
                    for flag in FLAG.findall(text):
                        found.setdefault(flag, set()).add(str(path.relative_to(root.parent)))
    return found


def unknown_message_flags() -> dict[str, set[str]]:
    """Flags named in error messages that neither the CLI, the pytest options nor FOREIGN know."""
    known = cli_flags() | pytest_flags() | FOREIGN
    return {flag: files for flag, files in message_flags().items() if flag not in known}
