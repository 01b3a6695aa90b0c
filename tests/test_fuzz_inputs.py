"""Property-based fuzzing of images, TOML configs and bench JSON files, in-process (they never reach native
code that a malformed file could crash except OpenCV's decoders, which return None or raise).

Contract: a sane result or the typed error of the kind of file; never another exception.
"""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgecnn.errors import ConfigError, EdgecnnError, InputError  # noqa: E402
from tests.conftest import CAT, MOBILENET  # noqa: E402


def _encoded(ext: str) -> bytes:
    import cv2

    image = cv2.imread(str(CAT), cv2.IMREAD_COLOR)
    small = cv2.resize(image, (48, 32))
    ok, data = cv2.imencode(ext, small)
    assert ok
    return data.tobytes()


IMAGES = {ext: _encoded(ext) for ext in (".png", ".jpg", ".bmp", ".webp", ".tiff")}


@given(
    ext=st.sampled_from(sorted(IMAGES)),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    # Headers (where width, height, bit depth and channel count live) are in the first few dozen bytes.
    flips=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=6),
    far=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4),
)
def test_mutated_images_decode_or_fail_with_input_error(tmp_path_factory, ext, cut, flips, far):
    from edgecnn.images import max_pixels, read_image

    raw = bytearray(IMAGES[ext])
    for at, value in flips:
        raw[at % len(raw)] = value
    for where, value in far:
        raw[min(len(raw) - 1, int(where * len(raw)))] = value
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    path = tmp_path_factory.mktemp("img") / f"fuzzed{ext}"
    path.write_bytes(bytes(raw))
    try:
        image = read_image(path)
    except InputError as exc:
        event(f"refused: {str(exc).split(':')[-1][:40]}")
        return
    event("decoded")
    assert image.dtype == np.uint8 and image.ndim in (2, 3)
    assert image.ndim == 2 or image.shape[2] == 3
    assert image.shape[0] * image.shape[1] <= max_pixels()


# Even sizes from 16 px: OpenCV 5.0's MJPG writer corrupts the heap (SIGABRT) writing tiny or odd frames
# (5x5, 7x9, 4x4, 2x8, 6x8); 16..96 even in both directions writes and reads back cleanly.
@given(half_w=st.integers(8, 48), half_h=st.integers(8, 48), budget=st.integers(64, 96 * 96))
def test_video_frames_are_held_to_the_pixel_budget(tmp_path_factory, half_w, half_h, budget):
    """Any frame size against any budget: refused at open (before a frame is decoded) exactly when it is
    over, with the size in the message; otherwise the frames come out at that size."""
    import os

    width, height = 2 * half_w, 2 * half_h

    from edgecnn.devices.sources.opencv import CaptureGrabber
    from edgecnn.devices.sources.synthetic import render_digit, write_video

    path = write_video(tmp_path_factory.mktemp("video") / "clip.avi", [render_digit(7, width, height)])
    grabber = CaptureGrabber(str(path), "file")
    saved = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS")
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(budget)
    try:
        if width * height > budget:
            event("refused")
            with pytest.raises(InputError, match=f"has {width}x{height} frames .*EDGECNN_MAX_IMAGE_PIXELS"):
                grabber.open()
            assert grabber.cap is None
            return
        event("accepted")
        grabber.open()
        frame = grabber.grab()
        assert frame is not None and frame.shape == (height, width, 3)
    finally:
        grabber.close()
        if saved is None:
            del os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"]
        else:
            os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = saved


# TOML: structured documents built from the real keys (values of every type, tables, arrays, nesting),
# plus raw text, plus deep nesting.
KEYS = st.sampled_from(
    ["model", "source", "camera", "device", "top_k", "serve", "mqtt", "labels", "threads", "x"]
)
SCALARS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(string.printable, max_size=20),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan"
            if value != value
            else ("inf" if value == float("inf") else "-inf" if value == -float("inf") else repr(value))
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # a TOML basic string is JSON-compatible for printable text


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=6).map(
    lambda d: "".join(f"{k} = {_toml_value(v)}\n" for k, v in d.items())
)
DEEP = st.tuples(st.integers(1, 3000), st.sampled_from(["[", "{a = "])).map(
    lambda t: "x = " + t[1] * t[0] + "1" + ("]" if t[1] == "[" else "}") * t[0] + "\n"
)


@given(text=st.one_of(DOCS, st.text(max_size=200), DEEP), with_model=st.booleans())
def test_configs_load_or_fail_with_config_error(tmp_path_factory, text, with_model):
    from edgecnn.run.config import load_run_config, validate_run_options

    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "run.toml"
    path.write_text((f'model = "{MOBILENET}"\n' if with_model else "") + text, encoding="utf-8")
    try:
        opts = load_run_config(path)
        validate_run_options(opts, check_model=with_model)
    except (ConfigError, EdgecnnError) as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def bench_json(coral, tmp_path_factory) -> dict:
    """A real bench result (2 runs on the Coral MobileNet), as the dict the fuzzer mutates."""
    from edgecnn.bench.results import save_result
    from edgecnn.bench.runner import run_bench

    result = run_bench(MOBILENET, runs=2, warmup=1)
    path = save_result(result, tmp_path_factory.mktemp("bench") / "r.json")
    return json.loads(path.read_text())


@given(
    edits=st.lists(st.tuples(st.integers(0, 1000), JSON_VALUES), max_size=4),
    raw=st.one_of(st.none(), st.none(), st.none(), st.text(max_size=100), DEEP.map(lambda s: s[4:])),
)
def test_bench_files_load_or_fail_with_input_error(bench_json, tmp_path_factory, edits, raw):
    from edgecnn.bench.report import build_report, format_report

    doc = json.loads(json.dumps(bench_json))
    for at, value in edits:  # replace one value somewhere in the tree, keeping the rest real
        node = doc
        for _ in range(3):
            keys = (
                list(node)
                if isinstance(node, dict)
                else list(range(len(node)))
                if isinstance(node, list)
                else []
            )
            if not keys:
                break
            key = keys[at % len(keys)]
            if not isinstance(node[key], (dict, list)) or at % 3 == 0:
                node[key] = value
                break
            node = node[key]
    path = tmp_path_factory.mktemp("bj") / "r.json"
    path.write_text(raw if raw is not None else json.dumps(doc), encoding="utf-8")
    try:
        report = build_report([path, path], reference=path)
    except InputError:
        event("refused")
        return
    event("reported")
    assert format_report(report) and format_report(report, markdown=True)
    json.dumps(report.to_dict(), default=str)


# -- output targets: whatever the path is, only a regular file is ever replaced ------------------------

OUTPUT_KINDS = ["missing", "regular", "dir", "null", "full", "fifo", "fifo+reader", "socket", "dash"]


def _make_output(folder, kind: str, links: int):
    """``folder/out`` as ``kind``, reached through ``links`` symbolic links; (path, the node itself)."""
    import os
    import socket
    import stat

    node = folder / "node"
    reader = sock = None
    if kind == "regular":
        node.write_bytes(b"old")
    elif kind == "dir":
        node.mkdir()
    elif kind in ("null", "full"):
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3 if kind == "null" else 7))
    elif kind.startswith("fifo"):
        os.mkfifo(node)
        if kind == "fifo+reader":  # a reader present from the start; what we write fits the pipe buffer
            reader = os.open(node, os.O_RDONLY | os.O_NONBLOCK)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(node))
    path = node
    for i in range(links):
        link = folder / f"link{i}"
        link.symlink_to(path)
        path = link
    return ("-" if kind == "dash" else path), node, reader, sock


@given(
    kind=st.sampled_from(OUTPUT_KINDS),
    links=st.integers(0, 2),
    writer=st.sampled_from(["write_atomic", "atomic_path", "open_append"]),
    streams=st.booleans(),
    symlinks=st.booleans(),
)
def test_output_targets_are_written_streamed_or_refused(
    tmp_path_factory, kind, links, writer, streams, symlinks
):
    import contextlib
    import errno
    import os
    import stat

    from edgecnn.atomic import atomic_path, open_append, write_atomic

    if os.geteuid() != 0:
        pytest.skip("making device nodes needs root")
    folder = tmp_path_factory.mktemp("out")
    path, node, reader, sock = _make_output(folder, kind, links)
    before = {p.name: os.lstat(p) for p in folder.iterdir()}
    written = False
    try:
        if writer == "write_atomic":
            write_atomic(path, b"new", streams=streams, symlinks=symlinks)
        elif writer == "atomic_path":
            with atomic_path(path, streams=streams, symlinks=symlinks) as tmp:
                tmp.write_bytes(b"new")
        elif streams and symlinks:  # open_append has no such options: appending replaces nothing
            fh = open_append(path)
            try:  # the caller maps write errors (JsonlSink: one line); only /dev/full's may happen here
                fh.write("new")
                fh.close()
            except OSError as exc:
                assert kind == "full" and exc.errno == errno.ENOSPC, exc
                event("append: ENOSPC")
                return
        else:
            return
        written = True
        event(f"written: {kind}")
        if kind in ("missing", "regular") and path != "-":
            content = node.read_bytes()
            assert content == (b"oldnew" if writer == "open_append" and kind == "regular" else b"new")
    except InputError as exc:
        event(f"refused: {kind}")
        assert "\n" not in str(exc)
    finally:
        if reader is not None:
            with contextlib.suppress(BlockingIOError):
                got = os.read(reader, 100)
                assert got in (b"new", b""), got
            os.close(reader)
        if sock is not None:
            sock.close()
    after = {p.name: os.lstat(p) for p in folder.iterdir()}
    assert set(after) == set(before) | ({"node"} if written and kind == "missing" else set()), (
        "temp files left"
    )
    for name, old in before.items():  # links stay links, nodes stay nodes; only a regular file is new
        new = after[name]
        assert stat.S_IFMT(new.st_mode) == stat.S_IFMT(old.st_mode), name
        if not stat.S_ISREG(old.st_mode):
            assert (new.st_ino, new.st_rdev) == (old.st_ino, old.st_rdev), name
