"""Ultralytics' own decode of YOLOv8/YOLO11 head maps, for ``yolo_head_cut_agreement.py`` to check edgecnn's.

Usage (with the separate Ultralytics virtualenv's Python; edgecnn never depends on PyTorch)::

    benchmarks/.venv-ultralytics/bin/python benchmarks/ultralytics_dfl_decode.py DIR

For every ``DIR/*.npz`` written by ``yolo_head_cut_agreement.py`` (``head0``, ``head1``, ... float32
``[H, W, 4*reg_max + nc]`` maps, already dequantized, and ``strides``), writes ``DIR/*.ultralytics.npz`` with
``boxes`` (``[N, 4]`` x1 y1 x2 y2 in input pixels) and ``scores`` (``[N, nc]``) for every cell, computed as
Ultralytics' ``Detect`` head does (``ultralytics/nn/modules/head.py``, ``_inference``): the maps NCHW,
flattened and joined, split into box bins and class logits, ``DFL`` (``ultralytics.nn.modules.block``),
``make_anchors`` and ``dist2bbox`` (``ultralytics.utils.tal``) times the strides, and the class sigmoid.

Set up::

    python3 -m venv benchmarks/.venv-ultralytics
    benchmarks/.venv-ultralytics/bin/pip install torch ultralytics   # a CPU build of torch is enough
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from ultralytics.nn.modules.block import DFL
from ultralytics.utils.tal import dist2bbox, make_anchors


def decode(maps: list[np.ndarray], strides: list[int]) -> tuple[np.ndarray, np.ndarray]:
    feats = [torch.from_numpy(np.ascontiguousarray(m.transpose(2, 0, 1)[None])) for m in maps]  # BCHW
    channels = feats[0].shape[1]
    reg_max = 16
    nc = channels - 4 * reg_max
    x_cat = torch.cat([f.view(1, channels, -1) for f in feats], 2)
    anchors, stride_tensor = (t.transpose(0, 1) for t in make_anchors(feats, torch.tensor(strides), 0.5))
    box, cls = x_cat.split((reg_max * 4, nc), 1)
    with torch.no_grad():
        dbox = dist2bbox(DFL(reg_max)(box), anchors.unsqueeze(0), xywh=False, dim=1) * stride_tensor
    return dbox[0].T.numpy(), cls.sigmoid()[0].T.numpy()


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    for path in sorted(folder.glob("*.npz")):
        if path.name.endswith(".ultralytics.npz"):
            continue
        data = np.load(path)
        maps = [data[f"head{i}"] for i in range(len(data["strides"]))]
        boxes, scores = decode(maps, [int(s) for s in data["strides"]])
        np.savez(path.with_suffix(".ultralytics.npz"), boxes=boxes, scores=scores)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
