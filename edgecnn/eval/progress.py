"""Progress reporting for long evaluations, kept out of the library's logic.

The library calls a plain ``(done, total)`` callback; the CLI passes one that draws a Rich progress bar on
stderr when stderr is a terminal, so piped output and ``--json`` stay clean.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

ProgressFn = Callable[[int, int], None]


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressFn | None]:
    """Yield a callback drawing a bar on stderr, or ``None`` when stderr is not a terminal or not ``enabled``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
