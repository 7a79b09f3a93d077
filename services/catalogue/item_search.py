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
two words >= NEAR_WORD), scores 0: resemblance of letters across unrelated words is noise. That
is also what makes it fast: an index from each word to the texts holding it, built once by
`ItemIndex`, finds the texts to score, and only those are compared.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
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

# "A&E", "A & E", "A and E", "A+E", "a/e" -> "ae"; "G&A" -> "ga". One token, so that A&E and G&A
# share no word ("a", "and") and the code `ae_attendances` reads as the name "A&E attendances".
_LETTER_PAIR = re.compile(r"\b([a-z])\s*(?:&|\+|/|\band\b)\s*([a-z])\b")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_DIGITS_AND_LETTERS = re.compile(r"(?<=[0-9])(?=[a-z])|(?<=[a-z])(?=[0-9])")

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
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = ascii_text.lower().replace("_", " ").replace("%", " percent ")
    text = _LETTER_PAIR.sub(r"\1\2", text)
    text = _DIGITS_AND_LETTERS.sub(" ", _NOT_WORD.sub(" ", text))
    words: list[str] = []
    for word in _numbers(text.split()):
        if word in _STOP_WORDS:
            continue
        word = _stem(word)
        word = _FORMS.get(word, word)
        if word not in _STOP_WORDS:
            words.append(word)
    return " ".join(words)


def _numbers(words: Sequence[str]) -> list[str]:
    """Number words as digits: "four" -> "4", "fifty two" -> "52"."""
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


class _Texts:
    """Keys to compare with, and an index from each word to the keys that hold it."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        holders: dict[str, list[int]] = {}
        for position, key in enumerate(keys):
            for word in key.split():
                holders.setdefault(word, []).append(position)
        self._words = list(holders)
        self._holders = [np.array(found, dtype=np.intp) for found in holders.values()]

    def sharing(self, query_key: str) -> Indices:
        """Positions of the keys that hold a word of the query, or one a letter or so away."""
        if not self._words:
            return np.empty(0, dtype=np.intp)
        near: Scores = process.cdist(
            query_key.split(),
            self._words,
            scorer=fuzz.ratio,
            score_cutoff=NEAR_WORD,
            dtype=np.float64,
        )
        words = np.flatnonzero((near >= NEAR_WORD).any(axis=0))
        found = [self._holders[word] for word in words]
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.intp)

    def score(self, query_key: str, positions: Indices, *, whole: bool) -> Scores:
        """Scores of the query to the keys at `positions`, 0 elsewhere; `whole` for short texts."""
        scores = np.zeros(len(self.keys))
        if positions.size == 0:
            return scores
        keys = [self.keys[position] for position in positions]
        computed: Scores = process.cdist(
            [query_key], keys, scorer=fuzz.token_set_ratio, dtype=np.float64
        )[0]
        if whole:
            sorted_ratio: Scores = process.cdist(
                [query_key], keys, scorer=fuzz.ratio, dtype=np.float64
            )[0]
            computed = (computed + sorted_ratio) / 2
        scores[positions] = computed
        return scores


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
        self._weights = np.array([CODE_WEIGHT if k == "code" else 1.0 for k in kinds])
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
        if not query_key or not self._items:
            return []
        short = self._short_scores(query_key)
        by_short = np.maximum.reduceat(short, self._starts)
        definitions = self._definitions
        by_definition = DEFINITION_WEIGHT * definitions.score(
            query_key, definitions.sharing(query_key), whole=False
        )
        unrounded = np.maximum(by_short, by_definition)
        exact = self._position.get(query.strip().lower())
        if exact is not None:
            unrounded[exact] = 100.0
        scores: Scores = unrounded.round(1)
        matches = []
        for position in self._best(scores, limit=limit, min_score=min_score):
            if position == exact:
                matched: MatchedText = "code"
            elif by_definition[position] > by_short[position]:
                matched = "definition"
            else:
                matched = self._best_short(position, short)
            matches.append(self._match(position, scores, matched))
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
        short = self._short_scores(query_key) if query_key else np.zeros(len(self._short.keys))
        by_short = np.maximum.reduceat(short, self._starts)
        scores: Scores = np.maximum(by_code, by_short).round(1)
        best = self._best(scores, limit=limit, min_score=SUGGEST_MIN_SCORE)
        if best.size == 0:
            best = self._best(scores, limit=1, min_score=SUGGEST_FLOOR)
        return [
            self._match(
                position,
                scores,
                "code"
                if by_code[position] >= by_short[position]
                else self._best_short(position, short),
            )
            for position in best
        ]

    def _short_scores(self, query_key: str) -> Scores:
        """Weighted scores of the query to every name, synonym and code."""
        texts = self._short
        return self._weights * texts.score(query_key, texts.sharing(query_key), whole=True)

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
