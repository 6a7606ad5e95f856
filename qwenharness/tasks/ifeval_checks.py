"""The IFEval instruction checks, with the semantics of Google's instruction_following_eval.

Each instruction id maps to a builder that takes the row's kwargs (keyword-only, validated) and
returns a check `response -> bool`. `build_check(instruction_id, kwargs)` is the entry point; it
raises DataError for an unknown id or kwargs the instruction does not accept, so a malformed row
fails loudly instead of scoring silently.

Strict and loose evaluation (`follows_strict`, `follows_loose`) mirror Google's evaluation_lib: an
empty (whitespace-only) response follows nothing; loose accepts an instruction if any of eight
variants follows it (the response, without its first line, last line or both, each also with every
`*` removed).

Where Google's builders fill a missing argument at random (they also generate the prompts), ours
refuse: scoring must be deterministic. We follow Google's current code, which differs from older
copies (lm-evaluation-harness, if-verifiable) in two places: `**bold**` spans count as highlighted
sections, and keywords:letter_frequency counts the given character even when it is not a-z (one row
asks for '#'; the older copies replace such a letter with a random one). Checked against a copy of
Google's checks on 28,356 (instruction, response) pairs: identical apart from that '#' row.
Tokenisation is in ifeval_text.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DataError
from . import ifeval_text as text

Check = Callable[[str], bool]

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --- argument validation -------------------------------------------------------------------------

def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _str_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"{name} must be a non-empty list of strings, got {value!r}")
    return [_str(name, v) for v in value]


def _pattern(name: str, value: Any) -> str:
    """A keyword, used as a regular expression as Google does; checked here so a bad one fails early."""
    pattern = _str(name, value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name} {pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


def _relation(name: str, value: Any) -> str:
    if value not in RELATIONS:
        raise ValueError(f"{name} must be one of {RELATIONS}, got {value!r}")
    return str(value)


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


def _language_is(response: str, code: str) -> bool:
    try:
        return text.detect_language(response) == code
    except text.LanguageUndetectable:
        return True  # Google: an undetectable language counts as followed


# --- keywords ------------------------------------------------------------------------------------

def keywords_existence(*, keywords: Sequence[str]) -> Check:
    kws = [_pattern("keywords", k) for k in _str_list("keywords", keywords)]
    return lambda r: all(re.search(k, r, flags=re.IGNORECASE) for k in kws)


def keywords_frequency(*, keyword: str, frequency: int, relation: str) -> Check:
    kw = _pattern("keyword", keyword.strip() if isinstance(keyword, str) else keyword)
    n, rel = _int("frequency", frequency), _relation("relation", relation)
    return lambda r: _compare(len(re.findall(kw, r, flags=re.IGNORECASE)), rel, n)


def keywords_forbidden_words(*, forbidden_words: Sequence[str]) -> Check:
    words = [_pattern("forbidden_words", w) for w in _str_list("forbidden_words", forbidden_words)]
    return lambda r: not any(re.search(r"\b" + w + r"\b", r, flags=re.IGNORECASE) for w in words)


def keywords_letter_frequency(*, letter: str, let_frequency: int, let_relation: str) -> Check:
    if not isinstance(letter, str) or len(letter.strip()) != 1:
        raise ValueError(f"letter must be a single character, got {letter!r}")
    ch = letter.strip().lower()
    n, rel = _int("let_frequency", let_frequency), _relation("let_relation", let_relation)
    return lambda r: _compare(collections.Counter(r.lower())[ch], rel, n)


# --- language ------------------------------------------------------------------------------------

def language_response_language(*, language: str) -> Check:
    code = _str("language", language)
    return lambda r: _language_is(r, code)


# --- length constraints --------------------------------------------------------------------------

def length_number_sentences(*, num_sentences: int, relation: str) -> Check:
    n, rel = _int("num_sentences", num_sentences), _relation("relation", relation)
    return lambda r: _compare(text.count_sentences(r), rel, n)


def length_number_words(*, num_words: int, relation: str) -> Check:
    n, rel = _int("num_words", num_words), _relation("relation", relation)
    return lambda r: _compare(text.count_words(r), rel, n)


def length_number_paragraphs(*, num_paragraphs: int) -> Check:
    """Paragraphs separated by the markdown divider `***`; an empty one inside the text fails."""
    n = _int("num_paragraphs", num_paragraphs)

    def check(r: str) -> bool:
        parts = re.split(r"\s?\*\*\*\s?", r)
        count = len(parts)
        for i, part in enumerate(parts):
            if not part.strip():
                if i in (0, len(parts) - 1):
                    count -= 1
                else:
                    return False
        return count == n

    return check


def length_nth_paragraph_first_word(*, num_paragraphs: int, nth_paragraph: int, first_word: str) -> Check:
    """Paragraphs separated by a blank line ("\\n\\n"): exact count, and the nth starts with a word."""
    n, nth = _int("num_paragraphs", num_paragraphs), _int("nth_paragraph", nth_paragraph)
    if nth < 1:
        raise ValueError(f"nth_paragraph must be >= 1, got {nth}")
    word = _str("first_word", first_word).lower()
    stops = set(".,?!'\"")

    def check(r: str) -> bool:
        parts = r.split("\n\n")
        count = sum(1 for p in parts if p.strip())
        # As in Google's code: the bound uses the non-empty count, the index the raw split.
        if nth > count:
            return False
        para = parts[nth - 1].strip()
        if not para:
            return False
        head = para.split()[0].strip().lstrip("'").lstrip('"')
        first = ""
        for ch in head:
            if ch in stops:
                break
            first += ch.lower()
        return count == n and first == word

    return check


# --- detectable content --------------------------------------------------------------------------

def content_number_placeholders(*, num_placeholders: int) -> Check:
    n = _int("num_placeholders", num_placeholders)
    return lambda r: len(re.findall(r"\[.*?\]", r)) >= n


def content_postscript(*, postscript_marker: str) -> Check:
    marker = _str("postscript_marker", postscript_marker).strip()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + marker.lower() + r".*$"
    return lambda r: bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))


# --- detectable format ---------------------------------------------------------------------------

def format_number_bullet_lists(*, num_bullets: int) -> Check:
    """Exactly n markdown bullet lines, `* item` or `- item`."""
    n = _int("num_bullets", num_bullets)

    def check(r: str) -> bool:
        stars = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE)
        dashes = re.findall(r"^\s*-.*$", r, flags=re.MULTILINE)
        return len(stars) + len(dashes) == n

    return check


def format_constrained_response() -> Check:
    return lambda r: any(option in r.strip() for option in CONSTRAINED_RESPONSE_OPTIONS)


def format_number_highlighted_sections(*, num_highlights: int) -> Check:
    """At least n non-empty `*highlight*` spans on one line; `**bold**` spans count as well."""
    n = _int("num_highlights", num_highlights)

    def check(r: str) -> bool:
        single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
        double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h[2:-2].strip()]
        return len(single) + len(double) >= n

    return check


def format_multiple_sections(*, section_spliter: str, num_sections: int) -> Check:
    splitter, n = _str("section_spliter", section_spliter).strip(), _int("num_sections", num_sections)
    pattern = r"\s?" + splitter + r"\s?\d+\s?"
    return lambda r: len(re.split(pattern, r)) - 1 >= n


def format_json_format() -> Check:
    def check(r: str) -> bool:
        body = r.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            body = body.removeprefix(fence)
        body = body.removesuffix("```").strip()
        try:
            json.loads(body)
        except ValueError:
            return False
        return True

    return check


def format_title() -> Check:
    return lambda r: any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))


# --- combination ---------------------------------------------------------------------------------

def combination_two_responses() -> Check:
    """Two different non-empty responses separated by `******` (empty parts only at the ends)."""

    def check(r: str) -> bool:
        parts = r.split("******")
        kept = []
        for i, part in enumerate(parts):
            if part.strip():
                kept.append(part)
            elif i not in (0, len(parts) - 1):
                return False
        return len(kept) == 2 and kept[0].strip() != kept[1].strip()

    return check


def combination_repeat_prompt(*, prompt_to_repeat: str) -> Check:
    prefix = _str("prompt_to_repeat", prompt_to_repeat).strip().lower()
    return lambda r: r.strip().lower().startswith(prefix)


# --- start / end ---------------------------------------------------------------------------------

def startend_end_checker(*, end_phrase: str) -> Check:
    phrase = _str("end_phrase", end_phrase).strip().lower()
    return lambda r: r.strip().strip('"').lower().endswith(phrase)


def startend_quotation() -> Check:
    def check(r: str) -> bool:
        s = r.strip()
        return len(s) > 1 and s[0] == '"' and s[-1] == '"'

    return check


# --- change case ---------------------------------------------------------------------------------

def case_capital_word_frequency(*, capital_frequency: int, capital_relation: str) -> Check:
    n, rel = _int("capital_frequency", capital_frequency), _relation("capital_relation", capital_relation)
    return lambda r: _compare(sum(1 for w in text.word_tokenize(r) if w.isupper()), rel, n)


def case_english_capital() -> Check:
    return lambda r: r.isupper() and _language_is(r, "en")


def case_english_lowercase() -> Check:
    return lambda r: r.islower() and _language_is(r, "en")


# --- punctuation ---------------------------------------------------------------------------------

def punctuation_no_comma() -> Check:
    return lambda r: "," not in r


BUILDERS: dict[str, Callable[..., Check]] = {
    "keywords:existence": keywords_existence,
    "keywords:frequency": keywords_frequency,
    "keywords:forbidden_words": keywords_forbidden_words,
    "keywords:letter_frequency": keywords_letter_frequency,
    "language:response_language": language_response_language,
    "length_constraints:number_sentences": length_number_sentences,
    "length_constraints:number_paragraphs": length_number_paragraphs,
    "length_constraints:number_words": length_number_words,
    "length_constraints:nth_paragraph_first_word": length_nth_paragraph_first_word,
    "detectable_content:number_placeholders": content_number_placeholders,
    "detectable_content:postscript": content_postscript,
    "detectable_format:number_bullet_lists": format_number_bullet_lists,
    "detectable_format:constrained_response": format_constrained_response,
    "detectable_format:number_highlighted_sections": format_number_highlighted_sections,
    "detectable_format:multiple_sections": format_multiple_sections,
    "detectable_format:json_format": format_json_format,
    "detectable_format:title": format_title,
    "combination:two_responses": combination_two_responses,
    "combination:repeat_prompt": combination_repeat_prompt,
    "startend:end_checker": startend_end_checker,
    "startend:quotation": startend_quotation,
    "change_case:capital_word_frequency": case_capital_word_frequency,
    "change_case:english_capital": case_english_capital,
    "change_case:english_lowercase": case_english_lowercase,
    "punctuation:no_comma": punctuation_no_comma,
}


def build_check(instruction_id: str, kwargs: dict[str, Any] | None) -> Check:
    """The check for one instruction of a row. None-valued kwargs (the Hub's padded schema) are dropped."""
    try:
        builder = BUILDERS[instruction_id]
    except KeyError:
        raise DataError(f"IFEval instruction id '{instruction_id}' has no checker",
                        f"known ids: {', '.join(sorted(BUILDERS))}") from None
    args = {k: v for k, v in (kwargs or {}).items() if v is not None}
    try:
        return builder(**args)
    except (TypeError, ValueError) as exc:
        raise DataError(f"IFEval instruction '{instruction_id}' cannot use kwargs {args}: {exc}",
                        "check the row against the google/IFEval schema") from exc


def response_variants(response: str) -> list[str]:
    """Google's eight loose variants: as is / without first / last / both lines, each also without '*'."""
    lines = response.split("\n")
    no_first = "\n".join(lines[1:]).strip()
    no_last = "\n".join(lines[:-1]).strip()
    no_both = "\n".join(lines[1:-1]).strip()
    return [response, response.replace("*", ""), no_first, no_last, no_both,
            no_first.replace("*", ""), no_last.replace("*", ""), no_both.replace("*", "")]


def follows_strict(checks: Sequence[Check], response: str) -> list[bool]:
    return [bool(response.strip()) and bool(check(response)) for check in checks]


def follows_loose(checks: Sequence[Check], response: str) -> list[bool]:
    variants = response_variants(response)
    return [any(v.strip() and check(v) for v in variants) for check in checks]


def build_checks(instruction_ids: Sequence[str], kwargs_list: Sequence[dict[str, Any] | None]) -> list[Check]:
    if len(instruction_ids) != len(kwargs_list):
        raise DataError(f"IFEval row has {len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs",
                        "each instruction id needs its kwargs dict")
    return [build_check(i, kw) for i, kw in zip(instruction_ids, kwargs_list, strict=True)]
