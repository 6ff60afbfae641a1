"""The workbench's DataTable: the same widget, with its rendered rows dropped when its column widths change.

DataTable measures the cells of new or updated rows when it is next idle, but caches each rendered row under a
counter that this measuring does not move (textual#3533). A frame drawn in between (a busy machine, a screenshot)
caches rows at the header's widths, and the table showed them truncated until its next edit: one CI failure.
"""

from __future__ import annotations

from textual.widgets import DataTable


class Table(DataTable):
    def _render_widths(self) -> list[int]:
        return [column.get_render_width(self) for column in self.ordered_columns]

    def _update_dimensions(self, new_rows) -> None:
        before = self._render_widths()
        super()._update_dimensions(new_rows)
        self._forget_rows_unless(before)

    def _update_column_widths(self, updated_cells) -> None:
        before = self._render_widths()
        super()._update_column_widths(updated_cells)
        self._forget_rows_unless(before)

    def _forget_rows_unless(self, widths: list[int]) -> None:
        if self._render_widths() != widths:
            self._update_count += 1  # every render cache is keyed by it
            self.refresh()
