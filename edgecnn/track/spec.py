"""Counting lines and zones as the user declares them: ``--line``/``--zone`` flags or ``[[lines]]`` and
``[[zones]]`` tables in the run's TOML file. Checked here, before anything starts; no NumPy, so the config
checks of an installer stay light.

Coordinates are pixels of the frame, or fractions of its width and height when every value is <= 1 (so
``0.5,0,0.5,1`` is a vertical line through the middle of any camera's frame)::

    [[lines]]
    name = "gate"
    points = [[0.5, 0.0], [0.5, 1.0]]   # or [x1, y1, x2, y2]; pixels when any value is > 1
    directions = ["in", "out"]          # names of the two crossing directions (the default)
    labels = ["person"]                 # only these labels count (default: all)
    anchor = "bottom-centre"            # the point of a box that must cross (default)
    min_distance = 0.02                 # how far past the line it must get, see LineTable

    [[zones]]
    name = "loading"
    points = [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]
    inertia = 3                         # frames inside before an object counts as entered (and outside
    dwell = 40                          # before it counts as left); a dwell event after 40 s inside
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgecnn.run.options import check_value, declared, option

ANCHORS: dict[str, tuple[float, float]] = {  # where on the box, as fractions of its width and height
    "bottom-centre": (0.5, 1.0),
    "centre": (0.5, 0.5),
    "top-centre": (0.5, 0.0),
    "bottom-left": (0.0, 1.0),
    "bottom-right": (1.0, 1.0),
}
DEFAULT_DIRECTIONS = ("in", "out")

Point = tuple[float, float]
Fail = Callable[[str], Exception]  # a problem -> the error to raise (naming the file or flag)


@dataclass
class LineTable:
    """The keys of a ``[[lines]]`` table."""

    name: str | None = option(help="Name in events, counts and metrics (default line1, line2, ...).")
    points: list[Any] | None = option(help="Two points: [[x1, y1], [x2, y2]] or [x1, y1, x2, y2].")
    directions: list[str] | None = option(
        help='Names of the two crossing directions (default ["in", "out"]): the first is a crossing from the '
        "left of the line (looking from its first point to its second) to its right; for a line drawn left "
        "to right that is downward in the image."
    )
    labels: list[str] | None = option(help="Only objects with these labels count (default: all).")
    anchor: str = option("bottom-centre", f"The point of a box that must cross: {', '.join(ANCHORS)}.")
    min_distance: float = option(
        0.02,
        "How far past the line the anchor must get before a crossing counts, so jitter on the line never "
        "counts twice: a fraction of the frame's shorter side when <= 1 (default 0.02), else pixels.",
        low=0.0,
        high=100_000,
    )


@dataclass
class ZoneTable:
    """The keys of a ``[[zones]]`` table."""

    name: str | None = option(help="Name in events, counts and metrics (default zone1, zone2, ...).")
    points: list[Any] | None = option(help="Three or more corners: [[x, y], ...] or [x1, y1, x2, y2, ...].")
    labels: list[str] | None = option(help="Only objects with these labels count (default: all).")
    anchor: str = option("bottom-centre", f"The point of a box that must be inside: {', '.join(ANCHORS)}.")
    inertia: int = option(
        3, "Frames an object must be inside before it counts as entered (and outside before it has left).",
        low=1, high=1000,
    )  # fmt: skip
    dwell: float | None = option(help="Seconds inside before a dwell (loitering) event; default: none.",
                                 low=0.001, high=10**7)  # fmt: skip


@dataclass(frozen=True)
class LineSpec:
    name: str
    points: tuple[Point, Point]
    fractions: bool  # points (and a min_distance <= 1) are fractions of the frame
    directions: tuple[str, str] = DEFAULT_DIRECTIONS
    labels: tuple[str, ...] | None = None
    anchor: str = "bottom-centre"
    min_distance: float = 0.02


@dataclass(frozen=True)
class ZoneSpec:
    name: str
    points: tuple[Point, ...]
    fractions: bool
    labels: tuple[str, ...] | None = None
    anchor: str = "bottom-centre"
    inertia: int = 3
    dwell: float | None = None


def parse_points(
    value: Any, least: int, fail: Fail, most: int | None = None
) -> tuple[tuple[Point, ...], bool]:
    """Points from ``"x1,y1,x2,y2"``, ``[x1, y1, ...]`` or ``[[x1, y1], ...]``; and whether they are fractions
    (every value <= 1)."""
    what = f"{least} points" if most == least else f"at least {least} points"
    example = "x1,y1,x2,y2" if least == 2 else "x1,y1,x2,y2,x3,y3"
    if isinstance(value, str):
        try:
            flat: list[Any] = [float(v) for v in value.split(",")]
        except ValueError:
            raise fail(f"use {what} as {example} (numbers), got {value!r}.") from None
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value) and value:
        flat = [v for p in value for v in p]
    elif isinstance(value, list):
        flat = list(value)
    else:
        raise fail(f"use {what} as [[x1, y1], [x2, y2], ...] or {example!r}, got {value!r}.")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise fail(f"points must be numbers, got {value!r}.")
    if len(flat) % 2 or len(flat) < 2 * least or (most is not None and len(flat) > 2 * most):
        raise fail(f"use {what} ({example}), got {len(flat)} numbers.")
    if not all(math.isfinite(v) and v >= 0 for v in flat):
        raise fail(f"points are pixels or fractions of the frame (0 and up), got {value!r}.")
    points = tuple((float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2))
    if len(set(points)) < least:
        raise fail(f"the points must differ, got {value!r}.")
    return points, all(v <= 1 for v in flat)


def _names(value: Any, key: str, fail: Fail) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items) or not items:
        raise fail(f'{key} must be a list of names (["person", "car"]), got {value!r}.')
    return tuple(i.strip() for i in items)


def _table(cls: type, table: Any, fail: Fail) -> dict[str, Any]:
    """A table's values, every key known and every scalar checked like a run option (check_value)."""
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    if isinstance(table, str):
        return {**defaults, "points": table}
    if not isinstance(table, dict):
        raise fail(f"must be a table ({{name = ..., points = [...]}}) or a string of points, got {table!r}.")
    keys = declared(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise fail(f"unknown key {key!r}{hint}; known keys: {', '.join(keys)}.")
        opt = keys[key]
        if opt.kind is not list:
            problem = check_value(opt, value)
            if problem is not None:
                raise fail(f"{key} {problem}")
        values[key] = value
    if "points" not in values:
        raise fail("needs points.")
    return {**defaults, **values}


def _anchor(value: str, fail: Fail) -> str:
    anchor = value.lower().replace("center", "centre")
    if anchor not in ANCHORS:
        raise fail(f"anchor must be one of {', '.join(ANCHORS)}, got {value!r}.")
    return anchor


def parse_line(table: Any, index: int, fail: Fail) -> LineSpec:
    """A line from a ``[[lines]]`` table or a ``--line x1,y1,x2,y2`` string (named ``line{index}``)."""
    v = _table(LineTable, table, fail)
    points, fractions = parse_points(v["points"], 2, fail, most=2)
    directions = v["directions"] or list(DEFAULT_DIRECTIONS)
    if (
        not isinstance(directions, list)
        or len(directions) != 2
        or not all(isinstance(d, str) and d for d in directions)
        or directions[0] == directions[1]
    ):
        raise fail(f'directions must be two different names (["in", "out"]), got {directions!r}.')
    return LineSpec(
        name=v["name"] or f"line{index}",
        points=(points[0], points[1]),
        fractions=fractions,
        directions=(directions[0], directions[1]),
        labels=_names(v["labels"], "labels", fail),
        anchor=_anchor(v["anchor"], fail),
        min_distance=float(v["min_distance"]),
    )


def parse_zone(table: Any, index: int, fail: Fail) -> ZoneSpec:
    """A zone from a ``[[zones]]`` table or a ``--zone x1,y1,x2,y2,x3,y3[,...]`` string (``zone{index}``)."""
    v = _table(ZoneTable, table, fail)
    points, fractions = parse_points(v["points"], 3, fail)
    return ZoneSpec(
        name=v["name"] or f"zone{index}",
        points=points,
        fractions=fractions,
        labels=_names(v["labels"], "labels", fail),
        anchor=_anchor(v["anchor"], fail),
        inertia=int(v["inertia"]),
        dwell=None if v["dwell"] is None else float(v["dwell"]),
    )


def parse_all(
    lines: Sequence[Any] | None, zones: Sequence[Any] | None, fail: Callable[[str, str], Exception]
) -> tuple[list[LineSpec], list[ZoneSpec]]:
    """Every line and zone of a run; ``fail(key, problem)`` makes the error (``lines``/``zones`` key).
    Names must be unique among lines and among zones (they key counts and metrics)."""
    parsed_lines = [parse_line(t, i, _at(fail, "lines", f"line {i}")) for i, t in enumerate(lines or (), 1)]
    parsed_zones = [parse_zone(t, i, _at(fail, "zones", f"zone {i}")) for i, t in enumerate(zones or (), 1)]
    for key, items in (("lines", parsed_lines), ("zones", parsed_zones)):
        names = [item.name for item in items]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise fail(key, f"names must be unique, {', '.join(twice)} is used twice.")
    return parsed_lines, parsed_zones


def _at(fail: Callable[[str, str], Exception], key: str, where: str) -> Fail:
    def problem(text: str) -> Exception:
        return fail(key, f"{where}: {text}")

    return problem
