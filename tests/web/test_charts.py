"""The one chart helper: a plotly.js figure and a table of the same numbers."""

from __future__ import annotations

import json
import re
from datetime import date
from html import unescape

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from accord.core.clock import day_labels
from accord.web.charts import Chart, Series, format_value


def _figure(markup: str) -> dict[str, object]:
    found = re.search(r'data-chart="([^"]*)"', markup)
    assert found
    figure: dict[str, object] = json.loads(unescape(found.group(1)))
    return figure


def test_a_line_chart_has_one_trace_per_series_and_a_table_row_per_label() -> None:
    chart = Chart(
        title="Events per day",
        x=["2026-12-01", "2026-12-02"],
        series=[Series("web", [10, 12]), Series("ios", [3, None])],
        x_title="day",
    )
    markup = str(chart.html())
    figure = _figure(markup)
    data = figure["data"]
    assert isinstance(data, list)
    assert [trace["name"] for trace in data] == ["web", "ios"]
    assert data[1]["y"] == [3, None]
    assert markup.count('<tr><th scope="row">') == 2
    assert "<td>12</td>" in markup and "<td>–</td>" in markup


def test_percent_values_read_as_percent_in_the_table_and_on_the_axis() -> None:
    chart = Chart(
        title="Opt-in", x=["ads"], series=[Series("rate", [0.6342])], kind="bar", fmt="percent"
    )
    markup = str(chart.html())
    assert "63.4 %" in markup
    layout = _figure(markup)["layout"]
    assert isinstance(layout, dict)
    assert layout["yaxis"]["tickformat"] == ".0%"


def test_intervals_are_error_bars_in_the_figure_and_brackets_in_the_table() -> None:
    chart = Chart(
        title="Open rate",
        x=["mon", "tue", "wed"],
        series=[Series("open", [0.2, None, 0.5], low=[0.1, None, 0.45], high=[0.35, None, None])],
        kind="bar",
        fmt="percent",
    )
    markup = str(chart.html())
    [trace] = _figure(markup)["data"]  # type: ignore[misc]
    bars = trace["error_y"]
    assert bars["symmetric"] is False
    assert bars["array"] == [pytest.approx(0.15), None, None]
    assert bars["arrayminus"] == [pytest.approx(0.1), None, None]
    assert "<td>20.0 % [10.0 % – 35.0 %]</td>" in markup
    assert "<td>50.0 %</td>" in markup  # no upper bound: the value alone
    sideways = Chart(
        title="Lift", x=["a"], series=[Series("lift", [0.1], low=[-0.1], high=[0.2])], kind="hbar"
    )
    [bar] = _figure(str(sideways.html()))["data"]  # type: ignore[misc]
    assert "error_x" in bar and "error_y" not in bar


def test_day_labels_run_from_the_first_to_the_last_day() -> None:
    assert day_labels(date(2026, 12, 30), date(2027, 1, 2)) == [
        "2026-12-30",
        "2026-12-31",
        "2027-01-01",
        "2027-01-02",
    ]
    assert day_labels(date(2026, 12, 30), date(2026, 12, 29)) == []


def test_a_chart_without_numbers_says_so_and_draws_nothing() -> None:
    markup = str(Chart(title="Nothing", x=[], series=[]).html())
    assert "data-chart" not in markup
    assert "No data yet" in markup


def test_labels_and_titles_are_escaped() -> None:
    chart = Chart(title="<b>t</b>", x=["<script>"], series=[Series("<i>", [1])], kind="pie")
    markup = str(chart.html())
    assert "<script>" not in markup and "<b>t</b>" not in markup
    assert "&lt;script&gt;" in markup


@given(
    st.lists(st.one_of(st.none(), st.floats(-1e9, 1e9), st.integers(-(10**9), 10**9)), max_size=20),
    st.sampled_from(["line", "bar", "stacked", "hbar", "pie", "heatmap"]),
    st.sampled_from(["number", "percent", "seconds", "money"]),
)
def test_any_numbers_give_a_figure_that_is_valid_json_and_a_full_table(
    values: list[float | int | None], kind: str, fmt: str
) -> None:
    labels = [f"d{i}" for i in range(len(values))]
    chart = Chart(title="t", x=labels, series=[Series("s", values)], kind=kind, fmt=fmt)  # type: ignore[arg-type]
    markup = str(chart.html())
    if chart.is_empty():
        assert "No data yet" in markup
        return
    _figure(markup)
    for value in values:
        assert str(format_value(value, fmt)) in unescape(markup)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["/no/such/page", "/app/nothing-here"])
def test_an_unknown_address_is_an_html_page_for_a_browser_and_json_for_a_client(
    client: TestClient, path: str
) -> None:
    page = client.get(path, headers={"accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text and '"detail"' not in page.text
    api = client.get(path)
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}


def test_the_favicon_and_the_chart_library_are_served_by_accord(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    script = client.get("/ui/plotly.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "plotly" in script.text[:2000].lower()


def test_a_sankey_chart_links_named_nodes_and_lists_each_flow_in_its_table() -> None:
    chart = Chart(
        title="Paths",
        x=["Viewed → Added", "Viewed → Other", "Added → Paid"],
        series=[Series("people", [5, 2, 3])],
        links=[("0 Viewed", "1 Added"), ("0 Viewed", "1 Other"), ("1 Added", "2 Paid")],
        kind="sankey",
        x_title="flow",
    )
    markup = str(chart.html())
    trace = _figure(markup)["data"][0]  # type: ignore[index]
    assert trace["type"] == "sankey"
    assert trace["node"]["label"] == ["0 Viewed", "1 Added", "1 Other", "2 Paid"]
    assert trace["link"]["source"] == [0, 0, 1]
    assert trace["link"]["target"] == [1, 2, 3]
    assert trace["link"]["value"] == [5, 2, 3]
    assert markup.count('<tr><th scope="row">') == 3
    assert "<td>2</td>" in markup
