"""Cut a full-integer YOLOv8/YOLO11 export at its per-scale head outputs, before the ops the Edge TPU refuses.

Ultralytics' export turns each scale's ``[1, H, W, 64+nc]`` head map channels-first (TRANSPOSE), flattens it
(RESHAPE to ``[1, 64+nc, H*W]``) and joins the scales (CONCATENATION to ``[1, 64+nc, N]``) before the DFL and
the box decode. The compiler refuses those layout ops for their size (static_check.py says which), and
everything after the first of them runs on the CPU. Cutting the graph at the three head maps leaves a model
the Edge TPU maps whole; :mod:`edgecnn.tasks.yolo_heads` does the rest on the CPU, from a metadata entry the
cut model carries. Reads and writes the flatbuffer only (no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.modelfile import ModelFile, opcode_name, parse_model, with_metadata
from edgecnn.tasks.yolo_heads import METADATA_NAME, HeadLayout

REG_MAX = 16  # Ultralytics' DFL bins (64 box channels)


@dataclass(frozen=True)
class Heads:
    tensors: tuple[int, ...]  # the per-scale head maps, strides ascending
    layout: HeadLayout


def find_heads(model_file: ModelFile) -> Heads | None:
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


def cut_heads(model_file: ModelFile) -> bytes:
    """The model ending at its head maps, with the :data:`METADATA_NAME` entry; appended files kept."""
    heads = find_heads(model_file)
    if heads is None:
        raise UsageError(
            f"{model_file.path or 'the model'} is not a YOLOv8/YOLO11 detect export edgecnn can cut (no "
            "per-scale head maps joined by TRANSPOSE -> RESHAPE -> CONCATENATION): compile it without --cut-head."
        )
    model = model_file.model
    graph = model.subgraphs[0]
    needed, keep_ops = set(heads.tensors), []
    for op in reversed(graph.operators):  # ops are in execution order: walk back from the new outputs
        if any(int(t) in needed for t in op.outputs):
            keep_ops.append(op)
            needed.update(int(t) for t in op.inputs if int(t) >= 0)
    keep_ops.reverse()
    used = sorted(needed | {int(t) for t in graph.inputs})
    remap = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[i] for i in used]
    for op in keep_ops:
        op.inputs = np.asarray([remap[int(t)] if int(t) >= 0 else -1 for t in op.inputs], dtype=np.int32)
        op.outputs = np.asarray([remap[int(t)] for t in op.outputs], dtype=np.int32)
    graph.operators = keep_ops
    graph.inputs = np.asarray([remap[int(t)] for t in graph.inputs], dtype=np.int32)
    graph.outputs = np.asarray([remap[t] for t in heads.tensors], dtype=np.int32)
    model.signatureDefs = None  # they name the old output; the cut model's outputs are its heads, in order
    builder = flatbuffers.Builder(len(model_file.data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    cut = parse_model(bytes(builder.Output()), model_file.path)
    cut.appended = dict(model_file.appended)  # Ultralytics' metadata.json: names, imgsz
    return with_metadata(cut, METADATA_NAME, heads.layout.to_json())
