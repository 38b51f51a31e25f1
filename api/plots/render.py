"""Figures to image bytes, with matplotlib's object-oriented API (a Figure and its backend canvas, never
pyplot, whose global current figure is not safe across the API's request threads).

matplotlib is imported on the first render, not when the API starts. The same figure gives the same
bytes, so that an ETag names the picture: SVG ids come from a fixed hash salt instead of a random one,
and neither format records a date or the matplotlib version. SVG text stays text (<text> elements in
DejaVu Sans, which matplotlib ships, with a sans-serif fallback), so it is searchable and small."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from api.plots import MEDIA_TYPES, ImageFormat

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.container import ErrorbarContainer
    from matplotlib.figure import Figure

# PNG pixels per inch: a figure of 8 x 5 inches is 800 x 500 pixels.
PNG_DPI = 100

# matplotlib's caches (fonts, text layout, the settings below) are shared by every figure and are not
# guarded: one figure is drawn and saved at a time. A plot takes tens of milliseconds.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Image:
    content: bytes
    media_type: str

    @property
    def etag(self) -> str:
        """A strong validator derived from the bytes alone."""
        return f'"{hashlib.sha256(self.content).hexdigest()[:32]}"'


@cache
def _configure() -> None:
    """Settings that every plot of this process shares; set once (callers hold _LOCK)."""
    import matplotlib

    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "regtrain",
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans"],
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.fontsize": 9,
            "legend.framealpha": 0.9,
        }
    )


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of `width` x `height` inches, laid out so that labels never overlap the axes."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=PNG_DPI, layout="constrained")


def render(draw: Callable[[], Figure], image_format: ImageFormat) -> Image:
    """The figure `draw` makes, as SVG or PNG bytes."""
    with _LOCK:
        _configure()
        figure = draw()
        buffer = io.BytesIO()
        if image_format is ImageFormat.SVG:
            figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        else:
            figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return Image(buffer.getvalue(), MEDIA_TYPES[image_format])


def slug(text: str) -> str:
    """`text` as a piece of an SVG id (a `gid`): letters, digits, `.`, `_` and `-` only."""
    kept = "".join(c if c.isalnum() or c in "._-" else "-" for c in text.strip())
    return "-".join(part for part in kept.split("-") if part) or "unnamed"


def integer_epochs(axes: Axes) -> None:
    """Epoch axes tick at whole epochs only."""
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def legend_if_several(axes: Axes, **options: object) -> None:
    """A legend where more than one thing is labelled (one series needs none: the title names it)."""
    handles, _ = axes.get_legend_handles_labels()
    if len(handles) > 1:
        axes.legend(**options)


def name_errorbars(container: ErrorbarContainer, name: str) -> None:
    """SVG ids for an errorbar series: the points are `series-<name>`, their bars `errorbar-<name>-<n>`."""
    data_line, caps, bars = container.lines
    if data_line is not None:
        data_line.set_gid(f"series-{name}")
    for number, part in enumerate([*caps, *bars]):
        part.set_gid(f"errorbar-{name}-{number}")
