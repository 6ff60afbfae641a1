"""A line chart drawn with braille dots: several series overlaid on shared axes, with a legend.

Textual ships only Sparkline (one series, no axes, bars), which cannot overlay two runs' validation curves,
so this widget draws its own: each terminal cell holds a 2x4 braille dot grid, which gives curves four times
the vertical resolution of block characters without any plotting dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.text import Text
from textual.widget import Widget

# Braille dot bits by (column 0..1, row 0..3) inside one cell (Unicode braille patterns, U+2800 + bits).
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
PALETTE = ("#4fc1ff", "#ffb86c", "#50fa7b", "#ff79c6", "#f1fa8c", "#bd93f9", "#ff5555", "#8be9fd")


@dataclass
class Series:
    label: str
    values: list[float] = field(default_factory=list)
    colour: str = PALETTE[0]


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def downsample(values: list[float], buckets: int) -> list[float]:
    """At most `buckets` points, each the mean of its finite values (NaN where none), so drawing a long run's
    loss per step costs the chart's width, not the number of steps."""
    if len(values) <= buckets:
        return values
    out = []
    for b in range(buckets):
        chunk = _finite(values[b * len(values) // buckets : (b + 1) * len(values) // buckets])
        out.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    return out


def _axis_label(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


class LineChart(Widget):
    """Overlaid line series; x is the point's index (step or epoch), y is autoscaled to all finite values."""

    DEFAULT_CSS = """
    LineChart { height: 10; min-height: 4; }
    """

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self._series: list[Series] = []

    # -- data ----------------------------------------------------------------------------------------------

    @property
    def series(self) -> list[Series]:
        return list(self._series)

    def set_series(self, series: list[tuple[str, list[float]]]) -> None:
        self._series = [
            Series(label, list(values), PALETTE[i % len(PALETTE)]) for i, (label, values) in enumerate(series)
        ]
        self.refresh()

    def append(self, label: str, value: float) -> None:
        """Add one point to the series called `label`, creating it if needed."""
        for s in self._series:
            if s.label == label:
                s.values.append(value)
                break
        else:
            self._series.append(Series(label, [value], PALETTE[len(self._series) % len(PALETTE)]))
        self.refresh()

    def clear(self) -> None:
        self._series = []
        self.refresh()

    # -- drawing -------------------------------------------------------------------------------------------

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        values = [v for s in self._series for v in _finite(s.values)]
        legend = Text(self.title + "  ", style="bold")
        for s in self._series:
            last = _finite(s.values)
            legend.append("━", style=s.colour)
            legend.append(f"{s.label}" + (f" {last[-1]:.4g}" if last else "") + " ")
        legend.truncate(width, overflow="ellipsis")  # one line, whatever the number of series
        if not values or height < 3:
            return Text.assemble(legend, "\n", Text("(no data yet)", style="dim"))
        low, high = min(values), max(values)
        if high == low:
            high, low = high + (abs(high) * 0.05 or 1.0), low - (abs(low) * 0.05 or 1.0)
        labels = (_axis_label(high), _axis_label(low))
        gutter = max(len(label) for label in labels) + 1
        plot_w, plot_h = max(1, width - gutter), height - 2  # one line legend, one line x axis
        dots_w, dots_h = plot_w * 2, plot_h * 4
        cells: dict[tuple[int, int], tuple[int, str]] = {}
        longest = max(len(s.values) for s in self._series)

        def plot(x: int, y: int, colour: str) -> None:
            cell = (x // 2, y // 4)
            bits, _ = cells.get(cell, (0, colour))
            cells[cell] = (bits | _DOT_BITS[x % 2][y % 4], colour)

        for s in self._series:
            previous: tuple[int, int] | None = None
            n = len(s.values)
            # The series spans n / longest of the width: at most one point per dot column there.
            points = downsample(s.values, max(1, min(n, round(n * dots_w / longest))))
            for index, value in enumerate(points):
                if value is None or not math.isfinite(value):
                    previous = None
                    continue
                position = index * (n - 1) / (len(points) - 1) if len(points) > 1 else 0  # index in s.values
                x = 0 if longest <= 1 else round(position * (dots_w - 1) / (longest - 1))
                y = round((high - value) * (dots_h - 1) / (high - low))
                if previous is None:
                    plot(x, y, s.colour)
                else:  # join consecutive points so sparse series still read as lines
                    px, py = previous
                    steps = max(abs(x - px), abs(y - py), 1)
                    for t in range(1, steps + 1):
                        plot(px + round((x - px) * t / steps), py + round((y - py) * t / steps), s.colour)
                previous = (x, y)

        out = Text.assemble(legend, "\n", no_wrap=True, overflow="crop")
        for row in range(plot_h):
            label = labels[0] if row == 0 else labels[1] if row == plot_h - 1 else ""
            out.append(label.rjust(gutter - 1) + "┤" if label else " " * (gutter - 1) + "│", style="dim")
            for col in range(plot_w):
                bits, colour = cells.get((col, row), (0, ""))
                out.append(chr(0x2800 + bits) if bits else " ", style=colour or None)
            out.append("\n")
        out.append(" " * (gutter - 1) + "└" + f" 1 … {longest}".ljust(plot_w, "─")[:plot_w], style="dim")
        return out
