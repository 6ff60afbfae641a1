"""The workbench's Table redraws its rows at the widths it measures, even when a frame was drawn before it measured."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from kirec_tui.widgets.table import Table


class OneTable(App):
    def compose(self) -> ComposeResult:
        yield Table(cursor_type="row", zebra_stripes=True)


def shown_text(app: App) -> str:
    table = app.query_one(Table)
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


@pytest.mark.anyio
@pytest.mark.parametrize("edit", ["refill", "update"])
async def test_rows_drawn_before_their_widths_were_measured_are_redrawn_wide(edit):
    """A plain DataTable fails both (textual#3533): it kept showing `run.du  4m` until its next edit."""
    async with OneTable().run_test(size=(60, 8)) as pilot:
        table = pilot.app.query_one(Table)
        table.add_columns("output", "#1")
        table.add_row("run", "4m", key="r")
        await pilot.pause()  # laid out and measured once
        if edit == "refill":  # as every screen's reload does
            table.clear(columns=True)
            table.add_columns("output", "#1")
            table.add_row("run.duration_seconds", "4m 30s", key="r")
        else:
            for column, value in zip(table.columns, ("run.duration_seconds", "4m 30s")):
                table.update_cell("r", column, value, update_width=True)
        early = shown_text(pilot.app)  # a frame drawn before the table was idle caches the rows
        await pilot.pause()
        await pilot.pause()
        assert "run.duration_seconds" not in early  # that frame really was drawn at the old widths
        assert "run.duration_seconds" in shown_text(pilot.app) and "4m 30s" in shown_text(pilot.app)


def test_every_table_of_the_workbench_is_a_table_that_redraws():
    """The screens' tables subclass Table; a plain DataTable anywhere in kirec_tui would bring the stale rows back."""
    from pathlib import Path

    import kirec_tui

    sources = Path(kirec_tui.__file__).parent.rglob("*.py")
    offenders = [p.name for p in sources if "DataTable(" in p.read_text().replace("class Table(DataTable)", "")]
    assert offenders == []
