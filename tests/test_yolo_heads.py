"""YOLOv8 cut at its head maps: the cut model maps whole (static check) and edgecnn's decode of its raw heads
(DFL, anchors, sigmoid, NMS) finds the objects the uncut export finds.

The model is built here with TensorFlow like Ultralytics' export (tests/yolo_tf.py); the same comparison on
real exports and photos is ``benchmarks/yolo_head_cut.py``.
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
from edgecnn.tasks.yolo_heads import LAYOUT_V5, METADATA_NAME, HeadLayout, decode_heads, head_layout
from tests.conftest import MOBILENET, error_lines, run_cli
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


def test_the_cut_models_outputs_are_the_uncut_models_head_tensors_bit_for_bit(yolo_head_exports):
    """The cut changes nothing before the heads: the uncut model, keeping every intermediate tensor, holds
    the cut model's outputs exactly (values and quantization), so every difference between their objects
    is the uncut's int8 tail (benchmarks/yolo_head_cut_agreement.py measures it on real exports)."""
    from ai_edge_litert.interpreter import Interpreter

    uncut, cut, _ = yolo_head_exports
    heads = find_heads(read_model(uncut))
    assert heads is not None
    with pytest.warns(UserWarning, match="preserve_all_tensors"):  # LiteRT's "for debugging" note
        full = Interpreter(model_path=str(uncut), experimental_preserve_all_tensors=True)
    part = Interpreter(model_path=str(cut))
    full.allocate_tensors()
    part.allocate_tensors()
    details = {d["index"]: d for d in full.get_tensor_details()}
    model = open_model(cut)
    for scene in make_scenes(4, seed=9, width=80, height=64):
        tensor, _ = model.prepare(scene.image)
        for interpreter in (full, part):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
            interpreter.invoke()
        for index, out in zip(heads.tensors, part.get_output_details(), strict=True):
            assert details[index]["quantization"] == out["quantization"]
            inside, cut_out = full.get_tensor(index), part.get_tensor(out["index"])
            assert inside.dtype == cut_out.dtype and np.array_equal(inside, cut_out)
            assert np.unique(cut_out).size > 10  # real maps, not a constant both would share


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
    with pytest.raises(UsageError, match="not a YOLOv8/YOLO11 or YOLOv5 detect export edgecnn can cut"):
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


def test_convert_cut_head_without_the_compiler_writes_the_cut_cpu_model(yolo_head_exports, tmp_path):
    """No edgetpu_compiler on PATH: the cut CPU model and the check's report are written, the error line says
    how to install the compiler or compile the cut file elsewhere (exit 8, as without --cut-head), and the cut
    file runs with predict, run and bench on the CPU with no flags, finding what the library's cut finds."""
    import cv2

    uncut, library_cut, _ = yolo_head_exports
    source = tmp_path / uncut.name
    source.write_bytes(uncut.read_bytes())
    empty = tmp_path / "no-compiler"
    empty.mkdir()
    result = run_cli("convert", source, "--edgetpu", "--cut-head", env={"PATH": str(empty)})
    assert result.code == 8, result.stderr
    (line,) = error_lines(result.stderr)
    cpu_model = tmp_path / "tiny_full_integer_quant_heads.tflite"
    report = tmp_path / "tiny_full_integer_quant_heads_edgetpu_report.json"
    assert "edgetpu_compiler is not on PATH" in line and "sudo apt-get install edgetpu-compiler" in line
    assert f"The cut CPU model {cpu_model} is written" in line
    assert f"edgecnn convert {cpu_model} --edgetpu" in line and "Traceback" not in result.stderr
    assert result.stdout.startswith(f"cut {source.name} (full-integer) -> {cpu_model}, not compiled")
    assert f"wrote {cpu_model}, {report}" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [source.name, empty.name, cpu_model.name, report.name]
    )  # no compiled model, no temporary file left
    data = json.loads(report.read_text())
    assert data["output"] is None and data["cut"] == str(cpu_model)
    assert data["check"]["compatible"] is True and data["check"]["cpu"] == 0
    model = read_model(cpu_model)
    assert head_layout(model) == HeadLayout((8, 16, 32), 16, 3)
    assert json.loads(model.appended["metadata.json"])["names"]  # labels ride along

    with_json = run_cli("convert", source, "--edgetpu", "--cut-head", "--json", env={"PATH": str(empty)})
    assert with_json.code == 8 and json.loads(with_json.stdout)["output"] is None  # rewritten in place

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, scene in enumerate(make_scenes(3, seed=11, width=80, height=64)):
        cv2.imwrite(str(frames / f"{i}.png"), scene.image)
    predicted = run_cli("predict", cpu_model, frames / "0.png", "--json", env={"PATH": str(empty)})
    assert predicted.code == 0, predicted.stderr
    objects = json.loads(predicted.stdout)["results"][0]["objects"]
    expected = open_model(library_cut).process(cv2.imread(str(frames / "0.png"))).result.objects
    assert len(objects) == len(expected) >= 10  # 68 on this scene (a seeded, untrained head finds many)
    assert {o["label"] for o in objects} == {o.label for o in expected}
    out = tmp_path / "results.jsonl"
    ran = run_cli("run", "--model", cpu_model, "--source", frames, "--jsonl", out, env={"PATH": str(empty)})
    assert ran.code == 0, ran.stderr
    assert len(out.read_text().splitlines()) == 3
    benched = run_cli("bench", cpu_model, "--runs", "3", env={"PATH": str(empty)})
    assert benched.code == 0, benched.stderr
    assert cpu_model.name in benched.stdout


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


# --- YOLOv5 ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v5_exports(tmp_path_factory) -> tuple[Path, Path, Path, Path]:
    """(YOLOv5-style full-integer export, it cut, the float32 export of the same weights, that one cut)."""
    from tests.yolo_tf import yolov5_like_tflite

    folder = tmp_path_factory.mktemp("yolov5_heads")
    paths = []
    for name, int8 in (("tiny_v5_int8", True), ("tiny_v5_float32", False)):
        uncut = folder / f"{name}.tflite"
        uncut.write_bytes(yolov5_like_tflite(int8=int8))
        cut = folder / f"{name}_heads.tflite"
        cut.write_bytes(cut_heads(read_model(uncut)))
        paths += [uncut, cut]
    return paths[0], paths[1], paths[2], paths[3]


def test_a_yolov5_export_is_cut_at_its_conv_outputs_with_its_own_anchors(v5_exports):
    from tests.yolo_tf import V5_ANCHORS

    # (At 64 px the uncut head's layout ops are small enough to map too; a real 640 px YOLOv5n's 24 CPU ops
    # and its cut's none are benchmarks/yolo_head_cut.py's figures.)
    _, cut, _, float_cut = v5_exports
    after = predict_compilation(read_model(cut))
    assert after.compatible and after.cpu == 0, after.problems
    model = read_model(cut)
    assert [list(t.shape) for t in model.outputs] == [[1, 8, 8, 24], [1, 4, 4, 24], [1, 2, 2, 24]]
    layout = head_layout(model)
    assert layout is not None and layout.layout == LAYOUT_V5 and layout.strides == (8, 16, 32)
    assert layout.classes == 3 and layout.anchors is not None
    # int8 constants hold 4 * anchor: read back within one quantization step (largest anchor 56 -> 1.8 px)
    assert np.allclose(np.concatenate(layout.anchors), np.concatenate(V5_ANCHORS), atol=1.0)
    exact = head_layout(read_model(float_cut))
    assert exact is not None and exact.anchors == V5_ANCHORS  # a float export's constants are exact


def test_yolov5_decode_is_yolov5s_own_arithmetic(v5_exports):
    """The float32 export, cut: decode_anchor_heads on its head maps == YOLOv5's reading of the uncut output."""
    from edgecnn.runtime import get_runtime
    from tests.yolo_tf import yolov5_rule

    _, _, float_uncut, float_cut = v5_exports
    runtime = get_runtime()
    whole = runtime.interpreter_class(model_path=str(float_uncut))
    heads = runtime.interpreter_class(model_path=str(float_cut))
    whole.allocate_tensors()
    heads.allocate_tensors()
    layout = head_layout(read_model(float_cut))
    assert layout is not None
    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(5):
        image = rng.uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
        for interpreter in (whole, heads):
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
            interpreter.invoke()
        expected = yolov5_rule(whole.get_tensor(whole.get_output_details()[0]["index"])[0], 0.3)
        maps = [(heads.get_tensor(d["index"])[0], 0.0, 0) for d in heads.get_output_details()]
        got = decode_heads(maps, layout, 0.3)
        order_e, order_g = np.lexsort(expected[0].T[::-1]), np.lexsort(got[0].T[::-1])
        assert len(order_g) == len(order_e)
        assert np.allclose(got[0][order_g], expected[0][order_e], atol=1e-3)
        assert np.allclose(got[1][order_g], expected[1][order_e], atol=1e-5)
        assert (got[2][order_g] == expected[2][order_e]).all()
        compared += len(order_e)
    assert compared >= 20, compared  # a test over no boxes proves nothing


def test_the_cut_yolov5_int8_model_finds_the_float_exports_objects(v5_exports):
    """Through edgecnn (letterbox, NMS): the cut full-integer model against the float32 export read by
    YOLOv5's rule (edgecnn has no layout for the uncut [1, N, 5+nc] output), same label, by IoU."""
    import cv2

    from tests.yolo_tf import yolov5_rule

    _, cut, float_uncut, _ = v5_exports
    options = DecodeOptions(object_threshold=0.3)
    heads = open_model(cut, decode=options)
    assert heads.decoder.name.startswith(
        "YOLOv5 heads [[1, 8, 8, 24], [1, 4, 4, 24], [1, 2, 2, 24]] (3 anchors"
    )
    reference = open_model(float_uncut, require_task=False)
    total = found = close = 0
    for scene in make_scenes(12, seed=5, width=80, height=64):
        tensor, transform = reference.prepare(scene.image)
        reference.invoke(tensor)
        output = reference.interpreter.get_tensor(reference.interpreter.get_output_details()[0]["index"])[0]
        xyxy, scores, ids = yolov5_rule(output, 0.3)
        tlwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        kept = np.asarray(cv2.dnn.NMSBoxesBatched(tlwh.tolist(), scores.tolist(), ids.tolist(), 0.3, 0.45))
        kept = kept.reshape(-1)
        kept = kept[scores[kept] >= 0.35]  # clear of the threshold: int8 rounding moves scores by ~0.02
        boxes = transform.to_frame(xyxy[kept]) if len(kept) else []
        ours = heads.process(scene.image).result.objects
        for box, class_id in zip(boxes, ids[kept], strict=True):
            total += 1
            best = max((iou(o.box, tuple(box)) for o in ours if o.id == class_id), default=0.0)
            found += best >= 0.9
            close += best >= 0.75
    assert total >= 50, total  # measured: 246
    # One int8 scale for all 24 channels (as the export has) rounds the box logits by up to 0.05: sizes are
    # (2 sigmoid)^2 * anchor, a few percent off. Measured: 92.3% at IoU >= 0.9, 99.6% at 0.75.
    assert close / total >= 0.98, (close, total)
    assert found / total >= 0.85, (found, total)


def test_an_older_yolov5_export_with_the_sigmoid_first_is_cut_at_its_logits(v5_exports, tmp_path):
    """CONV_2D -> LOGISTIC -> QUANTIZE -> RESHAPE (the sigmoid of the whole map, as older exports do): the cut
    keeps the conv's logits, the same maps the newer export is cut at."""
    from edgecnn.runtime import get_runtime
    from tests.yolo_tf import yolov5_like_tflite

    _, _, _, float_cut = v5_exports
    older = tmp_path / "older.tflite"
    older.write_bytes(yolov5_like_tflite(int8=False, sigmoid_first=True))
    older_cut = tmp_path / "older_heads.tflite"
    older_cut.write_bytes(cut_heads(read_model(older)))
    assert "LOGISTIC" not in {op.name for op in read_model(older_cut).operators()}
    image = np.random.default_rng(4).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    maps = []
    for path in (older_cut, float_cut):
        interpreter = get_runtime().interpreter_class(model_path=str(path))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
        interpreter.invoke()
        maps.append([interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()])
    for a, b in zip(*maps, strict=True):
        assert np.allclose(a, b, atol=1e-5)


def test_convert_cut_head_compiles_a_cut_yolov5(v5_exports, compiler_path, tmp_path):  # noqa: F811
    """The stand-in compiler (tests/fakes) maps what the static check maps: the cut YOLOv5 compiles whole, and
    the compiled model keeps the layout (anchors included) its decoder reads."""
    uncut, _, _, _ = v5_exports
    source = tmp_path / "yolov5n-int8.tflite"
    source.write_bytes(uncut.read_bytes())
    result = run_cli("convert", source, "--edgetpu", "--cut-head", "--json", env={"PATH": compiler_path})
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["check"]["compatible"] is True and data["check"]["cpu"] == 0
    compiled = read_model(tmp_path / "yolov5n-int8_heads_edgetpu.tflite")
    layout = head_layout(read_model(tmp_path / "yolov5n-int8_heads.tflite"))
    assert layout is not None and layout.layout == LAYOUT_V5
    assert compiled.metadata_entry(METADATA_NAME) == read_model(
        tmp_path / "yolov5n-int8_heads.tflite"
    ).metadata_entry(METADATA_NAME)


def test_yolov5_layout_metadata_that_does_not_fit_is_a_model_error(v5_exports):
    from edgecnn.modelfile import parse_model, with_metadata

    _, cut, _, _ = v5_exports
    good = json.loads(read_model(cut).metadata_entry(METADATA_NAME) or b"{}")
    for change in (
        {"anchors": good["anchors"][:2]},  # one scale without anchors
        {"anchors": [a[:4] for a in good["anchors"]]},  # 2 anchors per cell: 2 x 8 channels, not 24
        {"anchors": None},  # YOLOv5 without anchors
        {"classes": 4},  # 3 x 9 channels
        {"strides": [8, 16, 16]},  # the last map is 2x2, not 4x4
        {"layout": "yolov9"},
    ):
        bad = with_metadata(read_model(cut), METADATA_NAME, json.dumps({**good, **change}).encode())
        with pytest.raises(ModelError, match="does not describe its 3 outputs"):
            head_layout(parse_model(bad))
    for raw in (b'{"layout": "yolov5-anchor-heads", "strides": [8, 16, 32], "reg_max": 0, "classes": 3, '
                b'"anchors": [["x"], [1], [2]]}', b"[" * 100000):  # fmt: skip
        with pytest.raises(ModelError, match="metadata is unreadable"):
            head_layout(parse_model(with_metadata(read_model(cut), METADATA_NAME, raw)))


def test_yolov5_default_anchors_are_snapped_to_within_their_quantization_step():
    from edgecnn.tasks.yolo_head_graph import V5_DEFAULT_ANCHORS, _snap

    # what the int8 constants of real YOLOv5n exports give for stride 32 (4 * anchor, step 2.9 px)
    read = (114.543, 91.047, 155.662, 196.78, 373.0, 326.008)
    assert _snap(read, 32, 11.75 / 4) == V5_DEFAULT_ANCHORS[32]
    assert _snap(read, 32, 0.5) == read  # further than a step from the defaults: the model's own
    assert _snap(read, 64, 11.75 / 4) == read  # no default anchors at stride 64
