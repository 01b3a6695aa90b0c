"""``edgecnn demo``: every stage once, on the bundled digits, offline, ending in one table.

The demo is a consumer of the stages (train, convert, inspect, bench, run), never a part of them: it
lives in its own room, and only :mod:`edgecnn.demo.__main__` (``python -m edgecnn.demo``) goes through
the CLI.
"""

from edgecnn.demo.walkthrough import (
    DEFAULT_OUTPUT,
    MARKER,
    DemoReport,
    FormatFigures,
    StreamFigures,
    demo,
    format_report,
    prepare_output,
)

__all__ = [
    "DEFAULT_OUTPUT",
    "MARKER",
    "DemoReport",
    "FormatFigures",
    "StreamFigures",
    "demo",
    "format_report",
    "prepare_output",
]
