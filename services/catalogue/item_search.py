"""Near-duplicate item search: catalogue items ranked by how closely their words match a text.

Used by `GET /v1/items/search` and by the coverage check, which refuses an unknown item code with
the nearest existing items so that near-duplicates are seen before a new item is ever defined.

Method. Every text (a query, and each item's name, synonyms, code and definition) is normalised
by `normalise`, then compared as its sorted set of distinct words with rapidfuzz. A name, synonym
or code scores the mean of `fuzz.token_set_ratio` (100 when every word of one is in the other)
and `fuzz.ratio` of the sorted words, i.e. `token_sort_ratio` (which counts every extra, missing
or misspelt letter), so that an exact name beats a longer one that merely contains the query; a
code is weighted by CODE_WEIGHT. A definition is long prose, so it scores `token_set_ratio`
alone, weighted by DEFINITION_WEIGHT. An item's score is that of its best text.

A text that shares no word with the query, not even one a letter or so away (`fuzz.ratio` of the
two words >= NEAR_WORD), scores 0: resemblance of letters across unrelated words is noise.

Speed. `ItemIndex` normalises every text once and indexes its words. A query finds the texts
sharing a word through that index, bounds their token_set_ratio from word lengths alone, and runs
the rapidfuzz scorers only on the texts that could reach the best `limit`: the same results as
scoring every text, in a few milliseconds for 20,000 items (bench/item_search.py).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process

from schemas.model import Item

MatchedText: TypeAlias = Literal["name", "synonym", "code", "definition"]
Scores: TypeAlias = npt.NDArray[np.float64]
Indices: TypeAlias = npt.NDArray[np.intp]

# Search results below this are noise: unrelated texts that share a few letters.
SEARCH_MIN_SCORE = 40.0
# Suggestions for an unknown code: those at or above SUGGEST_MIN_SCORE; if there are none, the
# single best one at or above SUGGEST_FLOOR, so that the error names something useful.
SUGGEST_MIN_SCORE = 60.0
SUGGEST_FLOOR = 50.0
# A definition has many words, so holding the query's words is weaker evidence than a name
# that does: a match on the definition alone scores at most 60, below a name holding them.
DEFINITION_WEIGHT = 0.6
# A code is an abbreviation ("cc", "ga") of its name, so a name is the better evidence; a query
# that is exactly a code still scores 100.
CODE_WEIGHT = 0.9
# Two words are the same word misspelt when fuzz.ratio >= 80: one wrong letter in five.
NEAR_WORD = 80.0


@dataclass(frozen=True)
class Match:
    """One item found: its score (0-100) and which of its texts matched best."""

    code: str
    name: str
    score: float
    matched: MatchedText


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------

# "A&E", "A & E", "A and E", "A+E", "a/e", "a_e" -> "ae"; "G&A" -> "ga". One word, so that A&E
# and G&A share no word ("a", "and") and the code `ae_attendances` reads as "A&E attendances".
_LETTER_PAIR = re.compile(r"\b([a-z])\s*(?:&|\+|/|\band\b|\s)\s*([a-z])\b")
# Runs of letters and runs of digits: "4hr" -> "4", "hr"; "kh03" -> "kh", "03"; "_" splits too.
_WORD = re.compile(r"[a-z]+|[0-9]+")

_UNITS = {
    word: value
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve"  # noqa: SIM905
        " thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    word: 10 * value
    for value, word in enumerate(
        "twenty thirty forty fifty sixty seventy eighty ninety".split(),  # noqa: SIM905
        2,
    )
}
# Word forms that mean the same in an item's name, after the plural is removed.
_FORMS = {
    "hr": "hour",
    "hrs": "hour",
    "wk": "week",
    "wks": "week",
    "yr": "year",
    "yrs": "year",
    "waiter": "wait",
    "waiting": "wait",
    "waited": "wait",
    "admitted": "admission",
    "occupancy": "occupied",
}
# Words that carry no meaning of their own in an item's name ("over" and "more than" included:
# "waits over 4 hours" and "more than 4 hours" name the same thing).
_STOP_WORDS = frozenset(
    "a an and are as at be by count each for from has have in into is it its more"  # noqa: SIM905
    " number of on or over per s than that the their these this those to total via which who"
    " with".split()
)


def normalise(text: str) -> str:
    """Lower-case words of the text with A&E, numbers, plurals and filler words made uniform."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = _LETTER_PAIR.sub(r"\1\2", text.lower().replace("_", " ").replace("%", " percent "))
    words = (_word(word) for word in _numbers(_WORD.findall(text)))
    return " ".join(word for word in words if word)


@functools.lru_cache(maxsize=65_536)
def _word(word: str) -> str:
    """The word's uniform form, or "" for a filler word."""
    if word in _STOP_WORDS:
        return ""
    word = _stem(word)
    word = _FORMS.get(word, word)
    return "" if word in _STOP_WORDS else word


def _numbers(words: Sequence[str]) -> list[str]:
    """Number words as digits: "four" -> "4", "fifty two" -> "52"."""
    if _UNITS.keys().isdisjoint(words) and _TENS.keys().isdisjoint(words):
        return list(words)
    out: list[str] = []
    position = 0
    while position < len(words):
        word = words[position]
        following = words[position + 1] if position + 1 < len(words) else ""
        if word in _TENS and 0 < _UNITS.get(following, 0) < 10:
            out.append(str(_TENS[word] + _UNITS[following]))
            position += 2
            continue
        value = _TENS.get(word, _UNITS.get(word))
        out.append(word if value is None else str(value))
        position += 1
    return out


def _stem(word: str) -> str:
    """The singular of an English plural, by Harman's S-stemmer (1991); short words unchanged."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def _key(normalised: str) -> str:
    """The form that is compared: distinct words in sorted order."""
    return " ".join(sorted(set(normalised.split())))


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    """Lower and upper bounds of the scores of the texts that share a word with a query."""

    positions: Indices
    lower: Scores
    upper: Scores


class _Texts:
    """Keys to compare with, and an index from each word to the keys that hold it."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self._lengths = np.array([len(key) for key in keys], dtype=np.float64)
        self._word_counts = np.array([len(key.split()) for key in keys], dtype=np.float64)
        holders: dict[str, list[int]] = {}
        for position, key in enumerate(keys):
            for word in key.split():
                holders.setdefault(word, []).append(position)
        self._holders = {word: np.array(found, dtype=np.intp) for word, found in holders.items()}
        self._spellable = [word for word in holders if _spellable(word)]

    def bounds(self, query_key: str, *, whole: bool) -> _Bounds:
        """Bounds of the scores of the keys that share a word (or a near word) with the query."""
        words = query_key.split()
        # Per key: letters of the query's words it holds (plus a space each), and how many.
        held = np.zeros(len(self.keys))
        count = np.zeros(len(self.keys))
        for word in words:
            found = self._holders.get(word)
            if found is not None:
                held[found] += len(word) + 1
                count[found] += 1
        sharing = count > 0
        for word in self._near_words(words):
            sharing[self._holders[word]] = True
        positions = np.flatnonzero(sharing)

        # token_set_ratio from its parts (rapidfuzz's fuzz_py.token_set_ratio): S, Q and T are the
        # lengths of the words in common, of the query and of the key (distinct, sorted, joined).
        # It is 100 when one holds all the words of the other; else the best of
        # 2S/(S+Q) and 2S/(S+T) (the words in common against each whole) and the ratio of the
        # two wholes with the words in common put first, which is at most 2 min(Q,T)/(Q+T).
        held_count = count[positions]
        common = np.maximum(held[positions] - 1, 0)
        query_length = float(len(query_key))
        key_length = self._lengths[positions]
        subset = (held_count > 0) & (
            (held_count == len(words)) | (held_count == self._word_counts[positions])
        )
        in_common = np.maximum(
            200 * common / (common + query_length), 200 * common / (common + key_length)
        )
        lengths_allow = 200 * np.minimum(query_length, key_length) / (query_length + key_length)
        set_lower = np.where(subset, 100.0, in_common)
        set_upper = np.where(subset, 100.0, np.maximum(in_common, lengths_allow))
        if not whole:
            return _Bounds(positions=positions, lower=set_lower, upper=set_upper)
        sorted_ratio = self._ratio(query_key, positions, fuzz.ratio)
        # With no word in common, token_set_ratio is the ratio of the sorted words.
        set_lower = np.where(held_count > 0, set_lower, sorted_ratio)
        set_upper = np.where(held_count > 0, set_upper, sorted_ratio)
        return _Bounds(
            positions=positions,
            lower=(set_lower + sorted_ratio) / 2,
            upper=(set_upper + sorted_ratio) / 2,
        )

    def exact(self, query_key: str, positions: Indices, *, whole: bool) -> Scores:
        """Scores of the query to the keys at `positions` (see the module doc)."""
        token_set = self._ratio(query_key, positions, fuzz.token_set_ratio)
        if not whole:
            return token_set
        return (token_set + self._ratio(query_key, positions, fuzz.ratio)) / 2

    def _ratio(self, query_key: str, positions: Indices, scorer: Callable[..., float]) -> Scores:
        """A rapidfuzz scorer of the query against the keys at `positions`."""
        keys = [self.keys[position] for position in positions]
        scores: Scores = process.cdist([query_key], keys, scorer=scorer, dtype=np.float64)[0]
        return scores

    def _near_words(self, words: Sequence[str]) -> list[str]:
        """Words of the keys a letter or so away from a word of the query (see _spellable)."""
        spellable = [word for word in words if _spellable(word)]
        if not spellable or not self._spellable:
            return []
        near: Scores = process.cdist(
            spellable, self._spellable, scorer=fuzz.ratio, score_cutoff=NEAR_WORD, dtype=np.float64
        )
        return [self._spellable[found] for found in np.flatnonzero((near > 0).any(axis=0))]


def _spellable(word: str) -> bool:
    """Whether a misspelling of the word is recognised."""
    # Not a number (18 weeks is not 19 weeks), nor a short word, where one letter wrong makes
    # another word ("bed", "bad") and fuzz.ratio stays below NEAR_WORD anyway.
    return len(word) >= 4 and word.isalpha()


class ItemIndex:
    """Items with their texts normalised once, to be searched many times."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = tuple(items)
        self._position = {item.code: position for position, item in enumerate(self._items)}
        if len(self._position) < len(self._items):
            raise ValueError("item codes must be distinct")
        self._codes = [item.code for item in self._items]
        # Rank of each code in sorted order, to break ties between equal scores by code.
        self._code_rank = np.empty(len(self._codes), dtype=np.intp)
        self._code_rank[sorted(range(len(self)), key=self._codes.__getitem__)] = np.arange(
            len(self)
        )
        # Each item's short texts are contiguous, name first so that it wins a tie.
        keys: list[str] = []
        kinds: list[MatchedText] = []
        starts: list[int] = []
        for item in self._items:
            starts.append(len(keys))
            texts: list[tuple[MatchedText, str]] = [
                ("name", item.name),
                *(("synonym", synonym) for synonym in item.synonyms),
                ("code", item.code),
            ]
            for kind, text in texts:
                keys.append(_key(normalise(text)))
                kinds.append(kind)
        self._short = _Texts(keys)
        self._kinds = kinds
        self._weights = np.array([CODE_WEIGHT if kind == "code" else 1.0 for kind in kinds])
        self._starts = np.array(starts, dtype=np.intp)
        self._ends = np.append(self._starts[1:], len(keys)).astype(np.intp)
        self._definitions = _Texts([_key(normalise(item.definition)) for item in self._items])

    def __len__(self) -> int:
        """The number of items."""
        return len(self._items)

    def search(
        self, query: str, *, limit: int = 10, min_score: float = SEARCH_MIN_SCORE
    ) -> list[Match]:
        """Items whose name, synonyms, code or definition match the query, best first."""
        _check_limit(limit)
        query_key = _key(normalise(query))
        # A query that is exactly a code finds that item for sure, even a code of filler words.
        exact = self._position.get(query.strip().lower())
        if not query_key and exact is None:
            return []
        known = np.zeros(len(self))
        if exact is not None:
            known[exact] = 100.0
        scored = self._score(
            query_key, known=known, definitions=True, limit=limit, min_score=min_score
        )
        matches = []
        for position in self._best(scored.items, limit=limit, min_score=min_score):
            if position == exact:
                matched: MatchedText = "code"
            elif scored.definitions[position] > scored.by_short[position]:
                matched = "definition"
            else:
                matched = self._best_short(position, scored.short)
            matches.append(self._match(position, scored.items, matched))
        return matches

    def suggest(self, code: str, *, limit: int = 3) -> list[Match]:
        """Existing items nearest to an unknown item code, by code, name and synonyms."""
        _check_limit(limit)
        code = code.strip().lower()
        if not code or not self._items:
            return []
        # The code as typed, to the codes: a misspelt or extended identifier is a few edits away.
        by_code: Scores = process.cdist([code], self._codes, scorer=fuzz.ratio, dtype=np.float64)[0]
        # The code read as words, to the names, synonyms and codes read as words.
        query_key = _key(normalise(code))
        scored = self._score(
            query_key, known=by_code, definitions=False, limit=limit, min_score=SUGGEST_FLOOR
        )
        best = self._best(scored.items, limit=limit, min_score=SUGGEST_MIN_SCORE)
        if best.size == 0:
            best = self._best(scored.items, limit=1, min_score=SUGGEST_FLOOR)
        return [
            self._match(
                position,
                scored.items,
                "code"
                if by_code[position] >= scored.by_short[position]
                else self._best_short(position, scored.short),
            )
            for position in best
        ]

    def _score(
        self, query_key: str, *, known: Scores, definitions: bool, limit: int, min_score: float
    ) -> _Scored:
        """Scores of every item, exact for every item that can be among the best `limit`.

        Bounds come first, from the word index; the rapidfuzz scorers then run only on the texts
        whose upper bound reaches the `limit`-th best lower bound (and min_score): the others
        cannot change the result, and keep their lower bound.
        """
        short = np.zeros(len(self._short.keys))
        by_definition = np.zeros(len(self))
        if not query_key:
            by_short = np.maximum.reduceat(short, self._starts)
            return _Scored(
                known.round(1), short=short, by_short=by_short, definitions=by_definition
            )
        short_bounds = self._short.bounds(query_key, whole=True)
        short_weights = self._weights[short_bounds.positions]
        short[short_bounds.positions] = short_weights * short_bounds.lower
        definition_bounds = (
            self._definitions.bounds(query_key, whole=False) if definitions else None
        )
        if definition_bounds is not None:
            by_definition[definition_bounds.positions] = DEFINITION_WEIGHT * definition_bounds.lower
        lower = np.maximum(
            known, np.maximum(np.maximum.reduceat(short, self._starts), by_definition)
        )
        # Margin: scores within 0.1 of the bar may round to the same figure and tie with it.
        bar = max(min_score, _kth_largest(lower, limit)) - 0.1

        reach = short_bounds.positions[short_weights * short_bounds.upper >= bar]
        short[reach] = self._weights[reach] * self._short.exact(query_key, reach, whole=True)
        if definition_bounds is not None:
            reach = definition_bounds.positions[DEFINITION_WEIGHT * definition_bounds.upper >= bar]
            by_definition[reach] = DEFINITION_WEIGHT * self._definitions.exact(
                query_key, reach, whole=False
            )
        by_short = np.maximum.reduceat(short, self._starts)
        items = np.maximum(known, np.maximum(by_short, by_definition)).round(1)
        return _Scored(items, short=short, by_short=by_short, definitions=by_definition)

    def _best(self, scores: Scores, *, limit: int, min_score: float) -> Indices:
        """Positions of the `limit` best items at or above min_score, by score then code."""
        above = np.flatnonzero(scores >= min_score)
        order = np.lexsort((self._code_rank[above], -scores[above]))
        return above[order[:limit]]

    def _best_short(self, position: int, short: Scores) -> MatchedText:
        """Which of the item's name, synonyms and code scored best."""
        start, end = int(self._starts[position]), int(self._ends[position])
        return self._kinds[start + int(np.argmax(short[start:end]))]

    def _match(self, position: int, scores: Scores, matched: MatchedText) -> Match:
        """The item at `position` as a Match."""
        item = self._items[position]
        return Match(code=item.code, name=item.name, score=float(scores[position]), matched=matched)


@dataclass(frozen=True)
class _Scored:
    """Scores of one query: per item (rounded), per short text, and their parts per item."""

    items: Scores
    short: Scores
    by_short: Scores
    definitions: Scores


def _kth_largest(values: Scores, k: int) -> float:
    """The k-th largest value, or -inf if there are fewer than k."""
    if len(values) < k:
        return float("-inf")
    return float(np.partition(values, len(values) - k)[len(values) - k])


def _check_limit(limit: int) -> None:
    """Refuse a limit below 1 (ValueError)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")


def search(
    query: str, items: Iterable[Item], *, limit: int = 10, min_score: float = SEARCH_MIN_SCORE
) -> list[Match]:
    """Items ranked by similarity to the query (builds an ItemIndex: keep one to search often)."""
    return ItemIndex(items).search(query, limit=limit, min_score=min_score)


def suggest(code: str, items: Iterable[Item], *, limit: int = 3) -> list[Match]:
    """Existing items nearest to an unknown item code (builds an ItemIndex: keep one to reuse)."""
    return ItemIndex(items).suggest(code, limit=limit)
