"""Cut a full-integer YOLOv8/YOLO11 or YOLOv5 export at its per-scale head outputs, before the ops the Edge TPU
refuses.

Ultralytics' export turns each scale's ``[1, H, W, 64+nc]`` head map channels-first (TRANSPOSE), flattens it
(RESHAPE to ``[1, 64+nc, H*W]``) and joins the scales (CONCATENATION to ``[1, 64+nc, N]``) before the DFL and
the box decode. The compiler refuses those layout ops for their size (static_check.py says which), and
everything after the first of them runs on the CPU. Cutting the graph at the three head maps leaves a model
the Edge TPU maps whole; :mod:`edgecnn.tasks.yolo_heads` does the rest on the CPU, from a metadata entry the
cut model carries. Reads and writes the flatbuffer only (no TensorFlow).

YOLOv5's export (``export.py --include tflite --int8``) has one ``[1, H, W, na*(5+nc)]`` conv output per scale,
RESHAPEd to ``[1, H*W, na, 5+nc]`` and decoded in the graph (grid, anchors) up to a ``[1, 25200, 5+nc]`` output;
it is cut at the conv outputs (before the sigmoid older exports take of the whole map), and its anchors are read from the export's own constants (the ``[1, 1, na, 2]``
MUL of the size branch, which holds ``4 * anchor``), so a model trained with its own anchors keeps them.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from edgecnn.errors import UsageError
from edgecnn.modelfile import ModelFile, parse_model, with_metadata
from edgecnn.tasks.yolo_head_graph import V5_DEFAULT_ANCHORS, Heads, find_heads
from edgecnn.tasks.yolo_heads import METADATA_NAME

__all__ = ["V5_DEFAULT_ANCHORS", "Heads", "cut_heads", "find_heads"]


def cut_heads(model_file: ModelFile) -> bytes:
    """The model ending at its head maps, with the :data:`METADATA_NAME` entry; appended files kept."""
    heads = find_heads(model_file)
    if heads is None:
        raise UsageError(
            f"{model_file.path or 'the model'} is not a YOLOv8/YOLO11 or YOLOv5 detect export edgecnn can cut (no "
            "per-scale head maps joined by TRANSPOSE -> RESHAPE -> CONCATENATION, or RESHAPEd to [1, H*W, 3, 5+nc] "
            "with anchors): compile it without --cut-head."
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
