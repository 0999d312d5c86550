"""Renderables laid out for the width they get when drawn, so a narrow terminal cuts words, never
numbers: `$0...` for `$28.39` would be nonsense, `Rate n… $13.00/h` is still true."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

Cell = str | Text
MIN_LABEL = 4  # below this, optional number columns are left out to make room for the label


def _width(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


class FitTable:
    """A label column and right-aligned number columns; drawn, the numbers keep their whole width
    and the label takes what is left (ending with an ellipsis). When the label would get fewer
    than MIN_LABEL cells, the `optional` number columns are left out (last first)."""

    def __init__(
        self,
        rows: Sequence[Sequence[Cell]],
        *,
        headers: Sequence[str] | None = None,
        optional: Sequence[int] = (),
        gap: int = 1,
    ) -> None:
        self.rows = [list(r) for r in rows]
        self.headers = list(headers) if headers is not None else None
        self.optional = list(optional)
        self.gap = gap

    def columns_for(self, width: int) -> tuple[list[int], int]:
        """The number columns shown in `width` cells, and the label's width (pure)."""
        count = max((len(r) for r in self.rows), default=len(self.headers or [""]))
        if self.headers is not None:
            count = max(count, len(self.headers))
        shown = list(range(1, count))
        widths = {i: self._column_width(i) for i in shown}

        def label() -> int:
            return width - sum(widths[i] + self.gap for i in shown)

        for i in reversed(self.optional):
            if label() >= MIN_LABEL:
                break
            if i in shown:
                shown.remove(i)
        return shown, max(1, label())

    def _column_width(self, i: int) -> int:
        cells = [r[i] for r in self.rows if i < len(r)]
        if self.headers is not None and i < len(self.headers):
            cells.append(self.headers[i])
        return max((_width(c) for c in cells), default=0)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shown, label_width = self.columns_for(options.max_width)
        table = Table(
            box=None, padding=(0, 0, 0, self.gap), pad_edge=False, show_edge=False,
            show_header=self.headers is not None, header_style="bold", expand=False,
        )  # fmt: skip
        heads = self.headers or []
        table.add_column(
            heads[0] if heads else "", width=label_width, no_wrap=True, overflow="ellipsis"
        )
        for i in shown:
            table.add_column(
                heads[i] if i < len(heads) else "", justify="right", no_wrap=True,
                width=self._column_width(i),
            )  # fmt: skip
        for row in self.rows:
            table.add_row(row[0], *(row[i] if i < len(row) else "" for i in shown))
        yield table
