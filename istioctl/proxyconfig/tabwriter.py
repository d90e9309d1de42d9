"""Tables aligned the way Go's `text/tabwriter` aligns istioctl's output.

istioctl writes each row as tab-terminated cells through `tabwriter.NewWriter(out, 0, 8,
PADDING, ' ', 0)`: every cell but the last of a line belongs to a column, padded with spaces
to the widest cell of that column plus PADDING; the last cell is written as is. The padding
differs per table (5 for clusters, routes, endpoints and secrets, 1 for listeners and the
bootstrap summary); each writer passes its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A header and rows of cells (every row as long as the header)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    padding: int

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"row {row!r} does not match header {self.header!r}")

    def render(self) -> str:
        return render([self.header, *self.rows], self.padding)


def render(lines: Sequence[Sequence[str]], padding: int) -> str:
    """`lines` of cells, aligned: each line ends with a newline."""
    widths: list[int] = []
    for cells in lines:
        for index, cell in enumerate(cells[:-1]):
            if index == len(widths):
                widths.append(0)
            widths[index] = max(widths[index], len(cell))
    out: list[str] = []
    for cells in lines:
        parts = [cell.ljust(widths[i] + padding) for i, cell in enumerate(cells[:-1])]
        if cells:
            parts.append(cells[-1])
        out.append("".join(parts) + "\n")
    return "".join(out)
