"""The Topics API taxonomies (v1 and v2), shipped as data, and their ids mapped to names.

In OpenRTB bid requests, topics travel as `user.data[].segment[].id` with the taxonomy
named by `user.data[].ext.segtax`: 600 for v1 and 601 for v2 (IAB Tech Lab's list).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Topic:
    id: int
    name: str
    path: str


@dataclass(frozen=True)
class Taxonomy:
    version: int
    segtax: int
    topics: dict[int, Topic]

    def name(self, topic_id: int) -> str:
        return self.topics[topic_id].path


@cache
def taxonomy(version: int) -> Taxonomy:
    if version not in (1, 2):
        raise ValueError(f"unknown Topics taxonomy version {version}; known: 1, 2")
    text = resources.files("accord.experiments").joinpath(f"data/topics_v{version}.json")
    data = json.loads(text.read_text(encoding="utf-8"))
    topics = {t["id"]: Topic(t["id"], t["name"], t["path"]) for t in data["topics"]}
    return Taxonomy(data["version"], data["segtax"], topics)


SEGTAX_VERSIONS = {600: 1, 601: 2}


def version_for_segtax(segtax: int) -> int | None:
    return SEGTAX_VERSIONS.get(segtax)
