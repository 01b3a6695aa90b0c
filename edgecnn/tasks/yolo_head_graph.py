"""Where a YOLOv8/YOLO11 or YOLOv5 export's per-scale head maps are in its graph.

Read by the Edge TPU static check (does ``convert --cut-head`` apply to this file?) and by the cut itself
(:mod:`edgecnn.converters.yolo_head_cut`), so it lives beside the heads decoder in the runtime core rather than
with the converters: the check must not import a conversion stage. Reads the flatbuffer only (no TensorFlow).
See the cut's module docstring for the two graph shapes it recognises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.modelfile import ModelFile, opcode_name
from edgecnn.tasks.yolo_heads import LAYOUT_V5, HeadLayout

REG_MAX = 16  # Ultralytics' DFL bins (64 box channels)
# YOLOv5's default anchors (models/yolov5n.yaml ... yolov5x.yaml), (w, h) pairs in pixels for strides 8, 16, 32.
# The export stores them as int8 constants (4 * anchor, one scale per map), a few percent off; when the
# constants are these anchors to within their quantization step, the exact values are used.
V5_DEFAULT_ANCHORS = {
    8: (10.0, 13.0, 16.0, 30.0, 33.0, 23.0),
    16: (30.0, 61.0, 62.0, 45.0, 59.0, 119.0),
    32: (116.0, 90.0, 156.0, 198.0, 373.0, 326.0),
}


@dataclass(frozen=True)
class Heads:
    tensors: tuple[int, ...]  # the per-scale head maps, strides ascending
    layout: HeadLayout


def find_heads(model_file: ModelFile) -> Heads | None:
    """The head maps of a YOLOv8/11 export (:func:`find_dfl_heads`) or a YOLOv5 one (:func:`find_anchor_heads`)."""
    return find_dfl_heads(model_file) or find_anchor_heads(model_file)


def find_dfl_heads(model_file: ModelFile) -> Heads | None:
    """The head maps of a YOLOv8/11 export: the inputs of TRANSPOSE -> RESHAPE feeding one CONCATENATION to
    ``[1, 4*REG_MAX + nc, N]`` where N is the sum of the maps' cells; ``None`` when the graph is not one."""
    model = model_file.model
    graph = model.subgraphs[0]
    producer: dict[int, Any] = {}
    names: dict[int, str] = {}
    for op in graph.operators or []:
        name, _ = opcode_name(model.operatorCodes[op.opcodeIndex])
        for t in op.outputs:
            producer[int(t)] = op
            names[int(t)] = name
    image = [int(d) for d in graph.tensors[int(graph.inputs[0])].shape]
    if len(image) != 4:
        return None
    for op in graph.operators or []:
        if opcode_name(model.operatorCodes[op.opcodeIndex])[0] != "CONCATENATION" or len(op.inputs) != 3:
            continue
        out = [int(d) for d in graph.tensors[int(op.outputs[0])].shape]
        if len(out) != 3 or out[1] <= 4 * REG_MAX:
            continue
        maps = []
        for t in (int(i) for i in op.inputs):
            reshape = producer.get(t)
            if reshape is None or names[t] != "RESHAPE":
                break
            src = int(reshape.inputs[0])
            if names.get(src) != "TRANSPOSE":
                break
            head = int(producer[src].inputs[0])
            shape = [int(d) for d in graph.tensors[head].shape]
            if (
                len(shape) != 4
                or shape[3] != out[1]
                or shape[1] * shape[2] != int(graph.tensors[t].shape[-1])
            ):
                break
            maps.append((shape[1], head))
        if len(maps) != 3 or sum(h * h for h, _ in maps) != out[2]:
            continue
        maps.sort(key=lambda m: -m[0])  # largest map first: stride 8
        strides = tuple(image[1] // h for h, _ in maps)
        layout = HeadLayout(strides, REG_MAX, out[1] - 4 * REG_MAX)
        return Heads(tuple(t for _, t in maps), layout)
    return None


def _constant(model: Any, graph: Any, index: int) -> tuple[np.ndarray, float] | None:
    """A constant tensor's real values and its quantization step (0 for a float constant), or None."""
    tensor = graph.tensors[index]
    buffer = model.buffers[int(tensor.buffer or 0)] if model.buffers else None
    dtypes = {9: np.int8, 3: np.uint8, 0: np.float32}  # schema TensorType INT8, UINT8, FLOAT32
    if buffer is None or buffer.data is None or tensor.type not in dtypes:
        return None
    shape = [int(d) for d in tensor.shape] if tensor.shape is not None else []
    raw = np.frombuffer(np.asarray(buffer.data, dtype=np.uint8).tobytes(), dtype=dtypes[tensor.type])
    if raw.size != int(np.prod(shape)):
        return None
    q = tensor.quantization
    if tensor.type != 0 and q is not None and q.scale is not None and len(q.scale) == 1:
        zero = int(q.zeroPoint[0]) if q.zeroPoint is not None and len(q.zeroPoint) else 0
        return (raw.astype(np.float32) - zero) * float(q.scale[0]), float(q.scale[0])
    return (raw.astype(np.float32), 0.0) if tensor.type == 0 else None


def _anchors(model: Any, graph: Any, start: int, na: int, stride: int) -> tuple[float, ...] | None:
    """YOLOv5's anchors of one scale, in pixels: the ``[..., na, 2]`` constant a MUL applies within 8 ops after
    the RESHAPE (the size branch ``sigmoid^2 * (4 * anchor)``: the constant holds four times the anchor)."""
    consumers: dict[int, list[Any]] = {}
    for op in graph.operators or []:
        for t in op.inputs if op.inputs is not None else []:
            consumers.setdefault(int(t), []).append(op)
    frontier, seen = [start], {start}
    for _ in range(8):
        following = []
        for tensor in frontier:
            for op in consumers.get(tensor, []):
                if opcode_name(model.operatorCodes[op.opcodeIndex])[0] == "MUL":
                    for t in (int(i) for i in op.inputs):
                        dims = graph.tensors[t].shape
                        shape = [int(d) for d in dims] if dims is not None else []
                        found = _constant(model, graph, t) if shape[-2:] == [na, 2] else None
                        if found is not None:
                            values, step = found
                            anchors = tuple(float(v) / 4 for v in values.ravel())
                            return _snap(anchors, stride, step / 4)
                for t in (int(i) for i in op.outputs):
                    if t not in seen:
                        seen.add(t)
                        following.append(t)
        frontier = following
    return None


def _snap(anchors: tuple[float, ...], stride: int, step: float) -> tuple[float, ...]:
    """YOLOv5's default anchors when the quantized constants are them (each within one step), else as read."""
    default = V5_DEFAULT_ANCHORS.get(stride)
    if (
        default
        and len(default) == len(anchors)
        and all(abs(a - d) <= max(step, 1e-3 * d) for a, d in zip(anchors, default, strict=True))
    ):
        return default
    return tuple(round(a, 3) for a in anchors)


def find_anchor_heads(model_file: ModelFile) -> Heads | None:
    """The conv outputs of a YOLOv5 export: ``[1, h, w, na*no]`` tensors RESHAPEd to ``[1, h*w, na, no]``
    (``no = 5 + nc``), at integer strides of the input, whose anchor cells add up to the model's one
    ``[1, N, no]`` output; ``None`` when the graph is not one."""
    model = model_file.model
    graph = model.subgraphs[0]
    image = [int(d) for d in graph.tensors[int(graph.inputs[0])].shape]
    outputs = [[int(d) for d in graph.tensors[int(t)].shape] for t in graph.outputs]
    if len(image) != 4 or len(outputs) != 1 or len(outputs[0]) != 3 or outputs[0][2] < 6:
        return None
    no = outputs[0][2]
    maps: dict[int, tuple[int, int, int]] = {}  # stride -> (head tensor, reshape output, anchors per cell)
    producer = {int(t): op for op in graph.operators or [] for t in op.outputs}
    for op in graph.operators or []:
        if opcode_name(model.operatorCodes[op.opcodeIndex])[0] != "RESHAPE":
            continue
        src, dst = int(op.inputs[0]), int(op.outputs[0])
        a, b = [int(d) for d in graph.tensors[src].shape], [int(d) for d in graph.tensors[dst].shape]
        if len(a) != 4 or len(b) != 4 or b[3] != no or b[1] != a[1] * a[2] or a[3] != b[2] * no:
            continue
        if a[1] == 0 or image[1] % a[1] or image[2] % a[2] or image[1] // a[1] != image[2] // a[2]:
            continue
        # Older exports take the sigmoid of the whole map before the RESHAPE (CONV_2D -> LOGISTIC -> QUANTIZE
        # -> RESHAPE): the cut is then at the conv's logits, which this layout decodes.
        head = src
        for _ in range(3):
            made_by = producer.get(head)
            if made_by is None:
                return None
            if opcode_name(model.operatorCodes[made_by.opcodeIndex])[0] not in ("LOGISTIC", "QUANTIZE"):
                break
            head = int(made_by.inputs[0])
        maps[image[1] // a[1]] = (head, dst, b[2])
    if not maps or len({na for _, _, na in maps.values()}) != 1:
        return None
    if sum(na * (image[1] // s) * (image[2] // s) for s, (_, _, na) in maps.items()) != outputs[0][1]:
        return None
    strides = tuple(sorted(maps))
    anchors = []
    for s in strides:
        found = _anchors(model, graph, maps[s][1], maps[s][2], s)
        if found is None:
            return None
        anchors.append(found)
    layout = HeadLayout(strides, 0, no - 5, LAYOUT_V5, tuple(anchors))
    return Heads(tuple(maps[s][0] for s in strides), layout)
