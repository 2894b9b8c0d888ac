"""A small CRM and point-of-sale customer base with typos, for the matching tests."""

from __future__ import annotations

import random
from typing import Any

from tests.identity.helpers import ev

FIRST = [
    "anna",
    "bruno",
    "carla",
    "david",
    "elena",
    "felix",
    "greta",
    "hugo",
    "ines",
    "jonas",
    "katja",
    "lukas",
    "maria",
    "nils",
    "olga",
    "paul",
    "rosa",
    "simon",
    "tina",
    "uwe",
]
LAST = [
    "schmidt",
    "novak",
    "garcia",
    "rossi",
    "dubois",
    "jensen",
    "kowalski",
    "moreau",
    "fischer",
    "silva",
    "weber",
    "lindqvist",
    "horvath",
    "costa",
    "keller",
    "bauer",
]

MATCHING = {
    "comparisons": [
        {"field": "first_name", "method": "jaro_winkler"},
        {"field": "last_name", "method": "jaro_winkler"},
        {"field": "birth_date", "method": "date_parts"},
        {"field": "postcode", "method": "levenshtein", "thresholds": [1]},
    ],
    "blocking_rules": [
        [{"field": "last_name"}],
        [{"field": "birth_date"}],
        [{"field": "postcode"}],
    ],
    "max_pairs_for_u": 5000,
}


def _typo(word: str, rng: random.Random) -> str:
    at = rng.randrange(1, len(word) - 1)
    return word[:at] + word[at + 1] + word[at] + word[at + 2 :]


def people(count: int = 40, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        out.append(
            {
                "first_name": FIRST[i % len(FIRST)],
                "last_name": LAST[(i * 7) % len(LAST)],
                "birth_date": f"{rng.randint(1950, 2004)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}",
                "postcode": f"{rng.randint(10000, 99999)}",
            }
        )
    return out


def base(
    count: int = 40, duplicates: int = 12, seed: int = 3
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Events: a CRM identify (anonymous id and email) for everyone, and for the first
    `duplicates` a point-of-sale identify (another anonymous id, no email) with one typo
    in a name; returns them and the pairs of identifiers that are one person."""
    rng = random.Random(seed)
    events, same = [], []
    for i, person in enumerate(people(count, seed)):
        events.append(
            ev(
                "identify",
                i % 60,
                anonymousId=f"crm-{i}",
                traits={**person, "email": f"c{i}@crm.example"},
            )
        )
        if i < duplicates:
            typo = dict(person)
            field = ("first_name", "last_name")[i % 2]
            typo[field] = _typo(person[field], rng)
            events.append(ev("identify", i % 60, anonymousId=f"pos-{i}", traits=typo))
            same.append((f"anonymous_id:crm-{i}", f"anonymous_id:pos-{i}"))
    return events, same
