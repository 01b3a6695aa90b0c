"""The matching behind ``benchmarks/peer_ultralytics.py`` (edgecnn predict vs Ultralytics' predict).

The comparison itself needs Ultralytics and PyTorch, which live in their own virtualenv and never in
edgecnn's; here only the part that decides which objects agree is checked, on hand-made boxes whose IoU
is known exactly.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "peer_ultralytics.py"


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("peer_ultralytics", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_ultralytics"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["peer_ultralytics"]


def test_iou_of_known_boxes(peer):
    assert peer.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert peer.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert peer.iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no area
    # the same zero-width box (a badly quantized end-to-end export), up to edgecnn's 0.1 px rounding
    assert peer.iou((195.4, 330.4, 195.4, 991.1), (195.43, 330.36, 195.43, 991.06)) == 1.0
    assert peer.iou((195.4, 330.4, 195.4, 991.1), (195.6, 330.4, 195.6, 991.1)) == 0.0


def test_match_takes_the_best_pair_first_and_never_crosses_classes(peer):
    found = peer.Found
    theirs = [found(0, "person", 0.9, (0, 0, 10, 10)), found(1, "car", 0.8, (100, 100, 140, 120))]
    ours = [
        found(0, "person", 0.7, (1, 0, 11, 10)),  # IoU 0.818 with their person
        found(0, "person", 0.9, (0, 0, 10, 10)),  # IoU 1.0: taken first, the other one stays unmatched
        found(2, "bus", 0.8, (100, 100, 140, 120)),  # same box as their car, another class
    ]
    pairs, only_theirs, only_ours = peer.match(ours, theirs, 0.5)
    assert pairs == [(0, 1, 1.0)]
    assert only_theirs == {1}
    assert only_ours == {0, 2}


def test_match_threshold_is_inclusive_and_excludes_below(peer):
    found = peer.Found
    theirs = [found(0, "a", 0.5, (0, 0, 10, 10))]
    half = [found(0, "a", 0.5, (0, 0, 10, 5))]  # IoU exactly 0.5
    assert peer.match(half, theirs, 0.5)[0] == [(0, 0, 0.5)]
    assert peer.match(half, theirs, 0.51)[0] == []


def test_a_missing_edgecnn_cli_is_one_error(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, SCRIPT, model, "--images", tmp_path, "--edgecnn", tmp_path / "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "--edgecnn" in proc.stderr and "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr
