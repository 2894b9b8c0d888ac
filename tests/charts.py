"""Read the charts of an admin page the way plotly.js and a screen reader do.

`charts(html)` finds every `<figure class="chart">` that `accord.web.charts` rendered and
returns its caption, the plotly.js figure it carries and the rows of its table.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html import unescape
from typing import Any

FIGURE = re.compile(r'<figure class="chart[^"]*"[^>]*>(.*?)</figure>', re.S)
CAPTION = re.compile(r"<figcaption>(.*?)</figcaption>", re.S)
PLOT = re.compile(r'data-chart="([^"]*)"')
ROW = re.compile(r'<tr><th scope="row">(.*?)</th>(.*?)</tr>', re.S)
CELL = re.compile(r"<td>(.*?)</td>", re.S)
HEADER = re.compile(r'<th scope="col">(.*?)</th>', re.S)


@dataclass(frozen=True)
class PageChart:
    title: str
    figure: dict[str, Any] | None  # None when the chart had no numbers
    columns: list[str]
    rows: dict[str, list[str]]

    @property
    def traces(self) -> list[dict[str, Any]]:
        return list(self.figure["data"]) if self.figure else []

    def trace(self, name: str) -> dict[str, Any]:
        found = [t for t in self.traces if t.get("name") == name]
        assert found, f"no trace {name!r} in chart {self.title!r}: {self.traces}"
        return found[0]


def charts(html: str) -> dict[str, PageChart]:
    """Every chart of the page by its caption."""
    found: dict[str, PageChart] = {}
    for body in FIGURE.findall(html):
        caption = CAPTION.search(body)
        assert caption, "a chart without a caption"
        title = unescape(caption.group(1))
        plot = PLOT.search(body)
        figure = json.loads(unescape(plot.group(1))) if plot else None
        headers = [unescape(h) for h in HEADER.findall(body)]
        rows = {
            unescape(label): [unescape(c) for c in CELL.findall(cells)]
            for label, cells in ROW.findall(body)
        }
        found[title] = PageChart(title, figure, headers[1:], rows)
    return found


def chart(html: str, title: str) -> PageChart:
    """The page's chart captioned `title`, drawn (its figure present) with its table."""
    found = charts(html)
    assert title in found, f"no chart {title!r} on the page; charts: {list(found)}"
    drawn = found[title]
    assert drawn.figure is not None, f"chart {title!r} has no numbers"
    assert drawn.rows, f"chart {title!r} has no table"
    return drawn
