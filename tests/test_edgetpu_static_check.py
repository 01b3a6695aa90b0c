"""The static Edge TPU check against what the real ``edgetpu_compiler`` did (tests/data/edgetpu/README.md).

Ground truth in the repository: Coral's compiled MobileNet pair (tests/data/coral/) and compiler-log
excerpts quoted from public issues (tests/data/edgetpu/*.log), each reproduced here as a graph built with
the flatbuffer object API (tests/edgetpu_graphs.py). The agreement is printed in the test summary. The
wider measure, on Coral's 14 published pairs, is ``benchmarks/edgetpu_check_agreement.py``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import ai_edge_litert.schema_py_generated as schema
import pytest

from edgecnn.devices.backends.edgetpu import static_check as sc
from edgecnn.devices.backends.edgetpu.compiler import parse_summary
from edgecnn.devices.backends.edgetpu.static_check import (
    agreement_with_compiled,
    predict_compilation,
    supported_ops,
)
from edgecnn.modelfile import ModelFile, read_model
from tests.conftest import MOBILENET, MOBILENET_EDGETPU, ROOT
from tests.edgetpu_graphs import Graph

LOGS = ROOT / "tests" / "data" / "edgetpu"
AGREEMENT: dict[str, bool] = {}  # printed by tests/conftest.py's terminal summary


def _unet(side: int) -> ModelFile:
    """issue #31: Conv2D+BN+ReLU -> MaxPool -> UpSampling2D(bilinear) -> Conv2D(1x1) -> sigmoid."""
    g = Graph()
    x = g.input([1, side, side, 3])
    x = g.conv(x, [1, side, side, 32])
    pooled = g.tensor([1, side // 2, side // 2, 32])
    pool = schema.Pool2DOptionsT()
    pool.strideH = pool.strideW = pool.filterHeight = pool.filterWidth = 2
    g.op("MAX_POOL_2D", [x], [pooled], version=2, options=pool)
    x = g.resize(pooled, (side, side))
    x = g.conv(x, [1, side, side, 1])
    return g.model([g.unary("LOGISTIC", x, version=2)])


def _upsample_resize_leaky() -> ModelFile:
    """issue #597: UpSampling2D(2) -> Conv2D(stride 2) -> resize x2 bilinear -> LeakyReLU."""
    g = Graph()
    x = g.input([1, 512, 512, 3])
    x = g.resize(x, (1024, 1024), "RESIZE_NEAREST_NEIGHBOR")
    x = g.conv(x, [1, 512, 512, 6], stride=2)
    x = g.resize(x, (1024, 1024))
    return g.model([g.unary("LEAKY_RELU", x, version=2)])


def _with_op_version(name: str, version: int) -> Callable[[], ModelFile]:
    def build() -> ModelFile:
        g = Graph()
        x = g.input([1, 16, 16, 8])
        x = g.conv(x, [1, 16, 16, 8], version=version if name == "CONV_2D" else 3)
        if name == "TRANSPOSE_CONV":
            w = g.tensor([8, 3, 3, 8], const=[0] * (8 * 9 * 8))
            shape = g.tensor([4], "int32", const=[1, 32, 32, 8])
            y = g.tensor([1, 32, 32, 8])
            g.op("TRANSPOSE_CONV", [shape, w, x], [y], version=version)
            x = y
        if name == "EXP":
            x = g.unary("EXP", x, version=version)
        return g.model([x])

    return build


GRAPHS: dict[str, Callable[[], ModelFile]] = {
    "issue31_unet_512": lambda: _unet(512),
    "issue31_unet_128": lambda: _unet(128),
    "issue597_upsample_resize_leakyrelu": _upsample_resize_leaky,
    "issue631_conv2d_v6": _with_op_version("CONV_2D", 6),
    "issue845_transpose_conv_v4": _with_op_version("TRANSPOSE_CONV", 4),
    "libedgetpu71_exp_v2": _with_op_version("EXP", 2),
}


def test_every_log_in_the_corpus_has_a_graph():
    assert sorted(p.stem for p in LOGS.glob("*.log")) == sorted(GRAPHS)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_check_prints_the_compilers_status_for_each_quoted_op(name):
    text = (LOGS / f"{name}.log").read_text()
    check = predict_compilation(GRAPHS[name]())
    predicted = {(op, status): count for op, count, status in check.log_table()}
    expected = parse_summary(text).operations
    errors = re.findall(r"ERROR: (Didn't find op for builtin opcode '\w+' version '\d+')", text)
    ok = True
    for row in expected:  # every row the log quotes, with the same count and status
        ok &= predicted.get((row.operator, row.status)) == row.count
    if "# others: cpu" in text:  # "only X runs on the TPU": nothing else may map
        quoted = {row.operator for row in expected if row.mapped}
        ok &= all(not op.edgetpu for op in check.operators if op.name not in quoted)
    for error in errors:  # the compiler refused the model: the check must say so, in its words
        ok &= check.failure is not None and error in check.failure and check.mapped == 0
    AGREEMENT[f"log {name}"] = ok
    assert expected or errors, f"{name}.log quotes neither a status row nor an error"
    assert ok, "\n".join(check.format_lines())


def test_coral_pair_in_the_repository_is_exact():
    result = agreement_with_compiled(read_model(MOBILENET), read_model(MOBILENET_EDGETPU))
    AGREEMENT["pair mobilenet_v1_0.25_128_quant"] = result.exact
    assert result.exact, result
    check = predict_compilation(read_model(MOBILENET))
    assert check.compatible and check.cpu == 0 and check.mapped == 31
    assert check.runtime == 14 and check.min_runtime == 10  # plain CONV/DEPTHWISE/SOFTMAX: -m 10 works


def test_agreement_script_prints_n_of_m(tmp_path):
    shutil.copy(MOBILENET, tmp_path / "mnv1.tflite")
    shutil.copy(MOBILENET_EDGETPU, tmp_path / "mnv1_edgetpu.tflite")
    script = ROOT / "benchmarks" / "edgetpu_check_agreement.py"
    proc = subprocess.run([sys.executable, script, tmp_path], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "1 of 1 models exact (CPU ops)"
    assert proc.stdout.splitlines()[1] == "0 of 0 compiler logs exact (per-op statuses)"
    empty = subprocess.run(
        [sys.executable, script, tmp_path / "x"], capture_output=True, text=True, check=False
    )
    assert empty.returncode == 2 and "no X.tflite / X_edgetpu.tflite pairs" in empty.stderr


# --- the partition model on graphs that isolate one rule each ------------------------------------------


def test_leading_cpu_ops_do_not_stop_the_edge_tpu_subgraph():
    """movenet's pattern: CAST/QUANTIZE on the CPU first, then everything after them maps."""
    g = Graph()
    x = g.input([1, 32, 32, 3], "uint8")
    x = g.unary("CAST", x, dtype="float32")
    x = g.unary("QUANTIZE", x)
    x = g.conv(x, [1, 32, 32, 8])
    check = predict_compilation(g.model([g.unary("RELU", x, version=2)]))
    assert [(op.name, op.status) for op in check.operators] == [
        ("CAST", sc.NOT_SUPPORTED),
        ("QUANTIZE", sc.DATA_TYPE),
        ("CONV_2D", sc.MAPPED),
        ("RELU", sc.MAPPED),
    ]
    assert not any("stops mapping" in p for p in check.problems)


def test_ops_after_a_cpu_op_need_a_second_subgraph_but_other_branches_keep_mapping():
    """deeplab's pattern: a resize the TPU cannot do ends its path; a branch beside it still maps."""
    g = Graph()
    x = g.input([1, 33, 33, 8])
    a = g.conv(x, [1, 33, 33, 8])
    pooled = g.tensor([1, 1, 1, 8])
    g.op("MEAN", [a, g.tensor([2], "int32", const=[1, 2])], [pooled], version=2)
    up = g.resize(pooled, (33, 33))  # x33: more than the Edge TPU scales
    after = g.conv(up, [1, 33, 33, 8])
    beside = g.conv(a, [1, 33, 33, 8])
    check = predict_compilation(g.model([after, beside]))
    status = [(op.name, op.status) for op in check.operators]
    assert status == [
        ("CONV_2D", sc.MAPPED),
        ("MEAN", sc.MAPPED),
        ("RESIZE_BILINEAR", sc.LIMITATION),
        ("CONV_2D", sc.SUBGRAPH),
        ("CONV_2D", sc.MAPPED),
    ]
    assert "the compiler stops mapping at RESIZE_BILINEAR (op 2)" in " ".join(check.problems)
    assert any("RESIZE_BILINEAR 1x1 -> 33x33 exceeds what the Edge TPU maps" in a for a in check.advice)
    assert (
        "1 op(s) (CONV_2D x1) run on the CPU only because they follow RESIZE_BILINEAR (op 2)"
        in check.advice[-1]
    )


def test_a_second_subgraph_stays_on_the_cpu():
    g = Graph()
    x = g.input([1, 8, 8, 4])
    check = predict_compilation(g.model([g.unary("RELU", x, version=2)], extra_subgraphs=1))
    assert check.log_table() == [("RELU", 1, sc.MAPPED), ("RELU", 1, sc.SUBGRAPH)]
    assert "2 subgraphs (control flow)" in check.problems[0]


def test_runtime_and_the_m_flag_follow_the_mapped_ops():
    g = Graph()
    x = g.input([1, 8, 8, 4])
    x = g.conv(x, [1, 8, 8, 4])
    plain = predict_compilation(g.model([x]))
    assert (plain.runtime, plain.min_runtime) == (14, 10)
    assert "compile with -m 10 for an older libedgetpu" in "\n".join(plain.format_lines())
    perm = g.tensor([4], "int32", const=[0, 2, 1, 3])
    y = g.tensor([1, 8, 8, 4])
    g.op("TRANSPOSE", [x, perm], [y], version=2)
    newer = predict_compilation(g.model([y]))
    assert (newer.runtime, newer.min_runtime) == (14, supported_ops().runtimes["TRANSPOSE"]) == (14, 14)
    assert "-m" not in "\n".join(newer.format_lines())


def test_float_model_is_refused_like_the_compiler_does():
    g = Graph()
    x = g.input([1, 8, 8, 4], "float32")
    check = predict_compilation(g.model([g.unary("RELU", x, dtype="float32")]))
    assert check.failure == "Model not quantized" and check.mapped == 0
    assert check.log_table() == [("RELU", 1, sc.DATA_TYPE)]


def test_per_op_limits_name_the_op_and_the_fix():
    g = Graph()
    x = g.input([1, 8, 8, 4])
    pool = schema.Pool2DOptionsT()
    pool.strideH = pool.strideW = pool.filterHeight = pool.filterWidth = 2
    pool.fusedActivationFunction = schema.ActivationFunctionType.RELU
    y = g.tensor([1, 4, 4, 4])
    g.op("AVERAGE_POOL_2D", [x], [y], version=2, options=pool)
    check = predict_compilation(g.model([y]))
    assert check.log_table() == [("AVERAGE_POOL_2D", 1, sc.LIMITATION)]
    assert check.advice == [
        "AVERAGE_POOL_2D: apply the activation as its own op (RELU after AVERAGE_POOL_2D), not fused into it"
    ]


def test_a_runtime_mismatch_at_prepare_names_the_m_flag():
    from edgecnn.devices.backends.edgetpu.probe import runtime_fix

    # libedgetpu's words (jsk-ros-pkg/coral_usb_ros#78) for a 16.0-compiled model on runtime 13
    detail = (
        "Failed to prepare for TPU. Failed precondition: Package requires runtime version (14), which is newer "
        "than this runtime version (13).Node number 0 (edgetpu-custom-op) failed to prepare."
    )
    assert "recompile with edgetpu_compiler -m 13" in runtime_fix(detail)
    assert runtime_fix("something else") == "Update libedgetpu or recompile the model for it"


def test_inspect_json_carries_the_predicted_compiler_log():
    import json

    from tests.conftest import run_cli

    result = run_cli("inspect", MOBILENET, "--target", "edgetpu", "--json")
    assert result.code == 0, result.stderr
    check = json.loads(result.stdout)["extra"]["edgetpu"]
    assert check["log"][0] == {"operator": "CONV_2D", "count": 15, "status": "Mapped to Edge TPU"}
    assert (check["runtime"], check["min_runtime"], check["failure"]) == (14, 10, None)


def test_a_small_segment_before_a_cpu_op_loses_to_the_larger_rest():
    """google-coral/edgetpu #461: supported ops near the input stay on the CPU beside a large mapped rest."""
    g = Graph()
    x = g.input([1, 16, 16, 8])
    x = g.unary("RELU", x, version=2)  # a small segment at the input
    x = g.unary("LEAKY_RELU", x)  # not an Edge TPU op: splits the graph
    for _ in range(3):
        x = g.conv(x, [1, 16, 16, 8])
    check = predict_compilation(g.model([x]))
    assert check.log_table() == [
        ("RELU", 1, sc.SUBGRAPH),
        ("LEAKY_RELU", 1, sc.NOT_SUPPORTED),
        ("CONV_2D", 3, sc.MAPPED),
    ]
    assert check.operators[0].reason == "before LEAKY_RELU (op 1)"
    assert (
        "1 op(s) (RELU x1) run on the CPU only because they come before LEAKY_RELU (op 1)" in check.advice[-1]
    )


def test_dequantize_is_a_data_type_problem_like_the_compiler_says():
    """google-coral/edgetpu #490: 'DEQUANTIZE  2  Operation is working on an unsupported data type'."""
    g = Graph()
    x = g.input([1, 8, 8, 4])
    x = g.conv(x, [1, 8, 8, 4])
    f = g.unary("DEQUANTIZE", x, dtype="float32", version=2)
    y = g.unary("QUANTIZE", f)
    check = predict_compilation(g.model([g.unary("RELU", y, version=2)]))
    assert ("DEQUANTIZE", 1, sc.DATA_TYPE) in check.log_table()


def test_fully_connected_must_give_a_one_dimensional_output():
    g = Graph()
    x = g.input([1, 4, 8])
    w = g.tensor([16, 8], const=[0] * 128)
    y = g.tensor([1, 4, 16])
    g.op("FULLY_CONNECTED", [x, w], [y], version=4, options=schema.FullyConnectedOptionsT())
    check = predict_compilation(g.model([y]))
    assert check.log_table() == [("FULLY_CONNECTED", 1, sc.LIMITATION)]
    assert "Flatten before Dense" in check.advice[0]


# --- compiled files published without their source: does a rule explain where the compiler stopped? ---------


def _compiled_backbone(cpu_op: str, *, edge: int = 20, channels: int = 256) -> ModelFile:
    """What edgetpu_compiler writes for a backbone it mapped: one edgetpu-custom-op, then ``cpu_op`` and a
    conv on the CPU reading its output (the shape of JavierSupr/Coral-Inference's YOLOv8n-seg at 640 when
    ``cpu_op`` is its QUANTIZE of [1,20,20,256])."""
    g = Graph()
    x = g.input([1, 64, 64, 3])
    mapped = g.tensor([1, edge, edge, channels])
    g.op("CUSTOM", [x], [mapped], custom="edgetpu-custom-op")
    if cpu_op == "TRANSPOSE":
        perm = g.tensor([4], "int32", const=[0, 3, 1, 2])
        y = g.tensor([1, channels, edge, edge])
        g.op("TRANSPOSE", [mapped, perm], [y], version=2)
    else:
        y = g.unary(cpu_op, mapped)
    return g.model([g.conv(y, [int(d) for d in g.tensors[y].shape[:3]] + [8])])


def test_cpu_part_of_a_compiled_file_reads_the_edge_tpu_outputs():
    compiled = _compiled_backbone("QUANTIZE")
    part = sc.cpu_part(compiled)
    assert part is not None and not part.is_edgetpu
    assert [op.name for op in part.operators()] == ["QUANTIZE", "CONV_2D"]
    assert [t.shape for t in part.inputs] == [(1, 20, 20, 256)]  # the custom op's output
    assert [t.shape for t in compiled.inputs] == [(1, 64, 64, 3)]  # the caller's model is left whole
    assert sc.cpu_part(read_model(MOBILENET_EDGETPU)) is None  # mapped whole: nothing on the CPU
    assert sc.stop_explained(read_model(MOBILENET_EDGETPU)) is None


def test_a_stop_at_an_op_the_check_refuses_is_explained():
    """A TRANSPOSE of [1,40,40,144] (230400 elements, over the limit) ends the subgraph: a size rule says why."""
    compiled = _compiled_backbone("TRANSPOSE", edge=40, channels=144)
    assert sc.compiled_stop(compiled) == "TRANSPOSE [1, 40, 40, 144]"
    assert sc.stop_explained(compiled) is True


def test_a_stop_at_an_op_the_check_maps_is_not_explained():
    """The YOLOv8n-seg 640 stop: an int8 QUANTIZE of [1,20,20,256] maps in three users' YOLOv8 pairs, so the
    check maps it and no rule explains a compiler that stopped there."""
    compiled = _compiled_backbone("QUANTIZE")
    assert sc.compiled_stop(compiled) == "QUANTIZE [1, 20, 20, 256]"
    assert sc.stop_explained(compiled) is False


def test_agreement_script_lists_compiled_files_no_rule_explains(tmp_path):
    (tmp_path / "seg").mkdir()
    (tmp_path / "seg" / "yolov8n-seg_edgetpu.tflite").write_bytes(_compiled_backbone("QUANTIZE").data)
    (tmp_path / "det").mkdir()
    (tmp_path / "det" / "yolov8n_edgetpu.tflite").write_bytes(_compiled_backbone("TRANSPOSE", edge=40).data)
    script = ROOT / "benchmarks" / "edgetpu_check_agreement.py"
    proc = subprocess.run([sys.executable, script, tmp_path], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "1 of 2 compiled files stop at an op the check refuses (0 more mapped whole)" in lines
    assert "  seg/yolov8n-seg_edgetpu: stops at QUANTIZE [1, 20, 20, 256], which the check maps" in lines
