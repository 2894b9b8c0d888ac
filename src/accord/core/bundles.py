"""Front-end bundles that Accord serves itself, read from installed Python packages (no CDN)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def plotly_js() -> str:
    """plotly.js from the installed `plotly` package: charts and reports never use a CDN."""
    bundle = resources.files("plotly").joinpath("package_data/plotly.min.js")
    return bundle.read_text(encoding="utf-8")
