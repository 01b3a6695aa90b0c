"""The static Edge TPU check on YOLO heads, against what edgetpu_compiler 16 logged for real Ultralytics exports.

The expected rows below are the compiler logs' rows for the head ops (the backbone rows, all "Mapped to Edge
TPU", left out) of exports users compiled and published; the files themselves are not in this repository
(``benchmarks/edgetpu_check_agreement.py`` scores the check on them where they are fetched). Each head is
rebuilt here at the real sizes with tests/edgetpu_graphs.py.
"""

from __future__ import annotations

import json
from collections import Counter

import ai_edge_litert.schema_py_generated as schema
import numpy as np
import pytest

from edgecnn.devices.backends.edgetpu import static_check as sc
from edgecnn.devices.backends.edgetpu.model_kind import Kind, model_kind, smaller_imgsz
from edgecnn.devices.backends.edgetpu.static_check import (
    agreement_with_compiled,
    predict_compilation,
    supported_ops,
)
from edgecnn.modelfile import ModelFile, read_model
from tests.conftest import MOBILENET, MOBILENET_EDGETPU
from tests.edgetpu_graphs import Graph, yolo11_attention, yolov5_head, yolov8_head

LIM, SUB, MAP = sc.LIMITATION, sc.SUBGRAPH, sc.MAPPED

# MRezqalla/GoalBuddy Models/TPU/yolov8n_saved_model/yolov8n_full_integer_quant_edgetpu.log (Ultralytics
# 8.1.11, imgsz 320, 80 classes).
YOLOV8N_320 = {
    ("TRANSPOSE", LIM): 3,
    ("TRANSPOSE", MAP): 2,
    ("RESHAPE", LIM): 1,
    ("RESHAPE", SUB): 3,
    ("RESHAPE", MAP): 2,
    ("CONCATENATION", LIM): 1,
    ("CONCATENATION", SUB): 1,
    ("STRIDED_SLICE", LIM): 2,
    ("STRIDED_SLICE", SUB): 2,
    ("LOGISTIC", SUB): 1,
    ("QUANTIZE", SUB): 1,
    ("SOFTMAX", SUB): 1,
    ("CONV_2D", SUB): 1,
    ("MUL", SUB): 2,
    ("ADD", SUB): 2,
    ("SUB", SUB): 2,
}
# nerbivol/edgetpu_lite yolov8n_full_integer_quant_edgetpu.log (Ultralytics 8.2.23, imgsz 640, 80 classes).
YOLOV8N_640 = {
    ("TRANSPOSE", LIM): 3,
    ("TRANSPOSE", MAP): 1,
    ("RESHAPE", LIM): 3,
    ("RESHAPE", SUB): 2,
    ("RESHAPE", MAP): 1,
    ("CONCATENATION", LIM): 2,
    ("STRIDED_SLICE", LIM): 2,
    ("STRIDED_SLICE", SUB): 2,
    ("LOGISTIC", LIM): 1,
    ("QUANTIZE", LIM): 1,
    ("SOFTMAX", SUB): 1,
    ("CONV_2D", SUB): 1,
    ("MUL", SUB): 2,
    ("ADD", SUB): 2,
    ("SUB", SUB): 2,
}
# Sandhya1708/modelnew yolov5n-int8_edgetpu.log (YOLOv5 export, imgsz 640, 80 classes): the head's rows that
# are not "Mapped" (the mapped ones mix with the backbone's in the log).
YOLOV5N_640 = {
    ("RESHAPE", LIM): 3,
    ("RESHAPE", MAP): 3,
    ("CONCATENATION", LIM): 1,
    ("CONCATENATION", SUB): 1,
    ("QUANTIZE", LIM): 1,
    ("STRIDED_SLICE", SUB): 3,
    ("MUL", SUB): 6,
    ("ADD", SUB): 1,
}


def _rows(model: ModelFile) -> Counter[tuple[str, str]]:
    rows: Counter[tuple[str, str]] = Counter()
    for name, count, status in predict_compilation(model).log_table():
        rows[(name, status)] += count
    return rows


@pytest.mark.parametrize(
    ("name", "build", "expected"),
    [
        ("yolov8n 320", lambda: yolov8_head(320, dfl_transposes=2), YOLOV8N_320),
        ("yolov8n 640", lambda: yolov8_head(640), YOLOV8N_640),
        ("yolov5n 640", lambda: yolov5_head(640), YOLOV5N_640),
    ],
)
def test_yolo_head_statuses_are_the_compilers(name, build, expected):
    rows = _rows(build())
    for key, count in expected.items():
        assert rows[key] == count, (name, key, rows[key], count)
    # nothing else leaves the Edge TPU: every CPU row of the head is one the log has
    cpu = {key: c for key, c in rows.items() if key[1] != MAP}
    assert cpu == {key: c for key, c in expected.items() if key[1] != MAP}, name


def test_the_first_refused_op_decides_and_everything_after_it_follows():
    check = predict_compilation(yolov8_head(640))
    first = "the compiler stops mapping at TRANSPOSE"
    assert any(p.startswith(first) for p in check.problems), check.problems
    softmax = next(op for op in check.operators if op.name == "SOFTMAX")
    assert softmax.status == SUB and softmax.reason.startswith("after TRANSPOSE")  # never the cause
    classes = [op for op in check.operators if op.name in ("LOGISTIC", "QUANTIZE")]
    assert all(not op.edgetpu for op in classes)


def _one_op(name: str, shape: list[int], out: list[int] | None = None) -> ModelFile:
    """One op on a graph input of ``shape`` (a RESHAPE to ``out``, a TRANSPOSE swapping the last two axes)."""
    g = Graph()
    x = g.input(shape)
    const = lambda values: g.tensor([len(values)], "int32", const=values)  # noqa: E731
    if name == "RESHAPE":
        y = g.tensor(out or shape)
        g.op("RESHAPE", [x, const(out or shape)], [y])
    elif name == "TRANSPOSE":
        perm = list(range(len(shape)))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        y = g.tensor([shape[p] for p in perm])
        g.op("TRANSPOSE", [x, const(perm)], [y], version=2)
    else:
        y = g.unary(name, x, version=2 if name == "LOGISTIC" else 1)
    return g.model([y])


def _status(model: ModelFile) -> str:
    return predict_compilation(model).operators[-1].status


def test_transpose_maps_up_to_its_element_limit():
    limit = supported_ops().limits["transpose_max_elements"]
    assert limit == 65536
    assert _status(_one_op("TRANSPOSE", [1, 16, 64, 64])) == MAP  # 65536
    assert _status(_one_op("TRANSPOSE", [1, 20, 20, 144])) == MAP  # 57600: YOLOv8n 640's 20x20 map
    refused = predict_compilation(_one_op("TRANSPOSE", [1, 40, 40, 65]))  # 104000: refused in a real export
    assert refused.operators[0].status == LIM
    assert "[1, 40, 40, 65] has 104000 elements, TRANSPOSE maps up to 65536" in refused.operators[0].reason


@pytest.mark.parametrize("name", ["LOGISTIC", "QUANTIZE"])
def test_elementwise_ops_are_limited_by_their_two_innermost_dimensions(name):
    assert _status(_one_op(name, [1, 80, 2100])) == MAP  # 168000: mapped at 320 px
    assert _status(_one_op(name, [1, 80, 8400])) == LIM  # 672000: refused at 640 px
    assert _status(_one_op(name, [1, 320, 320, 16])) == MAP  # a backbone activation: 5120 per row


def test_reshape_limits_its_inner_plane_and_its_outer_axes():
    assert _status(_one_op("RESHAPE", [1, 144, 20, 20], [1, 144, 400])) == MAP
    assert _status(_one_op("RESHAPE", [1, 144, 40, 40], [1, 144, 1600])) == LIM  # 230400 in the plane
    assert _status(_one_op("RESHAPE", [1, 40, 40, 255], [1, 1600, 3, 85])) == MAP  # same size, 4-D: maps
    assert _status(_one_op("RESHAPE", [1, 80, 80, 255], [1, 6400, 3, 85])) == LIM  # an outer axis of 6400
    limit = supported_ops().limits["reshape_max_outer_axis"]
    assert _status(_one_op("RESHAPE", [1, 64, 64, 3], [1, limit, 3, 1])) == MAP
    assert _status(_one_op("RESHAPE", [1, 1, limit + 1, 3], [1, limit + 1, 3, 1])) == LIM


def test_softmax_is_limited_along_its_own_axis_only():
    assert _status(_one_op("SOFTMAX", [1, 4, 8400, 16])) == MAP  # YOLOv8's DFL: never a root cause
    assert _status(_one_op("SOFTMAX", [1, 20000])) == LIM


def test_split_into_one_piece_maps_even_on_the_batch_axis():
    """Coral's coralmicro yamnet_spectra_in: SPLIT of [1,96,64,1] along axis 0 into 1, compiled onto the TPU."""
    g = Graph()
    axis = g.tensor([], "int32", const=[0])
    x = g.input([1, 96, 64, 1])
    y = g.tensor([1, 96, 64, 1])
    options = schema.SplitOptionsT()
    options.numSplits = 1
    g.op("SPLIT", [axis, x], [y], version=2, options=options)
    assert predict_compilation(g.model([y])).operators[0].status == MAP


def test_a_batch_of_minus_one_in_the_signatures_alone_compiles():
    g = Graph()
    x = g.input([1, 8, 8, 4])
    y = g.conv(x, [1, 8, 8, 4])
    for t in (x, y):
        g.tensors[t].shapeSignature = np.asarray([-1, 8, 8, 4], dtype=np.int32)
    check = predict_compilation(g.model([y]))
    assert check.compatible and check.failure is None and check.mapped == 1


def test_agreement_scores_the_compilers_log_rows():
    source, compiled = read_model(MOBILENET), read_model(MOBILENET_EDGETPU)
    # the compiled file keeps no CPU op, so the true log maps every op of the source
    truth = [(op.name, op.count, MAP) for op in source.operators()]
    assert agreement_with_compiled(source, compiled, truth).log_exact is True
    wrong = [*truth[:-1], (truth[-1][0], truth[-1][1], SUB)]
    result = agreement_with_compiled(source, compiled, wrong)
    assert result.exact and result.log_exact is False
    assert result.log_compiler_only == {f"{truth[-1][0]}: {SUB}": truth[-1][1]}
    assert agreement_with_compiled(source, compiled).log_exact is None


# --- what the file is, and what to do in the tool that made it --------------------------------------------


def _ultralytics(model: ModelFile, imgsz: int) -> ModelFile:
    meta = {"author": "Ultralytics", "task": "detect", "imgsz": [imgsz, imgsz], "names": {"0": "person"}}
    model.appended = {"metadata.json": json.dumps(meta).encode()}
    return model


def _float_conv(weights: str) -> ModelFile:
    """A CONV_2D on float input with ``weights`` constants: int8 (dynamic-range), float16 (behind a
    DEQUANTIZE, as TensorFlow writes it) or float32."""
    g = Graph()
    x = g.input([1, 8, 8, 3], "float32")
    if weights == "float16":
        half = g.tensor([4, 3, 3, 3], "float32")
        g.tensors[half].type = schema.TensorType.FLOAT16
        w = g.tensor([4, 3, 3, 3], "float32")
        g.op("DEQUANTIZE", [half], [w], version=2)
    else:
        w = g.tensor([4, 3, 3, 3], weights, const=np.zeros((4, 3, 3, 3)))
    b = g.tensor([4], "float32", const=np.zeros(4))
    y = g.tensor([1, 8, 8, 4], "float32")
    options = schema.Conv2DOptionsT()
    options.strideH = options.strideW = options.dilationHFactor = options.dilationWFactor = 1
    g.op("CONV_2D", [x, w, b], [y], version=2, options=options)
    return g.model([y])


def test_model_kinds():
    assert model_kind(yolov8_head(320)).kind is Kind.FULL_INTEGER
    assert model_kind(yolov8_head(320)).imgsz == 320
    assert model_kind(_float_conv("int8")).kind is Kind.DYNAMIC_RANGE
    assert model_kind(_float_conv("float16")).kind is Kind.FLOAT16
    assert model_kind(_float_conv("float32")).kind is Kind.FLOAT32
    g = Graph()
    x = g.unary("QUANTIZE", g.input([1, 8, 8, 3], "float32"))
    y = g.unary("DEQUANTIZE", g.conv(x, [1, 8, 8, 4]), dtype="float32", version=2)
    assert model_kind(g.model([y])).kind is Kind.INTEGER_FLOAT_IO


def test_a_dynamic_range_ultralytics_export_gets_one_line_to_re_export_it():
    check = predict_compilation(_ultralytics(_float_conv("int8"), 320))
    assert check.kind is not None and check.kind.startswith("dynamic-range quantized: int8 weights but float")
    assert check.kind.endswith("(an Ultralytics export)")
    assert check.advice == [
        "re-export full-integer from Ultralytics: yolo export model=best.pt format=edgetpu imgsz=320 "
        "data=your_data.yaml (it compiles *_full_integer_quant.tflite), or format=tflite int8=True imgsz=320 "
        "data=your_data.yaml and give that *_full_integer_quant.tflite to edgecnn convert --edgetpu"
    ]
    text = "\n".join(check.format_lines())
    assert "edgecnn convert --quantize int8" not in text and "  model: dynamic-range" in text
    assert check.problems[0] == "1 of 1 ops work on float tensors, which the Edge TPU does not run."


def test_a_non_ultralytics_float_model_gets_the_tensorflow_fix():
    check = predict_compilation(_float_conv("float32"))
    assert check.advice[0].startswith("re-convert full-integer: TensorFlow's converter with a representative")


def test_only_size_limits_in_the_head_suggest_a_smaller_imgsz():
    assert (
        smaller_imgsz(640, 14.06) == 160 and smaller_imgsz(640, 1.0) == 640 and smaller_imgsz(64, 100) is None
    )
    check = predict_compilation(_ultralytics(yolov8_head(640), 640))
    assert check.smaller_imgsz == 160
    assert check.advice[0].startswith("12 op(s) stay on the CPU only for their size")
    assert "yolo export model=best.pt format=edgetpu imgsz=160" in check.advice[0]
    assert not any(a.startswith("TRANSPOSE of") for a in check.advice)  # folded into the one line
    assert "edgecnn convert MODEL.tflite --edgetpu --cut-head" in check.advice[1]  # the alternative
    at_160 = predict_compilation(_ultralytics(yolov8_head(160), 160))
    assert at_160.compatible and at_160.cpu == 0  # the estimate holds on the head rebuilt at that size
    plain = predict_compilation(yolov5_head(640))  # no Ultralytics metadata: said without its CLI
    assert plain.smaller_imgsz == 192 and "re-export the model for a 192x192 input" in plain.advice[0]


# --- YOLO11: its attention block (C2PSA) and the grouped convolution that makes CONV_2D v6 ----------------
# Compiled YOLO11n exports users published without their source (benchmarks/figures/edgetpu_check_agreement.json
# lists them): at 640 px the Edge TPU subgraph ends at C2PSA's TRANSPOSE of [1,20,20,256] with the backbone
# mapped; at 192 and 256 px at the SPLIT of the attention heads along axis 0.


def _split(shape: list[int], axis: int) -> ModelFile:
    g = Graph()
    x = g.input(shape)
    pieces = shape[axis]
    outs = [g.tensor([1 if a == axis else d for a, d in enumerate(shape)]) for _ in range(pieces)]
    options = schema.SplitOptionsT()
    options.numSplits = pieces
    g.op("SPLIT", [g.tensor([], "int32", const=[axis]), x], outs, version=2, options=options)
    return g.model(outs)


def test_split_along_the_outermost_axis_of_a_3d_tensor_is_refused():
    refused = predict_compilation(_split([2, 36, 32], 0)).operators[0]  # YOLO11n 192 px: on the CPU
    assert refused.status == LIM and refused.reason == "splits [2, 36, 32] along its outermost axis"
    assert predict_compilation(_split([1, 36, 2], 2)).operators[0].status == MAP  # an inner axis maps


def test_the_compiler_keeps_the_segment_that_writes_the_most_elements():
    """YOLO11n 640: the backbone before the refused attention maps, not the neck after it, which has more ops."""
    check = predict_compilation(yolo11_attention(640))
    assert check.operators[0].status == MAP and all(check.operators[i].status == MAP for i in range(6))
    assert check.mapped == 6  # the 6 backbone convolutions; the 13 neck convolutions follow the attention
    assert Counter(st.name for st in check.operators if st.status == SUB)["CONV_2D"] == 13


def test_a_yolo11_attention_block_is_named_with_the_input_size_it_would_need():
    at_640 = _ultralytics(yolo11_attention(640), 640)
    check = predict_compilation(at_640)
    ends = [
        p for p in check.problems if p.startswith("the Edge TPU subgraph ends in the model's attention block")
    ]
    assert len(ends) == 1 and "in YOLO11 its C2PSA block): TRANSPOSE (op 6) is refused" in ends[0]
    assert check.advice[0].startswith(
        "the attention block (ops 6-20, YOLO11's C2PSA) does not map at any input size: SPLIT splits "
        "[2, 400, 32] along its outermost axis"
    )
    assert (
        "its TRANSPOSE (op 6) would fit at imgsz 512 or less" in check.advice[0]
    )  # 102400 -> 65536 elements
    assert not any(
        "--cut-head" in a for a in check.advice
    )  # a cut at the head leaves the attention on the CPU
    assert not any(a.startswith(("SPLIT:", "FULLY_CONNECTED:", "TRANSPOSE of")) for a in check.advice)
    at_256 = predict_compilation(_ultralytics(yolo11_attention(256), 256))
    assert "SPLIT (op 12) is refused" in " ".join(at_256.problems)  # the TRANSPOSE fits, the heads do not
    assert "would fit at imgsz" not in at_256.advice[0]


def test_an_attention_block_refused_only_for_its_size_gets_the_input_size_that_fits():
    check = predict_compilation(_ultralytics(yolo11_attention(640, per_head=False), 640))
    assert check.smaller_imgsz == 512
    assert check.advice[0] == (
        "the attention block (ops 6-14, YOLO11's C2PSA) stays on the CPU only for its size (TRANSPOSE (op 6)): "
        "at imgsz 512 or less (from 640) it fits: yolo export model=best.pt format=edgetpu imgsz=512 (an "
        "estimate from the size limits: check the new export again)"
    )
    assert predict_compilation(yolo11_attention(512, per_head=False)).compatible  # and it holds at 512


def _grouped_v6(*, dynamic_range: bool = False) -> ModelFile:
    """Two CONV_2D sharing their op code at version 6 because one of them is grouped (filter [8,3,3,1] on 8
    channels, YOLO11's positional encoding as Ultralytics' format=tflite writes it)."""
    g = Graph()
    dtype = "float32" if dynamic_range else "int8"
    x = g.input([1, 8, 8, 8], dtype)
    options = schema.Conv2DOptionsT()
    options.strideH = options.strideW = options.dilationHFactor = options.dilationWFactor = 1
    for cin in (8, 1):
        w = g.tensor([8, 3, 3, cin], "int8", const=np.zeros((8, 3, 3, cin)))
        y = g.tensor([1, 8, 8, 8], dtype)
        g.op("CONV_2D", [x, w, g.tensor([8], "int32", const=np.zeros(8))], [y], version=6, options=options)
        x = y
    return g.model([x])


def test_conv_2d_v6_is_traced_to_its_grouped_convolution_and_the_export_that_avoids_it():
    check = predict_compilation(_ultralytics(_grouped_v6(), 320))
    assert check.failure is not None and "'CONV_2D' version '6'" in check.failure
    assert check.problems[0].startswith(
        "CONV_2D v6 comes from 1 grouped convolution(s) (op 1: filter [8, 3, 3, 1] on [1, 8, 8, 8], 8 groups"
    )
    assert check.advice[0].startswith(
        "export with Ultralytics 8.3.149 or newer as yolo export model=best.pt format=edgetpu imgsz=320: for "
        "format=edgetpu it converts with onnx2tf's disable_group_convolution"
    )
    assert not any("TensorFlow 2.5-2.8" in a for a in check.advice)  # the TensorFlow version is not the cause
    plain = predict_compilation(_grouped_v6())
    assert "onnx2tf --disable_group_convolution" in plain.advice[0]
    dynamic = predict_compilation(_ultralytics(_grouped_v6(dynamic_range=True), 640))
    assert dynamic.advice[0].startswith(
        "re-export full-integer from Ultralytics 8.3.149 or newer: yolo export model=best.pt format=edgetpu "
        "imgsz=640 data=your_data.yaml"
    )
    assert "format=tflite int8=True keeps CONV_2D v6" in dynamic.advice[0]
    assert not any(a.startswith("export with Ultralytics") for a in dynamic.advice)  # said once


def test_agreement_names_where_the_check_and_the_compiler_end_the_edge_tpu_subgraph():
    def build(compiled: bool) -> ModelFile:
        g = Graph()
        x = g.input([1, 8, 8, 4])
        if compiled:  # what edgetpu_compiler writes: the mapped part as one custom op
            y = g.tensor([1, 8, 8, 4])
            g.op("CUSTOM", [x], [y], custom="edgetpu-custom-op")
        else:
            y = g.conv(x, [1, 8, 8, 4])
        return g.model([g.conv(g.unary("LEAKY_RELU", y), [1, 8, 8, 4])])

    result = agreement_with_compiled(build(False), build(True))
    assert result.stop_check == result.stop_compiler == "LEAKY_RELU [1, 8, 8, 4]" and result.same_stop
    assert result.to_dict()["same_stop"] is True
