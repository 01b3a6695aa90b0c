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


@pytest.fixture(scope="module")
def pose():
    spec = importlib.util.spec_from_file_location(
        "peer_ultralytics_pose", SCRIPT.with_name("peer_ultralytics_pose.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    had_peer = "peer_ultralytics" in sys.modules
    sys.modules["peer_ultralytics_pose"] = module
    spec.loader.exec_module(module)  # imports peer_ultralytics from the benchmarks folder
    yield module
    del sys.modules["peer_ultralytics_pose"]
    if not had_peer:
        sys.modules.pop("peer_ultralytics", None)


def _person(pose, score, box, keypoints):
    return pose.Person(0, "person", score, box, tuple(keypoints))


def test_pose_figures_match_people_by_box_and_measure_their_keypoints(pose):
    theirs = [
        _person(pose, 0.9, (0, 0, 10, 10), [(1, 1, 0.9), (5, 5, 0.8)]),
        _person(pose, 0.6, (50, 50, 60, 60), [(51, 51, 0.5), (55, 55, 0.5)]),  # edgecnn misses this one
    ]
    ours = [
        _person(pose, 0.85, (0, 0, 10, 10), [(4, 5, 0.7), (5, 5, 0.8)]),  # first keypoint 3-4-5 px off
        _person(pose, 0.9, (200, 200, 210, 210), [(0, 0, 0), (0, 0, 0)]),  # only edgecnn
    ]
    figures = pose.PoseFigures("m.tflite", "kind", "input")
    figures.add_image(theirs, ours, 0.5)
    figures.add_image([], [], 0.5)
    assert (figures.images, figures.matched, figures.only_ultralytics, figures.only_edgecnn) == (2, 1, 1, 1)
    assert figures.matched_share == 0.5
    assert figures.mean_iou == 1.0
    assert figures.mean_distance == pytest.approx(2.5)  # (5 + 0) / 2 keypoints
    assert figures.max_distance == pytest.approx(5.0)
    assert figures.max_keypoint_score_diff == pytest.approx(0.2)
    assert figures.max_score_diff == pytest.approx(0.05)
    assert figures.to_json()["mean_distance"] == pytest.approx(2.5)


def test_pose_people_with_different_keypoint_counts_are_an_error(pose):
    a = _person(pose, 0.9, (0, 0, 10, 10), [(1, 1, 0.9)])
    b = _person(pose, 0.9, (0, 0, 10, 10), [(1, 1, 0.9), (2, 2, 0.9)])
    with pytest.raises(ValueError, match="1 keypoints against 2"):
        pose.keypoint_distances(a, b)
