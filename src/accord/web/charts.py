"""Charts of the admin UI: one library (plotly.js, served by Accord), each chart with its table.

A page builds a `Chart` from numbers it already has and puts `chart.html()` in its
template. The markup is a `<figure>` holding the figure as JSON for plotly.js to draw
and, in the same figure, a table of the same numbers, so a screen reader or a browser
without JavaScript still gets every value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import orjson
from jinja2 import Environment, Template
from markupsafe import Markup

PLOTLY_PATH = "/ui/plotly.js"

Kind = Literal["line", "bar", "stacked", "hbar", "pie", "heatmap", "sankey"]
Format = Literal["number", "percent", "seconds", "money"]

# One palette for every chart, readable by people with the common colour deficiencies
# (Okabe and Ito's eight colours, without black).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")


@dataclass(frozen=True)
class Series:
    """One named row of values, aligned with the chart's `x` labels.

    `low` and `high`, when given, are each value's interval (a 95 % confidence interval,
    say): drawn as error bars on line and bar charts and written beside the value in
    the table.
    """

    name: str
    values: Sequence[float | int | None]
    low: Sequence[float | int | None] | None = None
    high: Sequence[float | int | None] | None = None

    def interval(self, i: int) -> tuple[float | int, float | int] | None:
        """The `i`-th value's interval, or None when the series has none or it is missing."""
        if self.low is None or self.high is None or i >= len(self.low) or i >= len(self.high):
            return None
        low, high = self.low[i], self.high[i]
        return None if low is None or high is None else (low, high)


@dataclass(frozen=True)
class Chart:
    """A chart and its table.

    - `line`, `bar`, `stacked`, `hbar`: one trace per series over the `x` labels.
    - `pie`: the first series' values shared among the `x` labels.
    - `heatmap`: one row per series (its name labels the row), one column per `x` label.
    - `sankey`: one flow per `x` label, from node `links[i][0]` to node `links[i][1]`,
      as wide as the first series' value; the table lists the flows.

    `fmt` says how values read in the table and on the axis: `percent` expects shares
    from 0 to 1, `money` expects amounts in the currency's units.
    """

    title: str
    x: Sequence[str]
    series: Sequence[Series]
    kind: Kind = "line"
    fmt: Format = "number"
    x_title: str = ""
    y_title: str = ""
    currency: str = ""
    height: int = 280
    id: str = ""
    notes: Sequence[str] = field(default_factory=tuple)
    # sankey only: (source node, target node) of each `x` label
    links: Sequence[tuple[str, str]] = field(default_factory=tuple)

    def is_empty(self) -> bool:
        return not self.x or all(v is None for s in self.series for v in s.values)

    def figure(self) -> dict[str, Any]:
        """The plotly.js figure (data and layout) for this chart."""
        return {"data": _traces(self), "layout": _layout(self)}

    def html(self, *, table_open: bool = False) -> Markup:
        """The figure for plotly.js plus the table of the same numbers."""
        return render(self, table_open=table_open)


def format_value(value: float | int | None, fmt: Format, currency: str = "") -> str:
    if value is None:
        return "–"
    if fmt == "percent":
        return f"{value * 100:.1f} %"
    if fmt == "seconds":
        return f"{value:.2f} s" if value < 10 else f"{value:,.0f} s"
    if fmt == "money":
        return f"{value:,.2f} {currency}".strip()
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _hover(chart: Chart) -> str:
    if chart.fmt == "percent":
        return "%{y:.1%}" if chart.kind not in ("hbar",) else "%{x:.1%}"
    return "%{y:,}" if chart.kind != "hbar" else "%{x:,}"


def _traces(chart: Chart) -> list[dict[str, Any]]:
    x = list(chart.x)
    if chart.kind == "pie":
        values = list(chart.series[0].values) if chart.series else []
        return [
            {
                "type": "pie",
                "labels": x,
                "values": values,
                "hole": 0.45,
                "sort": False,
                "marker": {"colors": list(PALETTE)},
                "textinfo": "percent",
            }
        ]
    if chart.kind == "sankey":
        nodes = list(dict.fromkeys(name for link in chart.links for name in link))
        index = {name: i for i, name in enumerate(nodes)}
        return [
            {
                "type": "sankey",
                "arrangement": "snap",
                "node": {
                    "label": nodes,
                    "color": [PALETTE[i % len(PALETTE)] for i in range(len(nodes))],
                    "pad": 12,
                },
                "link": {
                    "source": [index[a] for a, _ in chart.links],
                    "target": [index[b] for _, b in chart.links],
                    "value": list(chart.series[0].values) if chart.series else [],
                    "label": x,
                },
            }
        ]
    if chart.kind == "heatmap":
        return [
            {
                "type": "heatmap",
                "x": x,
                "y": [s.name for s in chart.series],
                "z": [list(s.values) for s in chart.series],
                "colorscale": "Blues",
                "hoverongaps": False,
            }
        ]
    traces: list[dict[str, Any]] = []
    for i, series in enumerate(chart.series):
        colour = PALETTE[i % len(PALETTE)]
        values = list(series.values)
        trace: dict[str, Any] = {"name": series.name}
        if chart.kind == "line":
            trace |= {
                "type": "scatter",
                "mode": "lines+markers",
                "x": x,
                "y": values,
                "line": {"color": colour, "width": 2},
                "marker": {"size": 5},
                "connectgaps": False,
            }
        elif chart.kind == "hbar":
            trace |= {
                "type": "bar",
                "orientation": "h",
                "y": x,
                "x": values,
                "marker": {"color": colour},
            }
        else:
            trace |= {"type": "bar", "x": x, "y": values, "marker": {"color": colour}}
        trace["hovertemplate"] = f"{series.name}: {_hover(chart)}<extra></extra>"
        if series.low is not None and series.high is not None:
            axis = "error_x" if chart.kind == "hbar" else "error_y"
            trace[axis] = _error_bars(series)
        traces.append(trace)
    return traces


def _error_bars(series: Series) -> dict[str, Any]:
    """Plotly's asymmetric error bars: the distance from each value up to `high`, down to `low`."""
    above: list[float | None] = []
    below: list[float | None] = []
    for i, value in enumerate(series.values):
        bounds = series.interval(i)
        if value is None or bounds is None:
            above.append(None)
            below.append(None)
            continue
        above.append(max(bounds[1] - value, 0.0))
        below.append(max(value - bounds[0], 0.0))
    return {
        "type": "data",
        "symmetric": False,
        "array": above,
        "arrayminus": below,
        "thickness": 1.5,
        "width": 4,
    }


def _layout(chart: Chart) -> dict[str, Any]:
    value_axis: dict[str, Any] = {"title": {"text": chart.y_title}, "zeroline": True}
    if chart.fmt == "percent":
        value_axis |= {"tickformat": ".0%", "rangemode": "tozero"}
    label_axis: dict[str, Any] = {"title": {"text": chart.x_title}, "automargin": True}
    legend = chart.kind == "pie" or (chart.kind != "sankey" and len(chart.series) > 1)
    layout: dict[str, Any] = {
        "height": chart.height,
        # The legend sits above the plot, clear of the axis titles below it.
        "margin": {"l": 56, "r": 16, "t": 40 if legend else 16, "b": 48},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "showlegend": legend,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "colorway": list(PALETTE),
    }
    if chart.kind == "hbar":
        layout |= {"xaxis": value_axis, "yaxis": label_axis | {"autorange": "reversed"}}
    elif chart.kind not in ("pie", "sankey"):
        layout |= {"xaxis": label_axis, "yaxis": value_axis}
    if chart.kind == "stacked":
        layout["barmode"] = "stack"
    elif chart.kind == "bar":
        layout["barmode"] = "group"
    return layout


_TEMPLATE = """\
<figure class="chart{{ ' empty' if empty }}"{% if chart.id %} id="{{ chart.id }}"{% endif %}>
<figcaption>{{ chart.title }}</figcaption>
{%- if empty %}<p class="muted">No data yet.</p>
{%- else %}
<div class="chart-plot" data-chart="{{ figure }}" role="img" aria-label="{{ chart.title }}" \
style="min-height:{{ chart.height }}px"></div>
{%- endif %}
{%- for note in chart.notes %}<p class="help">{{ note }}</p>{% endfor %}
{%- if not empty %}
<details class="chart-table"{{ ' open' if table_open }}><summary>Table</summary>
<table><thead><tr><th scope="col">{{ corner }}</th>
{%- for name in columns %}<th scope="col">{{ name }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for label, cells in rows %}<tr><th scope="row">{{ label }}</th>
{%- for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table></details>
{%- endif %}
</figure>"""


@cache
def _template() -> Template:
    return Environment(autoescape=True).from_string(_TEMPLATE)


def _rows(chart: Chart) -> tuple[str, list[str], list[tuple[str, list[str]]]]:
    """The table: its corner label, column headers, and one labelled row of cells each."""

    def cell(value: float | int | None) -> str:
        return format_value(value, chart.fmt, chart.currency)

    def cell_of(series: Series, i: int) -> str:
        value = series.values[i] if i < len(series.values) else None
        bounds = series.interval(i)
        if value is None or bounds is None:
            return cell(value)
        return f"{cell(value)} [{cell(bounds[0])} – {cell(bounds[1])}]"

    if chart.kind == "heatmap":
        rows = [(s.name, [cell(v) for v in s.values]) for s in chart.series]
        return chart.y_title, list(chart.x), rows
    series = list(chart.series[:1] if chart.kind in ("pie", "sankey") else chart.series)
    rows = [(label, [cell_of(s, i) for s in series]) for i, label in enumerate(chart.x)]
    return chart.x_title, [s.name for s in series], rows


def render(chart: Chart, *, table_open: bool = False) -> Markup:
    """`<figure>` with the plotly.js figure as JSON and the table of the same numbers."""
    empty = chart.is_empty()
    corner, columns, rows = _rows(chart)
    html = _template().render(
        chart=chart,
        empty=empty,
        figure="" if empty else orjson.dumps(chart.figure()).decode(),
        table_open=table_open,
        corner=corner,
        columns=columns,
        rows=rows,
    )
    return Markup(html)  # noqa: S704 - rendered by an autoescaping Jinja environment
