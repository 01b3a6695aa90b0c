"""Plain aligned text tables, drawn by rich, for the human output of demo, bench, service and fleet.

The look is the one edgecnn has always printed: columns two spaces apart, a dashed rule under the
header when asked, nothing coloured (the tables are returned as text for a terminal, a log or a test
alike). Cells are taken literally: a ``[`` in a model name or an error is not rich markup.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

WIDE = 10_000  # never wrap: a long path or error stays on its line, as before


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    rule: bool = False,
    indent: int = 0,
    show_header: bool = True,
    header_left: bool = False,
) -> str:
    """``header`` and ``rows`` as aligned lines (no trailing spaces); columns whose index is in
    ``right`` are right-justified, header included; ``rule`` adds dashes as wide as each column under
    the header; ``header_left`` keeps every heading left-justified over right-justified numbers;
    ``indent`` spaces go before every line."""
    table = Table(box=None, padding=(0, 2, 0, 0), pad_edge=False, show_header=False, highlight=False)
    for i in range(len(header)):
        table.add_column(justify="right" if i in right else "left", no_wrap=True)
    lines: list[Sequence[str]] = [header] if show_header else []
    if show_header and rule:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines.append(["-" * w for w in widths])
    for n, row in enumerate([*lines, *rows]):
        heading = show_header and n == 0 and header_left
        table.add_row(*(Text(cell, justify="left" if heading else None) for cell in row))
    sink = io.StringIO()
    Console(file=sink, width=WIDE, color_system=None, highlight=False, emoji=False, markup=False).print(table)
    return "\n".join(" " * indent + line.rstrip() for line in sink.getvalue().splitlines())
