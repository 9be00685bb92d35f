"""Post and user text: word lists, a small English grammar, and pools drawn from per row.

Composing a sentence costs far more than a COPY row, so sentences, titles, names and metadata
are composed once per run into pools; rows only pick from them.
"""

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# A few hundred common English words, so that full-text search finds real stems.
NOUNS = _words("""
    time year people way day man woman child world life hand part place case week company system
    program question work government number night point home water room mother area money story fact
    month lot study book eye job word business issue side kind head house service friend father power
    hour game line end member law car city community name team minute idea kid body information parent
    face level office door health person art history party result change morning reason research girl
    moment air teacher force education garden river mountain forest ocean island village market street
    bridge road train station airport kitchen bread coffee tea music song movie picture camera phone
    computer screen letter paper pencil window table chair bed lamp clock winter summer spring autumn
    weather rain snow wind sun moon star sky cloud flower tree leaf bird dog cat horse fish library school
    student lesson class project plan budget report meeting customer product price design code server
    database network release feature bug test dinner lunch breakfast recipe journey trip holiday beach
    hotel museum painting poem novel chapter language voice dream memory problem answer solution choice
    habit goal skill hobby sport match ball bicycle boat ship engine machine tool energy light fire stone
    glass wood metal gold silver color shape sound silence neighbor family brother sister baby doctor
    nurse artist writer farmer driver pilot chef manager engineer scientist
""")
ADJECTIVES = _words("""
    good new first last long great little own other old big high different small large next early young
    important public bad same free simple quiet bright dark warm cold hot cool fresh clean busy happy sad
    strange famous modern ancient local global quick slow gentle strong weak heavy soft hard deep wide
    narrow tall short green blue red yellow golden wooden empty full rich poor careful curious honest
    brave calm clever friendly lucky perfect rare real secret serious sharp smooth sudden sweet tiny huge
    useful wild wonderful beautiful difficult easy open private final favorite hidden broken shiny rainy
    sunny
""")
VERBS = _words("""
    build find make take see know want use tell ask need feel try leave call keep start show hear play
    run move like live believe hold bring write read lose pay meet include continue learn change lead
    understand watch follow stop create speak spend grow open win offer remember love consider buy wait
    serve send expect reach suggest raise pass sell decide explain develop carry break receive support
    produce eat cover catch draw choose cook paint visit fix test share clean plant teach explore design
    measure improve discover celebrate review plan travel repair collect describe
""")
ADVERBS = _words("""
    always often never sometimes rarely quickly slowly carefully quietly suddenly finally really almost
    already still usually simply gently easily happily proudly nearly soon today again together clearly
    honestly barely eagerly boldly calmly warmly briefly openly gladly loudly softly kindly
""")
PREPOSITIONS = _words("""
    in on at near under over behind beside across through around with without after before between
    inside outside beyond along during for from into toward
""")
DETERMINERS = _words("the a this that every our my their your one another each")
SUBJECTS = _words("I we you they")
FIRST_NAMES = _words("""
    Ada Alan Alice Amir Anna Ben Carla Chen Clara Daniel David Elena Emma Eva Felix Grace Hana Hugo Ines
    Ivan Jack James Julia Kai Karin Lars Laura Leo Lina Lucas Maya Mia Mohammed Nina Noah Olga Omar Paul
    Priya Rosa Sam Sara Sofia Tom Uma Victor Wei Yara Yusuf Zoe
""")
LAST_NAMES = _words("""
    Anderson Bauer Becker Brown Costa Davis Dubois Fischer Garcia Gonzalez Hansen Ito Jensen Johnson Kim
    Kowalski Kumar Lee Lopez Martin Meyer Miller Moreau Muller Nakamura Nguyen Novak Olsen Patel Rossi
    Santos Schmidt Schneider Silva Smith Suzuki Tanaka Taylor Wagner Wang Weber Williams Wilson Wright
    Zhang
""")
PLANS = {"free": 80, "pro": 15, "team": 4, "enterprise": 1}
COUNTRIES = {"US": 30, "DE": 10, "GB": 9, "IN": 8, "FR": 7, "BR": 6, "JP": 5, "CA": 5, "ES": 4, "IT": 4}

# Titles, openings and endings per pool: a power of two, so one random draw of
# 3 * POOL_BITS bits picks all three for a post (rows.PostRows).
POOL_BITS = 12
POOL_SIZE = 1 << POOL_BITS


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _noun_phrase(rng: random.Random, *, adjective: bool = False) -> str:
    words = [rng.choice(ADJECTIVES), rng.choice(NOUNS)] if adjective else [rng.choice(NOUNS)]
    determiner = rng.choice(DETERMINERS)
    return " ".join([_article(words[0]) if determiner == "a" else determiner, *words])


# Sentence and title shapes: a template, and the order in which its slots draw from the
# generator (the pools of a seed stay the same only while every draw keeps its place). A slot
# named with a trailing digit is a second draw of the same kind; slots drawn before the shape
# is chosen are passed in by the caller.
_SLOT_DRAWS: dict[str, Callable[[random.Random], str]] = {
    "np": _noun_phrase,
    "np_adj": partial(_noun_phrase, adjective=True),
    "place": lambda rng: f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng)}",
    "place_adj": lambda rng: f"{rng.choice(PREPOSITIONS)} {_noun_phrase(rng, adjective=True)}",
    "adj": lambda rng: rng.choice(ADJECTIVES),
    "prep": lambda rng: rng.choice(PREPOSITIONS),
    "subject": lambda rng: rng.choice(SUBJECTS),
}
_SENTENCES = (
    ("{np_adj} {verbs} {np}.", ("np_adj", "np")),
    ("{subject} {verb} {np_adj} {place}.", ("place", "np_adj")),
    ("{np} {adverb} {verbs} {np2} {place_adj}.", ("place_adj", "np", "np2")),
    ("{subject} {adverb} {verb} {np} and {np2}.", ("np", "np2")),
    ("why does {np} {verb} {np_adj}?", ("np", "np_adj")),
    ("{subject} {verb} {np} {adverb}.", ("np",)),
)
_TITLES = (
    ("{adj} {noun} {prep} the {other}", ("adj", "prep")),
    ("how to {verb} {np_adj}", ("np_adj",)),
    ("{noun} and {other}", ()),
    ("why {subject} {verb} {np}", ("subject", "np")),
    ("notes on {np_adj}", ("np_adj",)),
)


def _compose(rng: random.Random, shapes: Sequence[tuple[str, tuple[str, ...]]], **drawn: str) -> str:
    template, order = rng.choice(shapes)
    for slot in order:
        drawn[slot] = _SLOT_DRAWS[slot.rstrip("0123456789")](rng)
    text = template.format(**drawn)
    return text[0].upper() + text[1:]


def _sentence(rng: random.Random) -> str:
    """A short sentence with grammatical shape, so posts read (and stem) like English."""
    subject, verb, adverb = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(ADVERBS)
    return _compose(rng, _SENTENCES, subject=subject, verb=verb, verbs=_third_person(verb), adverb=adverb)


def _title(rng: random.Random) -> str:
    noun, other, verb = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(VERBS)
    return _compose(rng, _TITLES, noun=noun, other=other, verb=verb)


@dataclass(frozen=True)
class Pools:
    """Pre-built titles, sentences, names and metadata: choosing one per row is cheap, composing is not."""

    titles: list[str]
    openings: list[str]
    endings: list[str]
    names: list[str]
    metadata: list[str]
    metadata_cum_weights: list[int]


def pools(seed: int) -> Pools:
    rng = random.Random(f"{seed}:pools")  # noqa: S311  -- test data, not secrets
    # A body is one sentence plus none (75%), one (20%) or two (5%) more: microblog length.
    # Every word costs ~1.5 us of to_tsvector per post at load time (docs/seed.md).
    endings = []
    for _ in range(POOL_SIZE):
        draw = rng.random()
        extra = 0 if draw < 0.75 else 1 if draw < 0.95 else 2
        endings.append("".join(" " + _sentence(rng) for _ in range(extra)))
    pairs = [(plan, country) for plan in PLANS for country in COUNTRIES]
    return Pools(
        titles=[_title(rng) for _ in range(POOL_SIZE)],
        openings=[_sentence(rng) for _ in range(POOL_SIZE)],
        endings=endings,
        names=[f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES],
        metadata=[json.dumps({"plan": plan, "country": country}) for plan, country in pairs],
        metadata_cum_weights=list(accumulate(PLANS[plan] * COUNTRIES[country] for plan, country in pairs)),
    )
