"""YOLOv8 cut at its head maps: the cut model maps whole (static check) and edgecnn's decode of its raw heads
(DFL, anchors, sigmoid, NMS) finds the objects the uncut export finds.

The model is built here with TensorFlow like Ultralytics' export (tests/yolo_tf.py); the same comparison on
real yolo_head_exports and photos is ``benchmarks/yolo_head_cut.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgecnn.converters.yolo_head_cut import cut_heads, find_heads
from edgecnn.devices.backends.edgetpu.static_check import predict_compilation
from edgecnn.errors import ModelError, UsageError
from edgecnn.model import open_model
from edgecnn.modelfile import read_model
from edgecnn.tasks import DecodeOptions
from edgecnn.tasks.yolo_heads import METADATA_NAME, HeadLayout, decode_heads, head_layout
from tests.conftest import MOBILENET, run_cli
from tests.detectors import iou, make_scenes
from tests.test_convert_tflite import compiler_path  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def yolo_head_exports(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(the full-integer export, it cut at its heads, the float32 export of the same weights)."""
    from tests.yolo_tf import yolov8_like_tflite

    folder = tmp_path_factory.mktemp("yolo_heads")
    uncut = folder / "tiny_full_integer_quant.tflite"
    uncut.write_bytes(yolov8_like_tflite())
    cut = folder / "tiny_heads.tflite"
    cut.write_bytes(cut_heads(read_model(uncut)))
    reference = folder / "tiny_float32.tflite"
    reference.write_bytes(yolov8_like_tflite(int8=False))
    return uncut, cut, reference


def test_the_cut_model_ends_at_the_head_maps_and_maps_whole(yolo_head_exports):
    uncut, cut, _ = yolo_head_exports
    before, after = predict_compilation(read_model(uncut)), predict_compilation(read_model(cut))
    assert not before.compatible  # the export's decode (BATCH_MATMUL, float-sized layout ops) stays off
    assert after.compatible and after.cpu == 0, after.problems
    model = read_model(cut)
    assert [list(t.shape) for t in model.outputs] == [[1, 8, 8, 67], [1, 4, 4, 67], [1, 2, 2, 67]]
    assert head_layout(model) == HeadLayout((8, 16, 32), 16, 3)
    assert json.loads(model.appended["metadata.json"])["names"]  # Ultralytics' names still ride along


def test_decoding_the_heads_finds_the_float_exports_objects(yolo_head_exports):
    """The float32 export is the reference: the cut model + edgecnn's float decode of its int8 heads finds its
    objects (same label, IoU >= 0.9); the full-integer export's own int8 decode (DFL and boxes in int8, boxes
    and scores sharing one output scale) is the coarser of the two."""
    uncut, cut, reference = yolo_head_exports
    options = DecodeOptions(object_threshold=0.3)
    ref, full, heads = (open_model(p, decode=options) for p in (reference, uncut, cut))
    assert heads.decoder.name.startswith(
        "YOLO heads [[1, 8, 8, 67], [1, 4, 4, 67], [1, 2, 2, 67]] (DFL 16 bins"
    )
    total = by_heads = by_full = 0
    for scene in make_scenes(12, seed=5, width=80, height=64):  # letterboxed, as real frames are
        ours, theirs = heads.process(scene.image).result.objects, full.process(scene.image).result.objects
        for obj in ref.process(scene.image).result.objects:
            total += 1
            by_heads += any(o.label == obj.label and iou(o.box, obj.box) >= 0.9 for o in ours)
            by_full += any(o.label == obj.label and iou(o.box, obj.box) >= 0.9 for o in theirs)
    assert total >= 100, total  # measured: 962 objects
    assert by_heads / total >= 0.99, (by_heads, total)  # measured: 99.9%
    assert by_heads > by_full  # measured: the full-integer export matches 0% at IoU 0.9 (90% at 0.5)


def test_decode_heads_is_the_dfl_and_anchor_arithmetic():
    layout = HeadLayout((8,), 4, 1)
    head = np.full((1, 2, 4 * 4 + 1), -30.0, dtype=np.float32)  # two cells; every bin unlikely...
    head[0, 1, [0 * 4 + 1, 1 * 4 + 2, 2 * 4 + 0, 3 * 4 + 3]] = 30.0  # ...but l=1, t=2, r=0, b=3 cells
    head[0, 1, 16] = 2.0  # class logit of the second cell: sigmoid 0.88
    xyxy, scores, ids = decode_heads([(head, 0.0, 0)], layout, 0.5)
    assert ids.tolist() == [0] and scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    # the second cell's anchor is (1.5, 0.5) cells: x1 = (1.5-1)*8, y1 = (0.5-2)*8, x2 = 1.5*8, y2 = (0.5+3)*8
    assert xyxy[0] == pytest.approx([4.0, -12.0, 12.0, 28.0], abs=1e-4)
    quantized = np.round(head / 0.5).clip(-128, 127).astype(np.int8)  # scale 0.5, zero point 0
    q_xyxy, q_scores, _ = decode_heads([(quantized, 0.5, 0)], layout, 0.5)
    assert q_xyxy[0] == pytest.approx(xyxy[0], abs=1e-3) and q_scores[0] == pytest.approx(scores[0])
    assert decode_heads([(quantized, 0.5, 0)], layout, 0.9)[1].size == 0  # below the threshold: nothing


def test_a_model_that_is_not_a_yolov8_export_is_refused(tmp_path):
    assert find_heads(read_model(MOBILENET)) is None
    with pytest.raises(UsageError, match="not a YOLOv8/YOLO11 detect export edgecnn can cut"):
        cut_heads(read_model(MOBILENET))


def test_broken_layout_metadata_is_a_model_error(yolo_head_exports):
    from edgecnn.modelfile import with_metadata

    _, cut, _ = yolo_head_exports
    model = read_model(cut)
    bad = with_metadata(
        model, METADATA_NAME, b'{"layout": "yolov8-dfl-heads", "strides": [8], "reg_max": 16, "classes": 3}'
    )
    from edgecnn.modelfile import parse_model

    with pytest.raises(ModelError, match="does not describe its 3 outputs"):
        head_layout(parse_model(bad))
    wrong_classes = b'{"layout": "yolov8-dfl-heads", "strides": [8, 16, 32], "reg_max": 16, "classes": 80}'
    with pytest.raises(ModelError, match="does not describe its 3 outputs"):
        head_layout(parse_model(with_metadata(read_model(cut), METADATA_NAME, wrong_classes)))
    with pytest.raises(ModelError, match="metadata is unreadable"):
        head_layout(parse_model(with_metadata(read_model(cut), METADATA_NAME, b"[1, 2]")))


def test_convert_cut_head_compiles_the_cut_model(yolo_head_exports, compiler_path, tmp_path):  # noqa: F811
    uncut, _, _ = yolo_head_exports
    source = tmp_path / uncut.name
    source.write_bytes(uncut.read_bytes())
    result = run_cli("convert", source, "--edgetpu", "--cut-head", "--json", env={"PATH": compiler_path})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["check"]["compatible"] is True and data["check"]["cpu"] == 0
    cpu_model = tmp_path / "tiny_full_integer_quant_heads.tflite"
    compiled = tmp_path / "tiny_full_integer_quant_heads_edgetpu.tflite"
    assert data["output"] == str(compiled) and data["cut"] == str(cpu_model)
    assert head_layout(read_model(compiled)) is not None and head_layout(read_model(cpu_model)) is not None
    assert os.path.getsize(cpu_model) < os.path.getsize(source)


def test_a_compiler_that_drops_metadata_still_gives_a_decodable_model(yolo_head_exports, tmp_path):
    """The real compiler's treatment of metadata is not known here: what it may drop is put back."""
    from edgecnn.converters.tflite_edgetpu import _carry_metadata
    from edgecnn.modelfile import parse_model

    _, cut, _ = yolo_head_exports
    source = read_model(cut)
    bare = parse_model(source.data)
    bare.model.metadata = [m for m in bare.model.metadata or [] if m.name != METADATA_NAME.encode()]
    from edgecnn.modelfile import with_metadata

    stripped = parse_model(with_metadata(bare, "other", b"x"))
    stripped.appended = {}
    assert head_layout(stripped) is None
    carried = parse_model(_carry_metadata(source, stripped.data, tmp_path / "c.tflite"))
    assert head_layout(carried) == head_layout(source) and carried.appended == source.appended
