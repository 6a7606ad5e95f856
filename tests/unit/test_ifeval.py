"""IFEval: every instruction check (followed and not followed), strict vs loose, aggregation, coverage."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from qwenharness.engines.base import Generation
from qwenharness.errors import DataError
from qwenharness.tasks import get_task
from qwenharness.tasks.base import TaskOptions
from qwenharness.tasks.ifeval import IFEval, instruction_breakdown
from qwenharness.tasks.ifeval_checks import BUILDERS, build_check, follows_loose, follows_strict, response_variants
from qwenharness.tasks.ifeval_text import count_sentences, count_words, split_sentences, word_tokenize

ENGLISH = ("The committee met on Tuesday to discuss the new budget. Everyone agreed that the library "
           "needs more funding for books and computers.")
FRENCH = ("Le comité s'est réuni mardi pour discuter du nouveau budget. Tout le monde a convenu que la "
          "bibliothèque a besoin de plus de financement.")

# (instruction id, kwargs, a response that follows it, a response that does not)
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("keywords:existence", {"keywords": ["moon", "tide"]},
     "The MOON pulls the Tide twice a day.", "The moon is bright tonight."),
    ("keywords:frequency", {"keyword": "dog", "frequency": 3, "relation": "at least"},
     "Dog, dog and another DOG.", "A dog and a dog."),
    ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "less than"},
     "A single dog here.", "A dog and a dog."),
    ("keywords:forbidden_words", {"forbidden_words": ["cat", "mouse"]},
     "Cats and catalogs are fine: only whole words count.", "The Mouse ran away."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"},
     "Zigzag pizza.", "Lazy day."),
    ("keywords:letter_frequency", {"letter": "e", "let_frequency": 2, "let_relation": "less than"},
     "Bright sun.", "Eerie."),
    ("language:response_language", {"language": "fr"}, FRENCH, ENGLISH),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"},
     "Dr. Smith went home. He was tired.", "One. Two! Three? Four."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"},
     "It works. It really does!", "Mr. Brown met Dr. Smith at 5 p.m. yesterday"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "First part\n***\nSecond part\n***\nThird part\n***", "First\n***\n***\nSecond\n***\nThird"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"},
     "one two three four five", "one two three four"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"},
     "it's a test", "one two three four five six"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "Second"},
     "Intro here.\n\n\"Second, the middle.\n\nThe end.", "Intro here.\n\nMiddle part.\n\nThe end."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2},
     "Dear [name], see you at [place].", "Dear [name], see you soon."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "Main text. (inline) p. s. one more thing", "Main text. PS: one more thing"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "Main text.\nP.P.S. one more thing", "Main text.\nP.S. one more thing"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3},
     "Intro with an inline * star:\n* one\n  * two\n- three", "* one\n* two\n**bold line**\n"),
    ("detectable_format:constrained_response", {},
     "\n My answer is maybe. Let me explain.", "My answer is perhaps."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 3},
     "*one* and *two* on a line, then **three**.", "*one* and ** and *  * and *broken\nacross*"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nalpha\nSection 2\nbeta", "Section one\nalpha\nSection 2\nbeta"),
    ("detectable_format:json_format", {},
     "```json\n{\"a\": [1, 2]}\n```", "Here is JSON: {\"a\": 1}"),
    ("detectable_format:title", {}, "<<A Poem of Joy>>\nlines", "<<  >> and <<no\nnewline>>"),
    ("combination:two_responses", {},
     "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem about rain."},
     "write a poem about RAIN. Rain falls softly.", "Sure! Write a poem about rain. Rain falls."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"},
     "Here you go. any other questions?\"  ", "Any other questions? Bye."),
    ("startend:quotation", {}, '  "All of it quoted."\n', '"Only the start is quoted.'),
    ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "at least"},
     "I DON'T like NASA's plan.", "Only ONE word and U.S.A. here"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "Just ONE shout.", "TWO shouts HERE."),
    ("change_case:english_capital", {}, ENGLISH.upper(), ENGLISH),
    ("change_case:english_lowercase", {}, ENGLISH.lower(), ENGLISH),
    ("punctuation:no_comma", {}, "No commas here at all.", "One, two."),
]


@pytest.mark.parametrize("iid,kwargs,good,bad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_accepts_following_and_rejects_violating_response(iid: str, kwargs: dict[str, Any],
                                                                  good: str, bad: str) -> None:
    check = build_check(iid, kwargs)
    assert check(good)
    assert not check(bad)


def test_every_builder_has_a_case() -> None:
    assert {c[0] for c in CASES} == set(BUILDERS)
    assert len(BUILDERS) == 25


def test_language_checks_treat_undetectable_text_as_followed() -> None:
    # Google's rule: langdetect finding no features (digits only) counts as followed.
    assert build_check("language:response_language", {"language": "de"})("12345 678")
    assert not build_check("language:response_language", {"language": "de"})(ENGLISH)


RUSSIAN_CAPS = "ПРОФЕССОР ПРИШЁЛ НА ЛЕКЦИЮ В ПОНЕДЕЛЬНИК И РАССКАЗАЛ СТУДЕНТАМ О НОВОЙ КНИГЕ."


def test_case_checks_need_the_right_case_and_english() -> None:
    assert RUSSIAN_CAPS.isupper() and not build_check("change_case:english_capital", {})(RUSSIAN_CAPS)
    assert FRENCH.lower().islower() and not build_check("change_case:english_lowercase", {})(FRENCH.lower())


def test_tokenisation_matches_nltk_conventions() -> None:
    assert split_sentences("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]
    assert count_sentences("Is it 5 p.m. already? Yes! Go.") == 3
    assert count_words("it's a well-known fact_1") == 6  # \w+ runs: it, s, a, well, known, fact_1
    assert word_tokenize("I DON'T like NASA's U.S.A. plan.") == [
        "I", "DO", "N'T", "like", "NASA", "'s", "U.S.A.", "plan", "."]


def test_paragraph_checks_follow_google_edge_cases() -> None:
    three = build_check("length_constraints:number_paragraphs", {"num_paragraphs": 3})
    assert three("***\np1\n***\np2\n***\np3")  # empty leading part is not a paragraph
    assert not three("p1\n***\np2")
    nth = build_check("length_constraints:nth_paragraph_first_word",
                      {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"})
    assert nth("First.\n\nThen, more.")
    assert not nth("First.\n\nThen, more.\n\nAnd a third.")  # wrong count
    assert not nth("First.\n\n\n\nThen.")  # the 2nd raw part is empty, as in Google's indexing


def test_highlights_count_bold_and_italic_but_not_empty() -> None:
    check = build_check("detectable_format:number_highlighted_sections", {"num_highlights": 2})
    assert check("**bold one** and *italic two*")
    assert not check("**bold one** only")


def test_unknown_id_and_bad_kwargs_raise_clear_errors() -> None:
    with pytest.raises(DataError, match="no checker"):
        build_check("keywords:nonexistent", {})
    with pytest.raises(DataError, match="cannot use kwargs"):
        build_check("punctuation:no_comma", {"num_words": 3})
    with pytest.raises(DataError, match="relation"):
        build_check("length_constraints:number_words", {"num_words": 3, "relation": "at most"})
    with pytest.raises(DataError, match="num_words"):
        build_check("length_constraints:number_words", {"relation": "at least"})
    with pytest.raises(DataError, match="regular expression"):
        build_check("keywords:existence", {"keywords": ["(unclosed"]})


def test_none_valued_kwargs_from_the_hub_schema_are_ignored() -> None:
    check = build_check("punctuation:no_comma", {"num_words": None, "relation": None})
    assert check("fine") and not check("a, b")


# --- strict vs loose -----------------------------------------------------------------------------

def test_loose_variants_are_googles_eight() -> None:
    variants = response_variants("Sure!\n**Body** text\nThanks")
    assert variants == ["Sure!\n**Body** text\nThanks", "Sure!\nBody text\nThanks",
                        "**Body** text\nThanks", "Sure!\n**Body** text", "**Body** text",
                        "Body text\nThanks", "Sure!\nBody text", "Body text"]


def test_loose_forgives_a_preamble_line_strict_does_not() -> None:
    checks = [build_check("startend:quotation", {}), build_check("punctuation:no_comma", {})]
    response = 'Sure, here it is:\n"Wrapped in quotes"'
    assert follows_strict(checks, response) == [False, False]
    assert follows_loose(checks, response) == [True, True]


def test_loose_forgives_markdown_asterisks() -> None:
    checks = [build_check("startend:end_checker", {"end_phrase": "Is there anything else I can help with?"})]
    response = "Done.\n**Is there anything else I can help with?**"
    assert follows_strict(checks, response) == [False]
    assert follows_loose(checks, response) == [True]


def test_loose_is_never_below_strict_and_empty_follows_nothing() -> None:
    checks = [build_check(iid, kw) for iid, kw, _, _ in CASES]
    for _, _, good, bad in CASES:
        for resp in (good, bad):
            strict, loose = follows_strict(checks, resp), follows_loose(checks, resp)
            assert all(lo or not s for s, lo in zip(strict, loose, strict=True))
    assert follows_strict(checks, "   \n ") == [False] * len(checks)
    assert follows_loose(checks, "   \n ") == [False] * len(checks)


# --- the task ------------------------------------------------------------------------------------

def _doc(index: int, ids: list[str], kwargs: list[dict[str, Any]], prompt: str = "Do it.") -> dict[str, Any]:
    return {"key": 1000 + index, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs, "_index": index}


def test_aggregate_pools_instructions_across_prompts() -> None:
    task = IFEval()
    doc_a = _doc(0, ["punctuation:no_comma", "startend:quotation", "detectable_format:title"], [{}, {}, {}])
    doc_b = _doc(1, ["punctuation:no_comma"], [{}])
    rec_a = task.score_response(doc_a, ['"No commas and a <<Title>> inside"'])  # 3/3
    rec_b = task.score_response(doc_b, ["a, b"])  # 0/1
    assert rec_a.scores["inst_level_strict_acc"] == [True, True, True]
    agg = task.aggregate([rec_a, rec_b])
    assert agg["prompt_level_strict_acc"]["value"] == pytest.approx(0.5)
    assert agg["prompt_level_strict_acc"]["n"] == 2
    # pooled over the 4 instructions: 3/4 (a mean of per-prompt shares would give 0.5)
    assert agg["inst_level_strict_acc"]["value"] == pytest.approx(0.75)
    assert agg["inst_level_strict_acc"]["n"] == 4
    assert agg["inst_level_strict_acc"]["stderr"] == pytest.approx(0.25)  # sample var 0.25 -> sqrt(0.25 / 4)
    assert set(agg) == set(task.metric_names)


def test_aggregate_strict_vs_loose_and_partial_prompt() -> None:
    task = IFEval()
    doc = _doc(0, ["startend:quotation", "keywords:existence"], [{}, {"keywords": ["zebra"]}])
    rec = task.score_response(doc, ['Here you go:\n"A zebra, striped."'])
    assert rec.scores["inst_level_strict_acc"] == [False, True]
    assert rec.scores["inst_level_loose_acc"] == [True, True]
    agg = task.aggregate([rec])
    assert agg["prompt_level_strict_acc"]["value"] == 0.0
    assert agg["prompt_level_loose_acc"]["value"] == 1.0
    assert agg["inst_level_strict_acc"]["value"] == 0.5
    assert agg["inst_level_loose_acc"]["value"] == 1.0


def test_thinking_is_stripped_before_checking_and_kept_in_extra() -> None:
    task = IFEval()
    doc = _doc(3, ["punctuation:no_comma"], [{}])
    rec = task.score_response(doc, ["<think>Hmm, no commas.</think>Plain answer."])
    assert rec.outputs == ["Plain answer."]
    assert rec.scores["prompt_level_strict_acc"] == 1.0
    assert rec.extra["thinking"] == ["Hmm, no commas."]
    assert rec.extra["raw_outputs"] == ["<think>Hmm, no commas.</think>Plain answer."]
    assert rec.doc_id == "3"


def test_build_requests_and_score_generations() -> None:
    task = get_task("ifeval")
    assert isinstance(task, IFEval)
    docs = [_doc(0, ["punctuation:no_comma"], [{}], prompt="Say hi without commas.")]
    chat = task.build_requests(docs, TaskOptions(chat=True, enable_thinking=False))
    req = chat[0].requests[0]
    assert chat[0].doc_id == "0"
    assert req.messages == ({"role": "user", "content": "Say hi without commas."},)
    assert req.sampling.temperature == 0.0 and req.sampling.max_tokens == 1280
    assert req.enable_thinking is False
    plain = task.build_requests(docs, TaskOptions(max_tokens=64))
    assert plain[0].requests[0].prompt == "Say hi without commas." and plain[0].requests[0].sampling.max_tokens == 64
    with pytest.raises(DataError, match="zero-shot"):
        task.build_requests(docs, TaskOptions(n_shot=2))
    gen = Generation(text="Hi there", prompt_tokens=7, output_tokens=2, finish_reason="stop", latency_s=0.1)
    rec = task.score(docs[0], chat[0], [gen], TaskOptions(chat=True))
    assert rec.scores["prompt_level_strict_acc"] == 1.0 and rec.error is None
    assert rec.prompt_tokens == 7 and rec.output_tokens == 2
    failed = Generation(text="", prompt_tokens=7, output_tokens=0, finish_reason="error", latency_s=0.1, error="OOM")
    bad = task.score(docs[0], chat[0], [failed], TaskOptions(chat=True))
    assert bad.error == "OOM"
    assert task.aggregate([rec, bad])["prompt_level_strict_acc"]["n"] == 1


def test_breakdown_by_instruction_and_category() -> None:
    task = IFEval()
    recs = [task.score_response(_doc(0, ["punctuation:no_comma", "startend:quotation"], [{}, {}]), ["a, b"]),
            task.score_response(_doc(1, ["punctuation:no_comma"], [{}]), ["ab"])]
    table = instruction_breakdown(recs)
    assert table["punctuation:no_comma"]["strict"]["value"] == 0.5
    assert table["punctuation"]["strict"]["n"] == 2
    assert table["startend"]["loose"]["value"] == 0.0


# --- the real data -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ifeval_rows() -> list[dict[str, Any]]:
    from qwenharness.data import load

    try:
        return load("ifeval")
    except DataError as exc:  # no local copy and no Hub: say so rather than pass silently
        pytest.skip(f"IFEval data not available: {exc}")


def test_every_instruction_in_the_data_has_a_checker_that_accepts_its_kwargs(ifeval_rows: list[dict[str, Any]]) -> None:
    assert len(ifeval_rows) == 541
    ids = collections.Counter(i for row in ifeval_rows for i in row["instruction_id_list"])
    assert sum(ids.values()) == 834
    assert set(ids) <= set(BUILDERS), set(ids) - set(BUILDERS)
    for row in ifeval_rows:
        assert len(row["instruction_id_list"]) == len(row["kwargs"])
        for iid, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            check = build_check(iid, kwargs)  # raises DataError on any unaccepted kwarg
            assert isinstance(check("A response."), bool)  # a bool, not a truthy object


def test_metrics_compute_on_the_whole_dataset(ifeval_rows: list[dict[str, Any]]) -> None:
    task = IFEval()
    rows = [dict(r, _index=r.get("_index", i)) for i, r in enumerate(ifeval_rows)]
    empty = task.aggregate([task.score_response(r, [""]) for r in rows])
    assert all(m["value"] == 0.0 for m in empty.values())
    assert empty["inst_level_strict_acc"]["n"] == 834 and empty["prompt_level_loose_acc"]["n"] == 541
    echo = task.aggregate([task.score_response(r, [r["prompt"]]) for r in rows])
    for name in ("prompt_level", "inst_level"):
        strict, loose = echo[f"{name}_strict_acc"]["value"], echo[f"{name}_loose_acc"]["value"]
        assert 0.0 < strict <= loose < 1.0
    # repeat_prompt is followed by a response that starts with the request to repeat
    repeat = [r for r in rows if "combination:repeat_prompt" in r["instruction_id_list"]]
    assert len(repeat) == 41
    for r in repeat:
        pos = r["instruction_id_list"].index("combination:repeat_prompt")
        request = r["kwargs"][pos]["prompt_to_repeat"]
        assert task.score_response(r, [request + "\nMy answer."]).scores["inst_level_strict_acc"][pos]
        assert not task.score_response(r, ["Sure! " + request]).scores["inst_level_strict_acc"][pos]


def test_several_samples_average_prompts_and_pool_instructions() -> None:
    task = IFEval()
    doc = _doc(0, ["punctuation:no_comma", "startend:quotation"], [{}, {}])
    reqs = task.build_requests([doc], TaskOptions(num_samples=3, temperature=0.7))
    assert len(reqs[0].requests) == 3 and len({r.sampling.seed for r in reqs[0].requests}) == 3
    rec = task.score_response(doc, ['"ok"', "a, b", '"x, y"'])  # 2/2, 0/2, 1/2
    assert rec.scores["prompt_level_strict_acc"] == pytest.approx(1 / 3)
    assert rec.scores["inst_level_strict_acc"] == [True, True, False, False, False, True]
    table = instruction_breakdown([rec])
    assert table["punctuation:no_comma"]["strict"]["value"] == pytest.approx(1 / 3)
    assert table["startend:quotation"]["strict"]["n"] == 3
    with pytest.raises(DataError, match="no response"):
        task.score_response(doc, [])
