"""The braille line chart: axes, legend, overlay, and thinning of long series."""

from __future__ import annotations

import math

import pytest
from textual.app import App

from kirec_tui.widgets.chart import LineChart, downsample


def test_downsample_keeps_short_series_and_averages_long_ones():
    assert downsample([1.0, 2.0], 5) == [1.0, 2.0]
    assert downsample([1.0, 3.0, 5.0, 7.0], 2) == [2.0, 6.0]
    thinned = downsample([float("nan"), float("nan"), 4.0, 6.0], 2)
    assert math.isnan(thinned[0]) and thinned[1] == 5.0


class ChartApp(App):
    def compose(self):
        yield LineChart("valid", id="chart")


@pytest.mark.anyio
async def test_overlaid_series_draw_with_axes_and_legend():
    app = ChartApp()
    async with app.run_test(size=(60, 12)) as pilot:
        chart = app.query_one(LineChart)
        chart.styles.height = 10
        chart.set_series([("#1", [0.1, 0.2, 0.3]), ("#2", [0.3, 0.25])])
        await pilot.pause()
        lines = str(chart.render()).splitlines()
        assert lines[0].startswith("valid") and "#1 0.3" in lines[0] and "#2 0.25" in lines[0]
        assert lines[1].startswith("0.3┤") and lines[-2].startswith("0.1┤")
        assert sum(1 for ch in "".join(lines) if 0x2800 < ord(ch) <= 0x28FF) > 10  # braille dots drawn
        chart.clear()
        assert "(no data yet)" in str(chart.render())


@pytest.mark.anyio
async def test_a_long_series_renders_within_the_width():
    app = ChartApp()
    async with app.run_test(size=(60, 12)) as pilot:
        chart = app.query_one(LineChart)
        chart.styles.height = 10
        for step in range(20_000):
            chart.append("loss", 10.0 / (1 + step))
        await pilot.pause()
        lines = str(chart.render()).splitlines()
        assert all(len(line) <= 60 for line in lines)
        assert lines[-1].strip().startswith("└ 1 … 20000")
