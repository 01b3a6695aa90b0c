"""Property-based fuzzing of model files: real models mutated at the flatbuffer level and at the byte level.

Flatbuffer mutations go through the schema's object API (``tests/model_mutations.py``): an index, a shape,
a type, a scale or a table length is set to a value near or far outside its range. Parsing and the
structural check run in-process (pure Python); whatever passes them is run by ``edgecnn predict`` and
``edgecnn inspect`` in a child process (``tests/fuzz_support.Worker``), since a model that fooled the check
could crash the interpreter. The contract is ``tests/fuzz_support.check_contract``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgecnn.errors import EdgecnnError  # noqa: E402
from edgecnn.inspect.contents import inspect_model  # noqa: E402
from edgecnn.modelfile import ModelFile, parse_model  # noqa: E402
from tests.conftest import CAT, MNIST_NINE, MOBILENET  # noqa: E402
from tests.fuzz_support import Worker, check_contract  # noqa: E402
from tests.model_mutations import load, pack  # noqa: E402

TARGETS = (
    "graph.inputs",
    "graph.outputs",
    "op.inputs",
    "op.outputs",
    "op.opcodeIndex",
    "tensor.buffer",
    "tensor.shape",
    "tensor.type",
    "tensor.scale",
    "tensor.zero_point",
    "buffer.data",
    "metadata.buffer",
    "cut.operators",
    "cut.tensors",
    "cut.buffers",
    "cut.operatorCodes",
)

INT32 = st.integers(-(2**31), 2**31 - 1)
# Mostly values near a table's edge (where off-by-one bugs live), sometimes anywhere in int32.
NEAR = st.one_of(st.integers(-3, 3).map(lambda d: ("end", d)), INT32.map(lambda v: ("abs", v)))
EDITS = st.lists(st.tuples(st.sampled_from(TARGETS), st.integers(0, 10_000), NEAR), min_size=1, max_size=3)


def _value(spec: tuple[str, int], size: int) -> int:
    how, v = spec
    return max(-(2**31), min(2**31 - 1, size + v if how == "end" else v))


def _pick(items: list[Any], at: int) -> Any:
    return items[at % len(items)] if items else None


def apply_edit(model: Any, target: str, at: int, spec: tuple[str, int]) -> None:
    graph = model.subgraphs[0]
    tensors, ops, buffers = graph.tensors or [], graph.operators or [], model.buffers or []
    count = len(tensors)
    if target in ("graph.inputs", "graph.outputs"):
        name = target.split(".")[1]
        setattr(graph, name, np.asarray([_value(spec, count)], dtype=np.int32))
    elif target in ("op.inputs", "op.outputs") and ops:
        op = _pick(ops, at)
        name = target.split(".")[1]
        values = list(getattr(op, name) if getattr(op, name) is not None else [0])
        values[at % len(values)] = _value(spec, count)
        setattr(op, name, np.asarray(values, dtype=np.int32))
    elif target == "op.opcodeIndex" and ops:
        _pick(ops, at).opcodeIndex = _value(spec, len(model.operatorCodes))
    elif target == "tensor.buffer" and tensors:
        _pick(tensors, at).buffer = max(0, _value(spec, len(buffers)))  # uint32 in the schema
    elif target == "tensor.shape" and tensors:
        tensor = _pick(tensors, at)
        shape = list(tensor.shape if tensor.shape is not None else [1])
        if shape:
            shape[at % len(shape)] = _value(spec, shape[at % len(shape)])
        tensor.shape = np.asarray(shape, dtype=np.int32)
    elif target == "tensor.type" and tensors:
        _pick(tensors, at).type = _value(spec, 0) % 128  # int8 in the schema
    elif target in ("tensor.scale", "tensor.zero_point") and tensors:
        q = _pick(tensors, at).quantization
        if q is not None and q.scale is not None and len(q.scale):
            if target == "tensor.scale":
                choices = [0.0, -1.0, math.inf, math.nan, 1e-38, 1e38, float(spec[1])]
                q.scale = np.asarray([choices[at % len(choices)]] * len(q.scale), dtype=np.float32)
            else:
                q.zeroPoint = np.asarray([_value(spec, 0)] * len(q.scale), dtype=np.int64)
    elif target == "buffer.data":
        with_data = [b for b in buffers if b.data is not None and len(b.data)]
        buffer = _pick(with_data, at)
        if buffer is not None:
            buffer.data = buffer.data[: max(0, min(len(buffer.data), _value(spec, len(buffer.data))))]
    elif target == "metadata.buffer" and model.metadata:
        _pick(model.metadata, at).buffer = max(0, _value(spec, len(buffers)))
    elif target.startswith("cut."):
        owner, name = (
            (model, target[4:]) if target[4:] in ("buffers", "operatorCodes") else (graph, target[4:])
        )
        items = getattr(owner, name) or []
        setattr(owner, name, items[: max(0, min(len(items), _value(spec, len(items))))])


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


class Originals(dict[str, tuple[bytes, Path]]):
    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing case: not 800 KB of model
        return f"Originals({sorted(self)})"


@pytest.fixture(scope="module")
def originals(coral, digits_model) -> Originals:
    """Each real model with an image it expects."""
    return Originals(
        mobilenet=(MOBILENET.read_bytes(), CAT),
        digits=(digits_model.tflite.read_bytes(), MNIST_NINE),
    )


def exercise_in_process(data: bytes, tmp: Path) -> ModelFile | None:
    """Parse and inspect; None when refused with a typed error (anything else propagates: a bug)."""
    try:
        mf = parse_model(data)
    except EdgecnnError as exc:
        event(f"refused: {str(exc).split(': ')[1][:30] if ': ' in str(exc) else 'other'}")
        return None
    path = tmp / "fuzzed.tflite"
    path.write_bytes(data)
    try:
        inspect_model(path, target="edgetpu")  # metadata, tensors, operators, op check: no interpreter
    except EdgecnnError:
        return None
    return mf


def exercise_in_child(worker: Worker, data: bytes, image: Path, tmp: Path, what: str) -> None:
    path = tmp / "fuzzed.tflite"
    path.write_bytes(data)
    reply = worker.run(["predict", path, image, "--json", "--top-k", "3"])
    check_contract(reply, what)
    event(f"predict exit {reply['code']}")
    if reply["code"] == 0:
        classes = json.loads(reply["stdout"])["results"][0]["classes"]
        assert classes, what
        assert all(math.isfinite(c["score"]) and -1e-6 <= c["score"] <= 1 + 1e-6 for c in classes), classes


@given(model=st.sampled_from(["mobilenet", "digits"]), edits=EDITS)
def test_flatbuffer_mutations_keep_the_contract(originals, worker, tmp_path_factory, model, edits):
    data, image = originals[model]
    mutant = load(data)
    for edit in edits:
        apply_edit(mutant, *edit)
    try:
        packed = pack(mutant)
    except (OverflowError, ValueError, TypeError, IndexError):  # not a file anyone could write
        return
    tmp = tmp_path_factory.mktemp("fb")
    if exercise_in_process(packed, tmp) is not None:
        exercise_in_child(worker, packed, image, tmp, f"{model} {edits}")


@given(
    model=st.sampled_from(["mobilenet", "digits"]),
    cut=st.one_of(st.none(), st.floats(0, 1)),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    head=st.booleans(),
)
def test_byte_mutations_keep_the_contract(originals, worker, tmp_path_factory, model, cut, flips, head):
    data, image = originals[model]
    raw = bytearray(data)
    # Offsets and vector lengths live near the start of a flatbuffer: aim half the flips at its head.
    span = min(len(raw), 4096) if head else len(raw)
    for where, value in flips:
        raw[min(span - 1, int(where * span))] = value
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    tmp = tmp_path_factory.mktemp("bytes")
    if exercise_in_process(bytes(raw), tmp) is not None:
        exercise_in_child(worker, bytes(raw), image, tmp, f"{model} cut={cut} flips={flips}")


def test_cli_contract_in_real_processes(coral, tmp_path):
    """A few mutants through a real ``edgecnn`` process: exit code, stderr and no signal, as users see them."""
    from tests.conftest import run_cli
    from tests.model_mutations import MUTATIONS, mutated

    for name in ("output index -1", "opcode index past the opcode table", "operator list emptied"):
        path = tmp_path / "m.tflite"
        path.write_bytes(mutated(MOBILENET.read_bytes(), name))
        result = run_cli("predict", path, CAT, timeout=30)
        assert result.code == 3 and "Traceback" not in result.stderr, (name, result.stderr)
    assert len(MUTATIONS) > 10


# --- detectors: the SSD op's options, and outputs that cannot be right -----------------------------------

OPTION_KEYS = (
    "num_classes",
    "max_detections",
    "max_classes_per_detection",
    "detections_per_class",
    "use_regular_nms",
    "nms_score_threshold",
    "nms_iou_threshold",
    "y_scale",
    "x_scale",
    "h_scale",
    "w_scale",
)
ODD_NUMBERS = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        0.0,
        -1.0,
        0.5,
        1.0,
        1.5,
        1e-38,
        1e38,
        -(2**31),
        -1,
        0,
        1,
        2,
        3,
        4,
        9,
        10_000,
        10_001,
        2**31 - 1,
        True,
        "three",
        b"\x00",
    ]
)
OPTION_EDITS = st.lists(
    st.tuples(st.sampled_from(OPTION_KEYS), st.one_of(st.none(), ODD_NUMBERS)), min_size=1, max_size=3
)


def _objects_are_sane(stdout: str, what: str) -> None:
    for result in json.loads(stdout)["results"]:
        for o in result["objects"]:
            x1, y1, x2, y2 = o["box"]
            assert math.isfinite(o["score"]) and -1e-3 <= o["score"] <= 1 + 1e-3, (what, o)
            assert all(math.isfinite(v) for v in o["box"]) and x2 >= x1 and y2 >= y1, (what, o)
            assert o["id"] >= 0, (what, o)


def exercise_detector(worker: Worker, data: bytes, image: Path, tmp: Path, what: str) -> None:
    """Parse and inspect in-process, then predict in the child: the contract, and sane objects on exit 0."""
    if exercise_in_process(data, tmp) is None:
        return
    path = tmp / "fuzzed.tflite"
    path.write_bytes(data)
    reply = worker.run(["predict", path, image, "--json", "--object-threshold", "0.05"])
    check_contract(reply, what)
    event(f"predict exit {reply['code']}")
    if reply["code"] == 0:
        _objects_are_sane(reply["stdout"], what)


@pytest.fixture(scope="module")
def ssd_originals(detectors, tmp_path_factory) -> Originals:
    import cv2

    from tests.detectors import make_scenes

    image = tmp_path_factory.mktemp("ssd_scene") / "scene.png"
    cv2.imwrite(str(image), make_scenes(1, 11)[0].image)
    return Originals(
        ssd_tf1=(detectors["ssd_tf1"].read_bytes(), image),
        ssd_int8=(detectors["ssd_int8"].read_bytes(), image),
    )


RAW_OPTIONS = st.one_of(
    st.none(),
    st.none(),
    st.binary(max_size=48).map(lambda b: ("bytes", b)),
    st.tuples(st.integers(0, 1000), st.integers(0, 255)).map(lambda t: ("flip", t)),
)  # None: edit the map; bytes: options that may be no FlexBuffer at all; flip: one byte of the real ones


@given(
    model=st.sampled_from(["ssd_tf1", "ssd_int8"]), edits=OPTION_EDITS, strip=st.booleans(), raw=RAW_OPTIONS
)
def test_postprocess_option_mutations_keep_the_contract(
    ssd_originals, worker, tmp_path_factory, model, edits, strip, raw
):
    from flatbuffers import flexbuffers

    from tests.odd_outputs import with_postprocess_options

    data, image = ssd_originals[model]

    def edit(options: dict[str, Any]) -> dict[str, Any] | bytes | None:
        if strip and len(edits) == 1 and edits[0][1] is None:
            return None  # no options at all (the SIGSEGV of issue #24)
        if raw is not None and raw[0] == "bytes":
            return raw[1]
        if raw is not None:
            encoded = bytearray(flexbuffers.Dumps(options))
            where, value = raw[1]
            encoded[where % len(encoded)] = value
            return bytes(encoded)
        for key, value in edits:
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value
        return options

    mutant = with_postprocess_options(data, edit)
    what = f"{model} {edits} strip={strip} raw={raw}"
    exercise_detector(worker, mutant, image, tmp_path_factory.mktemp("ssd"), what)


# Values that cannot be right in a detector's outputs, written straight into the flatbuffer's constant (the
# converter would store inf as the largest float).
ODD_VALUES = st.sampled_from(
    [math.nan, math.inf, -math.inf, 1e30, -1e30, 34.0, -3.0, 0.0, 1.0, 0.5, 2.0, 1e9]
)
OUTPUT_EDITS = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 3), ODD_VALUES), min_size=1, max_size=4
)  # (row of the object's values, which object, value)


@pytest.fixture(scope="module")
def fixed_detectors(tmp_path_factory) -> dict[str, tuple[bytes, np.ndarray, Path]]:
    """A YOLO-shaped and an end-to-end model whose output is a constant, with four objects, and an image."""
    import cv2

    from tests.odd_outputs import SIZE, e2e_values, fixed_output_tflite, yolo_values

    yolo = yolo_values()
    e2e = e2e_values()
    for i in (1, 2, 3):  # three more objects, smaller, lower scoring, of other classes
        yolo[0, :, i] = [0.2 * i, 0.25 * i, 0.15, 0.2, 0.0, 0.8 - 0.1 * i, 0.1 * i]
        e2e[0, i] = [0.2 * i, 0.1, 0.2 * i + 0.15, 0.3, 0.8 - 0.1 * i, i % 3]
    image = tmp_path_factory.mktemp("fixed") / "grey.png"
    cv2.imwrite(str(image), np.full((SIZE, SIZE, 3), 60, np.uint8))
    return {
        "yolo": (fixed_output_tflite(yolo), yolo, image),
        "e2e": (fixed_output_tflite(e2e), e2e, image),
    }


def _with_output_constant(data: bytes, original: np.ndarray, values: np.ndarray) -> bytes:
    """``data`` with the constant buffer holding ``original`` (the model's output) set to ``values``."""
    model = load(data)
    want = original.astype(np.float32).tobytes()
    for buffer in model.buffers:
        if buffer.data is not None and bytes(np.asarray(buffer.data, np.uint8).tobytes()) == want:
            buffer.data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
            return pack(model)
    raise AssertionError("the output constant is not in the model")


@given(
    layout=st.sampled_from(["yolo", "e2e"]),
    edits=OUTPUT_EDITS,
    swap=st.one_of(st.none(), st.tuples(st.integers(0, 5), st.integers(0, 5))),
)
def test_detector_output_mutations_keep_the_contract(
    fixed_detectors, worker, tmp_path_factory, layout, edits, swap
):
    data, original, image = fixed_detectors[layout]
    values = original.copy()
    for row, obj, value in edits:
        if layout == "yolo":
            values[0, row, obj] = value
        else:
            values[0, obj, row % 6] = value
    if swap is not None:  # two outputs swapped: boxes read as scores, scores read as classes
        a, b = swap
        if layout == "yolo":
            values[0, [a, b]] = values[0, [b, a]]
        else:
            values[0, :, [a, b]] = values[0, :, [b, a]]
    mutant = _with_output_constant(data, original, values)
    exercise_detector(worker, mutant, image, tmp_path_factory.mktemp("out"), f"{layout} {edits} swap={swap}")
