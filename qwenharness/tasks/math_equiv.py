"""Final answers of MATH-style problems: extraction, normalisation and equivalence.

- `extract_answer`: the last ``\\boxed{...}`` (braces balanced; also ``\\fbox{...}`` and
  ``\\boxed 5``), else Minerva's "The final answer is $X$" sentence.
- `normalize_answer`: string normalisation in the spirit of the Hendrycks MATH `strip_string` and
  Minerva's `normalize_final_answer` (dollar signs, \\left/\\right, thin spaces, \\dfrac/\\tfrac,
  degrees, percent, trailing units, \\text{..}, a leading "x =", shorthand \\frac12 and \\sqrt3,
  "a/b", thousands separators, a final period), written here without their lossy word removals.
- `is_equiv`: equal normalised strings; else tuples, intervals and lists compared element by element;
  else sympy (`parse_latex`, antlr4 runtime 4.11) with a time limit, numerically tolerant.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

SYMPY_TIMEOUT_S = 3.0
_MAX_SYMPY_CHARS = 200


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------

def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at text[start] == '{', and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{..} / \\fbox{..} / "\\boxed 5" in `text`, or None."""
    for m in sorted(re.finditer(r"\\(?:boxed|fbox)", text), key=lambda m: m.start(), reverse=True):
        rest = m.end()
        if rest < len(text) and text[rest].isalpha():  # e.g. \boxedfoo: another command
            continue
        j = rest
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            group = _braced(text, j)
            if group is not None:
                return group[0].strip()
            continue  # unbalanced: try an earlier box
        if j > rest:  # "\boxed 5": up to the closing $ or the end of the line
            token = re.split(r"[$\n]", text[j:], maxsplit=1)[0].strip()
            if token:
                return token
    return None


_FINAL_ANSWER = re.compile(r"final answer is\s*:?\s*(.+?)(?:\.?\s*I hope it is correct|\n|$)", re.I)


def extract_answer(text: str) -> str | None:
    """The final answer a solution states: its last box, else "The final answer is X"."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    matches = _FINAL_ANSWER.findall(text)
    if matches:
        answer = matches[-1].strip().rstrip(".").strip()
        if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
            answer = answer.strip("$")
        return answer or None
    return None


# --------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------

_UNIT_WORDS = (
    "units?", "square units?", "sq units?", "degrees?", "cm", "centimeters?", "meters?", "km",
    "kilometers?", "mm", "inch(?:es)?", "feet", "foot", "ft", "yards?", "miles?", "mph", "hours?",
    "minutes?", "seconds?", "days?", "weeks?", "years?", "cents?", "dollars?", "pounds?", "ounces?",
    "grams?", "kg", "liters?", "gallons?", "people", "students?", "ways", "points?", "edges",
    "integers", "digits", "meals", "multiples",
)
_TRAILING_UNITS = re.compile(
    r"(?<=[0-9}a-zA-Z)])(?:\s+|\s*\\(?:text|mbox|mathrm)\{\s*)(?:" + "|".join(_UNIT_WORDS)
    + r")\b\s*\}?(?:\^\{?[23]\}?)?\s*$")


def _unwrap(command: str, text: str) -> str:
    """Replace \\command{X} by X (balanced braces)."""
    out, i, tag = [], 0, "\\" + command + "{"
    while True:
        j = text.find(tag, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        group = _braced(text, j + len(tag) - 1)
        if group is None:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j] + group[0])
        i = group[1]


def _fix_fracs(text: str) -> str:
    r"""\frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}, \frac{1}2 -> \frac{1}{2}."""
    text = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\frac\s*([0-9a-zA-Z])\s*\{", r"\\frac{\1}{", text)
    return re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9a-zA-Z])", r"\\frac\1{\2}", text)


def _fix_sqrt(text: str) -> str:
    r"""\sqrt3 -> \sqrt{3}, \sqrt x -> \sqrt{x}."""
    return re.sub(r"\\sqrt\s*([0-9a-zA-Z])", r"\\sqrt{\1}", text)


def normalize_answer(answer: str) -> str:
    """A canonical string for comparing final answers (see the module docstring)."""
    s = answer.strip()
    s = s.replace("\n", "").replace("\\!", "").replace("\\displaystyle", "")
    s = re.sub(r"(?<!\\)\\[,;: ]", "", s)  # thin and other explicit spaces (not the \\ row break)
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("{,}", "")
    s = re.sub(r"\\text\{\s+[^{}]*\}(\^\{?[23]\}?)?\s*$", "", s)  # "5\text{ cm}^2": units at the right
    s = re.sub(r"\\mbox\{\s+[^{}]*\}(\^\{?[23]\}?)?\s*$", "", s)
    s = _TRAILING_UNITS.sub("", s)
    for cmd in ("text", "textbf", "mbox", "mathrm", "mathbf", "textit", "boxed"):
        s = _unwrap(cmd, s)
    s = s.strip().rstrip(".").strip()
    # A leading "x =" / "k=" (one short left side), as the Hendrycks normalisation does.
    parts = s.split("=")
    if len(parts) == 2 and len(parts[0].strip()) <= 2 and parts[1].strip():
        s = parts[1]
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in [-2,7]"
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    s = re.sub(r"^\((\w)\)$", r"\1", s)  # "(C)" -> "C"
    s = re.sub(r"_\{(\w+)\}", r"_\1", s)  # 4210_{5} -> 4210_5
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")  # 10,080 -> 10080
    if re.fullmatch(r"-?\d+/\d+", s):
        num, den = s.split("/")
        s = f"\\frac{{{num}}}{{{den}}}"
    s = re.sub(r"(^|[^0-9])\.(\d)", r"\g<1>0.\2", s)  # .5 -> 0.5
    if re.fullmatch(r"-?\d+\.\d*?0+", s):
        s = s.rstrip("0").rstrip(".")  # 2.50 -> 2.5, 3.0 -> 3
    return s


# --------------------------------------------------------------------------------------------------
# Equivalence
# --------------------------------------------------------------------------------------------------

def _split_top_level(s: str) -> list[str]:
    """Split on commas outside brackets and braces."""
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _bracketed(s: str) -> tuple[str, list[str], str] | None:
    """(open, elements, close) for "(a,b)", "[a,b)", "\\{a,b\\}"; None otherwise."""
    if s.startswith("\\{") and s.endswith("\\}"):
        return "{", _split_top_level(s[2:-2]), "}"
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        inner = s[1:-1]
        depth = 0
        for ch in inner:  # the outer brackets must enclose the whole string: "(a)(b)" is not a tuple
            depth += ch in "([{"
            depth -= ch in ")]}"
            if depth < 0:
                return None
        if depth == 0:
            return s[0], _split_top_level(inner), s[-1]
    return None


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError after `seconds` (SIGALRM; only in the main thread, else no limit).

    An alarm already pending (pytest-timeout's, say) is put back afterwards with its remaining time.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError

    old_handler = signal.signal(signal.SIGALRM, _raise)
    pending = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    limit = min(seconds, pending[0]) if pending[0] > 0 else seconds
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if pending[0] > 0:
            remaining = max(pending[0] - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, pending[1])


@cache
def sympy_available() -> bool:
    try:
        import antlr4  # noqa: F401
        from sympy.parsing.latex import parse_latex  # noqa: F401
    except ImportError:
        return False
    return True


def sympy_equal(a: str, b: str, timeout_s: float = SYMPY_TIMEOUT_S) -> bool:
    """Whether two normalised LaTeX answers are the same quantity according to sympy."""
    if not a or not b or len(a) > _MAX_SYMPY_CHARS or len(b) > _MAX_SYMPY_CHARS:
        return False
    if not sympy_available():
        return False
    import sympy
    from sympy.parsing.latex import parse_latex

    try:
        with _time_limit(timeout_s):
            x, y = parse_latex(a), parse_latex(b)
            if isinstance(x, sympy.Basic) and isinstance(y, sympy.Basic):
                if x.free_symbols != y.free_symbols:
                    return False
                diff = sympy.simplify(x - y)
                if diff == 0:
                    return True
                if not diff.free_symbols:
                    value = complex(sympy.N(diff))
                    scale = max(1.0, abs(complex(sympy.N(y))))
                    return abs(value) <= 1e-6 * scale
            return False
    except Exception:  # parse errors, timeouts, sympy internals: not shown equal
        return False


def _number(s: str) -> float | None:
    if not re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", s):
        return None
    return float(s)


def is_equiv(prediction: str | None, reference: str | None) -> bool:
    """Whether a predicted final answer equals the reference answer."""
    if prediction is None or reference is None:
        return False
    p, r = normalize_answer(prediction), normalize_answer(reference)
    if p == r:
        return True
    if not p or not r:
        return False
    np_, nr = _number(p), _number(r)
    if np_ is not None and nr is not None:  # plain numbers: no need for sympy
        return abs(np_ - nr) <= 1e-9 * max(1.0, abs(nr))
    bp, br = _bracketed(p), _bracketed(r)
    if bp and br:
        if bp[0] != br[0] or bp[2] != br[2] or len(bp[1]) != len(br[1]):
            return False
        if len(bp[1]) > 1 or bp[0] == "{":
            return all(is_equiv(x, y) for x, y in zip(bp[1], br[1]))
    if "\\begin{" in p or "\\begin{" in r:  # matrices: element-wise string/sympy equality
        return _matrix_equal(p, r)
    lp, lr = _split_top_level(p), _split_top_level(r)
    if len(lp) > 1 or len(lr) > 1:  # "1,-2" lists of answers: the same answers in any order
        if len(lp) != len(lr):
            return False
        remaining = list(lr)
        for x in lp:
            hit = next((i for i, y in enumerate(remaining) if is_equiv(x, y)), None)
            if hit is None:
                return False
            remaining.pop(hit)
        return True
    return sympy_equal(p, r)


def _matrix_equal(p: str, r: str) -> bool:
    def cells(s: str) -> list[list[str]] | None:
        m = re.fullmatch(r"\\begin\{([pbv]?matrix)\}(.*)\\end\{\1\}", s)
        if not m:
            return None
        return [row.split("&") for row in m.group(2).split("\\\\")]

    cp, cr = cells(p), cells(r)
    if cp is None or cr is None or len(cp) != len(cr):
        return False
    return all(len(a) == len(b) and all(is_equiv(x, y) for x, y in zip(a, b)) for a, b in zip(cp, cr))
