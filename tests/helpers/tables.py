"""Read back the aligned tables istioctl prints (Go tabwriter style).

Every cell of a column starts where its header does, so a row is cut at the header's column
positions; the last column runs to the end of the line. Header names may hold spaces
(`SERVICE FQDN`), so the caller names the columns.
"""

from __future__ import annotations


def table_rows(text: str, columns: list[str]) -> list[dict[str, str]]:
    """Rows of the table `text` (header line first) as {column: cell}."""
    header, *lines = text.splitlines()
    starts: list[int] = []
    pos = 0
    for name in columns:
        pos = header.index(name, pos)
        starts.append(pos)
    if header[: starts[-1]].split() != " ".join(columns[:-1]).split():
        raise AssertionError(f"columns {columns} do not match the header {header!r}")
    bounds: list[int | None] = [*starts[1:], None]
    return [
        {
            name: line[start:end].strip()
            for name, start, end in zip(columns, starts, bounds, strict=True)
        }
        for line in lines
    ]
