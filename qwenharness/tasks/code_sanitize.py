"""Turn a model's code answer into the program to test, as EvalPlus's sanitizer does (the idea, not
its code): keep the longest prefix that parses, then only the top-level imports, definitions and
assignments, and, when the entry point is defined, only what it needs.

Why: instruct models follow their code with usage examples (`print(f(3))`, `assert f(1) == 2`,
`if __name__ == "__main__": ...`) that either raise and fail a correct function, or wait on input.
An answer cut off by the token limit keeps its complete definitions.
"""

from __future__ import annotations

import ast

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
         ast.AnnAssign)


def longest_parsable_prefix(code: str) -> tuple[str, ast.Module | None]:
    """The longest run of leading lines that is valid Python, with its tree (None if no line is)."""
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        text = "\n".join(lines[:end])
        try:
            return text, ast.parse(text)
        except (SyntaxError, ValueError):  # ValueError: null bytes
            continue
    return "", None


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    names: set[str] = set()
    for t in targets:
        names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _used_names(node: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def sanitize(code: str, entry_point: str | None = None) -> str:
    """The definitions of `code` that a test of `entry_point` can use, as source text."""
    text, tree = longest_parsable_prefix(code)
    if tree is None:
        return code  # nothing parses: run it as given, so the record shows the model's real error
    lines = text.splitlines()
    nodes = [n for n in tree.body if isinstance(n, _KEPT)]
    defs = {name: n for n in nodes for name in _defined_names(n)}
    if entry_point and entry_point in defs:
        needed: set[int] = set()
        stack = [entry_point]
        while stack:
            name = stack.pop()
            node = defs.get(name)
            if node is None or id(node) in needed:
                continue
            needed.add(id(node))
            stack.extend(_used_names(node) - {name})
        nodes = [n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom)) or id(n) in needed]
    parts = []
    for n in nodes:
        start = min([n.lineno] + [d.lineno for d in getattr(n, "decorator_list", [])])
        parts.append("\n".join(lines[start - 1:n.end_lineno]))
    return "\n\n".join(parts) + ("\n" if parts else "")


def called_function(test: str, candidates: set[str]) -> str | None:
    """The first of `candidates` that a test line calls (MBPP's entry point, from its first assert)."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in candidates:
            return node.func.id
    return None


def top_level_functions(code: str) -> set[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return set()
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
