"""Item search and code suggestions: what analysts type finds the right item first."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas import ITEMS
from schemas.model import Item
from services.catalogue.item_search import (
    DEFINITION_WEIGHT,
    SEARCH_MIN_SCORE,
    SUGGEST_FLOOR,
    SUGGEST_MIN_SCORE,
    ItemIndex,
    Match,
    normalise,
    search,
    suggest,
)

INDEX = ItemIndex(ITEMS.values())


def _item(code: str, name: str, *, synonyms: tuple[str, ...] = ()) -> Item:
    """A made-up item, with a definition that no test searches for."""
    return dataclasses.replace(
        ITEMS["ae_attendances"],
        code=code,
        name=name,
        definition="Quux.",
        synonyms=synonyms,
    )


def _words(text: str) -> frozenset[str]:
    """The words that search compares."""
    return frozenset(normalise(text).split())


# ---------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("A&E attendences", "ae_attendances"),
        ("emergency department attendances", "ae_attendances"),
        ("4 hour breaches", "ae_breaches"),
        ("four hour waits", "ae_breaches"),
        ("bed occupancy", "beds_ga_occupied"),
        ("critical care beds occupied", "beds_cc_occupied"),
        ("52 week waits", "rtt_over_52_weeks"),
        ("18 weeks RTT", "rtt_over_18_weeks"),
        ("emergency admissions", "ae_admissions"),
    ],
)
def test_what_analysts_type_finds_the_item_first(query: str, code: str) -> None:
    matches = search(query, ITEMS.values())
    assert matches[0].code == code
    # Ahead on score, not first by the tie-break on code.
    assert len(matches) == 1 or matches[0].score > matches[1].score


@pytest.mark.parametrize("query", ["staff sickness absence", "prescribing costs"])
def test_unrelated_text_finds_nothing(query: str) -> None:
    assert search(query, ITEMS.values()) == []
    everything = INDEX.search(query, limit=len(ITEMS), min_score=0)
    real_match = INDEX.search("A&E attendences")[0].score
    assert max(match.score for match in everything) < min(SEARCH_MIN_SCORE, real_match)


@pytest.mark.parametrize(
    "query", ["attendances", "beds", "waits", "A&E", "weeks over", "hours", "critical"]
)
def test_scores_are_ordered_bounded_and_limited(query: str) -> None:
    everything = INDEX.search(query, limit=len(ITEMS), min_score=0)
    assert len(everything) == len(ITEMS)
    assert all(0 <= match.score <= 100 for match in everything)
    assert [(-m.score, m.code) for m in everything] == sorted(
        (-m.score, m.code) for m in everything
    )
    assert INDEX.search(query, limit=2, min_score=0) == everything[:2]
    above = [match for match in everything if match.score >= SEARCH_MIN_SCORE]
    assert INDEX.search(query) == above[:10]


def test_equal_scores_are_ordered_by_code() -> None:
    items = [_item("z_twin", "Zebra crossings"), _item("a_twin", "Zebra crossings")]
    items.append(_item("m_twin", "Zebra crossings"))
    matches = search("zebra crossings", items)
    assert [match.code for match in matches] == ["a_twin", "m_twin", "z_twin"]
    assert {match.score for match in matches} == {100.0}


def test_matched_names_the_text_that_matched() -> None:
    assert INDEX.search("A&E attendances")[0] == Match(
        code="ae_attendances", name="A&E attendances", score=100.0, matched="name"
    )
    assert INDEX.search("4 hour breaches")[0].matched == "synonym"
    assert INDEX.search("ae_breaches")[0] == Match(
        code="ae_breaches", name="A&E attendances over 4 hours", score=100.0, matched="code"
    )
    # Words only the RTT definitions hold: found there, at the definition's weight.
    found = INDEX.search("consultant-led treatment")
    assert [(m.code, m.matched) for m in found] == [
        ("rtt_over_18_weeks", "definition"),
        ("rtt_over_52_weeks", "definition"),
    ]
    assert {m.score for m in found} == {100 * DEFINITION_WEIGHT}


@pytest.mark.parametrize("query", ["beds", "attendances", "hours", "occupied"])
def test_a_name_holding_the_words_beats_a_definition_holding_them(query: str) -> None:
    assert INDEX.search(query)[0].matched != "definition"


def test_the_best_few_are_the_best_of_all() -> None:
    # Search scores exactly only what can reach the best `limit`; that must not change them.
    rng = random.Random(20)
    vocabulary = ["ae", "bed", "beds", "care", "critical", "occupied", "available", "waits"]
    vocabulary += ["weeks", "hours", "over", "4", "18", "52", "attendances", "admissions"]
    vocabulary += ["emergency", "adult", "general", "acute", "rtt"]
    items = [
        _item(
            f"item_{number}",
            " ".join(rng.choices(vocabulary, k=rng.randint(1, 5))),
            synonyms=tuple(" ".join(rng.choices(vocabulary, k=3)) for _ in range(2)),
        )
        for number in range(300)
    ]
    index = ItemIndex(items)
    for _ in range(60):
        query = " ".join(rng.choices(vocabulary, k=rng.randint(1, 4)))
        query = query.replace("e", rng.choice("ea"), 1)  # a misspelling, now and then
        everything = index.search(query, limit=len(items), min_score=0)
        for limit in (1, 3, 10):
            above = [match for match in everything if match.score >= SEARCH_MIN_SCORE]
            assert index.search(query, limit=limit) == above[:limit], query
        code = query.replace(" ", "_")
        all_suggestions = index.suggest(code, limit=len(items))
        if all_suggestions:
            assert index.suggest(code, limit=2) == all_suggestions[:2], code


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "the of and", "&"])
def test_a_query_with_no_words_finds_nothing(query: str) -> None:
    assert INDEX.search(query, min_score=0) == []


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        INDEX.search("beds", limit=0)
    with pytest.raises(ValueError, match="limit"):
        INDEX.suggest("beds", limit=0)


def test_item_codes_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        ItemIndex([ITEMS["ae_breaches"], ITEMS["ae_breaches"]])


def test_an_empty_catalogue_finds_nothing() -> None:
    assert search("beds", []) == []
    assert suggest("beds", []) == []


# ---------------------------------------------------------------------------
# Suggestions for an unknown code
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "first"),
    [
        ("ae_attendence", "ae_attendances"),
        ("ae_attendances_total", "ae_attendances"),
        ("rtt_52_weeks", "rtt_over_52_weeks"),
        ("bed_occupancy", "beds_ga_occupied"),
        ("a_e_admissions", "ae_admissions"),
    ],
)
def test_suggest_puts_the_nearest_item_first(code: str, first: str) -> None:
    suggestions = suggest(code, ITEMS.values())
    assert suggestions[0].code == first
    assert 1 <= len(suggestions) <= 3
    assert all(match.score >= SUGGEST_MIN_SCORE for match in suggestions)


def test_suggest_for_bed_occupancy_includes_general_and_acute() -> None:
    assert "beds_ga_occupied" in [match.code for match in suggest("bed_occupancy", ITEMS.values())]


@pytest.mark.parametrize("code", ["zzzz", "cancer_62_day", "staff_sickness_absence", "  "])
def test_suggest_names_nothing_for_an_unrelated_code(code: str) -> None:
    assert INDEX.suggest(code) == []


def test_suggest_gives_the_single_best_below_the_threshold_above_the_floor() -> None:
    # Code against code only: the names share no word with the query.
    items = [_item("abcdef", "Zebra crossings"), _item("qqqqqq", "Yak shearing")]
    assert [(m.code, m.score, m.matched) for m in suggest("abcdxy", items)] == [
        ("abcdef", 66.7, "code")
    ]
    # fuzz.ratio("abcxyz", "abcdef") is 50: below the threshold, at the floor.
    assert SUGGEST_FLOOR <= 50 < SUGGEST_MIN_SCORE
    assert [(m.code, m.score) for m in suggest("abcxyz", items)] == [("abcdef", 50.0)]
    assert suggest("abxyzw", items) == []


def test_suggest_respects_the_limit() -> None:
    assert len(INDEX.suggest("ae", limit=3)) == 3
    assert INDEX.suggest("ae", limit=2) == INDEX.suggest("ae", limit=3)[:2]


# ---------------------------------------------------------------------------
# Synonyms and normalisation
# ---------------------------------------------------------------------------


def test_every_item_has_synonyms_that_add_a_name() -> None:
    for item in ITEMS.values():
        assert isinstance(item.synonyms, tuple)
        assert item.synonyms, item.code
        names = [_words(item.name), *(_words(synonym) for synonym in item.synonyms)]
        # Each synonym is a text of its own, not the name or another synonym written otherwise.
        assert all(names), item.code
        assert len(set(names)) == len(names), item.code


def test_no_name_or_synonym_belongs_to_two_items() -> None:
    owners: dict[frozenset[str], str] = {}
    for item in ITEMS.values():
        for text in (item.name, *item.synonyms):
            assert owners.setdefault(_words(text), item.code) == item.code, text


@pytest.mark.parametrize(
    ("code", "synonym"), [(i.code, s) for i in ITEMS.values() for s in i.synonyms]
)
def test_each_synonym_finds_its_item_first(code: str, synonym: str) -> None:
    first, *others = INDEX.search(synonym)
    assert (first.code, first.score) == (code, 100.0)
    assert all(match.score < 100 for match in others)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("A&E", "ae"),
        ("A & E", "ae"),
        ("A and E", "ae"),
        ("a+e", "ae"),
        ("a_e", "ae"),
        ("G&A beds", "ga bed"),
        ("Four-hour waits", "4 hour wait"),
        ("4hr breaches", "4 hour breache"),
        ("fifty-two week waiters", "52 week wait"),
        ("Eighteen weeks", "18 week"),
        ("Waits over 4 hours in A&E", "wait 4 hour ae"),
        ("ICU/HDU beds", "icu hdu bed"),
        ("bed occupancy %", "bed occupied percent"),
        ("rtt_over_18_weeks", "rtt 18 week"),
        ("Café", "cafe"),
    ],
)
def test_normalise(text: str, words: str) -> None:
    assert normalise(text) == words


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=9)


@given(item=st.sampled_from(list(ITEMS.values())))
def test_an_items_own_name_and_code_find_it_first(item: Item) -> None:
    by_name = INDEX.search(item.name)
    assert (by_name[0].code, by_name[0].score) == (item.code, 100.0)
    assert all(match.score < 100 for match in by_name[1:])
    by_code = INDEX.search(item.code)
    assert (by_code[0].code, by_code[0].score, by_code[0].matched) == (item.code, 100.0, "code")
    assert all(match.score < 100 for match in by_code[1:])


@given(
    name=st.lists(_WORD, min_size=1, max_size=6).map(" ".join),
    code=st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True),
)
def test_a_new_items_own_name_and_code_find_it_first(name: str, code: str) -> None:
    taken = {_words(t) for i in ITEMS.values() for t in (i.name, i.code, *i.synonyms)}
    assume(code not in ITEMS and name.lower() not in ITEMS)
    assume(_words(name) and _words(name) not in taken and _words(code) not in taken)
    new = _item(code, name)
    index = ItemIndex([*ITEMS.values(), new])
    by_name = index.search(name)
    assert (by_name[0].code, by_name[0].score) == (code, 100.0)
    by_code = index.search(code)
    assert (by_code[0].code, by_code[0].score) == (code, 100.0)


@given(query=st.text(max_size=60))
def test_any_text_gives_ordered_bounded_results(query: str) -> None:
    matches = INDEX.search(query, limit=5, min_score=0)
    assert len(matches) <= 5
    assert all(0 <= match.score <= 100 for match in matches)
    assert [(-m.score, m.code) for m in matches] == sorted((-m.score, m.code) for m in matches)
    assert len(INDEX.suggest(query)) <= 3
