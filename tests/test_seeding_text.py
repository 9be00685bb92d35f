"""posts.seeding.text: the pools every seeded title, body, name and metadata is picked from."""

import json
import re
from collections import Counter

import pytest

from posts.seeding.text import (
    ADJECTIVES,
    ADVERBS,
    COUNTRIES,
    DETERMINERS,
    NOUNS,
    PLANS,
    POOL_SIZE,
    PREPOSITIONS,
    SUBJECTS,
    VERBS,
    Pools,
    pools,
)

# The words the grammar itself adds around the word lists.
GLUE = {"a", "an", "and", "why", "does", "how", "to", "notes", "on", "the"}


@pytest.fixture(scope="module")
def text() -> Pools:
    return pools(1)


def test_the_same_seed_composes_the_same_pools(text: Pools) -> None:
    assert pools(1) == text


def test_another_seed_composes_other_pools(text: Pools) -> None:
    other = pools(2)

    assert other.titles != text.titles
    assert other.openings != text.openings


def test_the_text_is_unchanged_for_seed_1(text: Pools) -> None:
    # Seeded databases are compared by checksum across versions: the grammar must not drift.
    assert text.titles[:3] == ["Why you stop that museum", "Notes on each soft silver", "Notes on a happy brother"]
    assert text.openings[:3] == [
        "Why does a community see another modern history?",
        "You happily decide each book and this kitchen.",
        "My phone simply shows another pencil in an important home.",
    ]


def test_pools_hold_a_power_of_two_of_each_text(text: Pools) -> None:
    # rows.PostRows picks all three from one random draw of 3 * POOL_BITS bits.
    assert len(text.titles) == len(text.openings) == len(text.endings) == POOL_SIZE
    assert POOL_SIZE & (POOL_SIZE - 1) == 0


def test_sentences_start_with_a_capital_and_end_with_punctuation(text: Pools) -> None:
    sentences = [*text.openings, *(s for ending in text.endings for s in re.split(r"(?<=[.?]) ", ending.strip()) if s)]

    assert all(sentence[0].isupper() and sentence[-1] in ".?" for sentence in sentences)
    assert all(ending == "" or ending.startswith(" ") for ending in text.endings)


def test_most_bodies_are_one_sentence(text: Pools) -> None:
    extra = Counter(ending.count(".") + ending.count("?") for ending in text.endings)

    assert set(extra) == {0, 1, 2}
    assert 0.70 < extra[0] / POOL_SIZE < 0.80  # 75% drawn; the spread over 4096 is under 1%


def test_every_word_comes_from_the_word_lists(text: Pools) -> None:
    vocabulary = {w.lower() for w in (*NOUNS, *ADJECTIVES, *ADVERBS, *PREPOSITIONS, *DETERMINERS, *SUBJECTS)} | GLUE
    verbs = set(VERBS)
    words = {word for line in (*text.titles, *text.openings) for word in re.findall(r"[a-z]+", line.lower())}

    # Verbs also appear in the third person: builds, watches, carries.
    unknown = {word for word in words - vocabulary - verbs if not {word[:-1], word[:-2], word[:-3] + "y"} & verbs}
    assert unknown == set()


def test_names_and_metadata_cover_every_combination(text: Pools) -> None:
    assert len(text.names) == len(set(text.names))
    pairs = [(meta["plan"], meta["country"]) for meta in map(json.loads, text.metadata)]
    assert sorted(pairs) == sorted((plan, country) for plan in PLANS for country in COUNTRIES)
    assert text.metadata_cum_weights[-1] == sum(PLANS.values()) * sum(COUNTRIES.values())
