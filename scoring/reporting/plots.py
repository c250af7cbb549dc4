"""Rendering matplotlib figures for the report: SVG markup to inline in HTML, byte-identical for the same data, and
PNG data URIs for Dagster's markdown metadata (which renders images but not inline SVG).

Figures are made with the object-oriented API (`matplotlib.figure.Figure`), never pyplot: no global figure
registry to leak into, nothing to close, and no GUI backend is ever chosen.
"""

from __future__ import annotations

import base64
import functools
import io
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import matplotlib
from matplotlib.figure import Figure

# Text stays text (`svg.fonttype: none`): small files, selectable labels, and no glyph definitions whose fixed ids
# would repeat across the figures of one page. The hash salt makes matplotlib's generated ids reproducible.
_RC = {"svg.fonttype": "none", "svg.hashsalt": "gradus-report", "font.size": 9, "axes.titlesize": 10}
# Colours: matplotlib's default cycle, so figures match the ablation plot already in the README.
PALETTE = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


_P = ParamSpec("_P")
_R = TypeVar("_R")


def styled(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run a figure function under the report's style (matplotlib reads it when each artist is made)."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with matplotlib.rc_context(_RC):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(width: float = 7.0, height: float = 3.6) -> Figure:
    """An empty figure (inches); add axes with `figure.subplots(...)` inside a `styled` function."""
    return Figure(figsize=(width, height), layout="constrained")


def svg_markup(figure: Figure, prefix: str) -> str:
    """The figure as an `<svg>` element to inline in HTML: no XML prologue, no date, and every id (and reference
    to one) prefixed with `prefix`, so the figures of one page never share an id."""
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    return _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text).strip()


def png_data_uri(figure: Figure, dpi: int = 80) -> str:
    """The figure as a `data:image/png;base64,...` URI (for markdown image links)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def jitter(count: int, width: float = 0.25, seed: int = 0) -> list[float]:
    """`count` reproducible offsets in [-width, width] (spreads points that share a value, e.g. a pass rate)."""
    import numpy as np

    return [float(x) for x in np.random.default_rng(seed).uniform(-width, width, count)]


def short(text: str, length: int = 12) -> str:
    """`text` cut to `length` characters with an ellipsis (revision hashes, long labels)."""
    return text if len(text) <= length else text[: length - 1] + "…"
